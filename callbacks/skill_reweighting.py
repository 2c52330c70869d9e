"""skill_reweighting: give rare or lagging skills more of the loss, or more of the data.

Method card
-----------
What it does. Changes how much each skill counts, at the loss (modes `inverse_frequency`, `self`) or in the data
(modes `balanced_sampling`, `online`).

Formulas (p_k: the task's frequency of skill k; L[b, k]: the loss matrix; sg: stop-gradient):
- `inverse_frequency` (default): weight w_k = (1/p_k) · Σ_j p_j / K on skill k's losses, so every skill's expected
  share of the loss is equal and the expected total weight Σ_k p_k w_k is unchanged.
- `self` (self-reweighting): ℓ̃ = Σ_b Σ_k M·ℓ · sg(ℓ) / sg(ℓ̄) / B, ℓ̄ the mean over the entries in the objective
  (all-reduced across ranks): each loss entry weighted by its own size relative to that mean, then reduced like the
  unweighted loss (over the B rows).
- `balanced_sampling`: skill rates q_k ∝ p_k^exponent (exponent 0: uniform; 1: the natural mixture). Control form:
  the stream draws skills (or pool rows) with probabilities q; outputs form: loss-mask rates rescaled to keep
  Σ_k q_k = Σ_k p_k (capped at 1). Needs sampling: a full-batch control-form pool has nothing to rebalance.
- `online`: an adaptive mixture from per-skill training signals (an EMA, factor `ema`, of the all-reduced
  per-skill loss, or of its relative decrease, `signal=progress`), updated every `update_every` steps:
  `algorithm=eg` (exponentiated gradient, as DoReMi): q ← softmax(log q + lr · s), with s the EMA loss over its
  mean across skills (`signal=loss`) or the EMA loss's relative decrease since the last update (`signal=progress`);
  `algorithm=exp3` (bandit, as Online Data Mixing): w_k ← w_k · exp(floor · lr · ŝ_k / K) with the importance-
  weighted reward ŝ_k = s_k · 1[k in the batch] / P(k in the batch), P = 1 − (1 − r_k)^B for a batch of B rows each
  carrying skill k with probability r_k (unbiased: E[ŝ_k] = s_k); in both, q ← (1 − floor) · q + floor / K.

Weights and rates are logged as `intervention/skill_reweighting/{weight,rate}/<skill>`.

When it helps, when it hurts. See callbacks/README.md for the measured A/B tables (medians over seeds, with the
commands). Reweighting spends the same update budget differently: it speeds rare skills up at the cost of
frequent ones; equal-weighted training is a strong baseline in the multitask literature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skilltrain.callbacks.intervention import Intervention
from skilltrain.config import require
from skilltrain.errors import UserError, unknown
from skilltrain.registry import INTERVENTIONS

MODES = ("inverse_frequency", "self", "balanced_sampling", "online")
ALGORITHMS = ("eg", "exp3")
SIGNALS = ("loss", "progress")


@dataclass
class SkillReweightingConfig:
    mode: str = "inverse_frequency"  # inverse_frequency | self | balanced_sampling | online
    exponent: float = 0.0  # balanced_sampling: rates ∝ p^exponent (0: uniform, 1: natural)
    algorithm: str = "eg"  # online: eg (exponentiated gradient, DoReMi) | exp3 (bandit, Online Data Mixing)
    signal: str = "loss"  # online: loss (EMA of the per-skill loss) | progress (its relative decrease)
    lr: float = 1.0  # online: step size of the mixture update
    ema: float = 0.9  # online: EMA factor of the signal
    floor: float = 0.05  # online: every skill keeps at least floor / K of the mixture
    update_every: int = 10  # online: steps between mixture updates

    def validate(self) -> None:
        key = "interventions.skill_reweighting"
        if self.mode not in MODES:
            raise unknown("mode", self.mode, MODES, key=f"{key}.mode")
        if self.algorithm not in ALGORITHMS:
            raise unknown("algorithm", self.algorithm, ALGORITHMS, key=f"{key}.algorithm")
        if self.signal not in SIGNALS:
            raise unknown("signal", self.signal, SIGNALS, key=f"{key}.signal")
        require(self.exponent >= 0, f"{key}.exponent", f"must be ≥ 0, got {self.exponent}")
        require(self.lr > 0, f"{key}.lr", f"must be > 0, got {self.lr}")
        require(0 <= self.ema < 1, f"{key}.ema", f"must be in [0, 1), got {self.ema}")
        require(0 < self.floor < 1, f"{key}.floor", f"must be in (0, 1), got {self.floor}")
        require(self.update_every >= 1, f"{key}.update_every", f"must be ≥ 1, got {self.update_every}")


def observation_probability(rates: torch.Tensor, rows: float) -> torch.Tensor:
    """P(skill k is in a batch of `rows` rows) = 1 − (1 − r_k)^rows, with r_k each row's chance to carry skill k: its
    sampling probability (control form) or its loss-mask rate (outputs form). EXP3 observes a skill's reward only
    when the skill is in the batch, so reward · 1[seen] / P(seen) is unbiased for the reward. (Dividing by r_k, the
    per-row rate, would be unbiased only for a batch of one row: with B rows it inflates a rare skill's reward by
    about 1/r_k.) Rows drawn by an epoch-shuffled walk through a pool are seen a little more surely than independent
    draws; the difference is negligible once r_k · rows ≫ 1."""
    return 1 - (1 - rates.double().clamp(0, 1)) ** rows


@INTERVENTIONS.register(
    "skill_reweighting",
    "per-skill loss weights or skill sampling: inverse_frequency | self | balanced_sampling | online (DoReMi / EXP3)",
    SkillReweightingConfig,
)
class SkillReweighting(Intervention):
    name = "skill_reweighting"

    def __init__(self, params: SkillReweightingConfig, task):
        super().__init__(params, task)
        p = torch.tensor(task.frequencies, dtype=torch.float64)
        k = len(p)
        self.frequencies = p
        self.weights = (1 / p) * p.sum() / k  # inverse_frequency
        self.rates = self._stream_rates(p ** params.exponent if params.mode == "balanced_sampling" else p)
        # online state (tensors and plain numbers: checkpointable with weights_only=True)
        self.mixture = p / p.sum()
        self.log_weights = torch.zeros(k, dtype=torch.float64)  # exp3
        self.signal_ema: torch.Tensor | None = None
        self.signal_at_update: torch.Tensor | None = None
        self.steps = 0
        self._self_weights: torch.Tensor | None = None

    @property
    def touches(self) -> frozenset[str]:
        return frozenset({"data"} if self.params.mode in ("balanced_sampling", "online") else {"loss"})

    def check(self, cfg) -> None:
        if "data" in self.touches and self.task.form == "control" and cfg.data.batch_size is None:
            raise UserError(f"interventions.skill_reweighting.mode: {self.params.mode} changes which samples are drawn, "
                            "but a full-batch pool (data.batch_size=null) draws every row every step; set data.batch_size")

    def _stream_rates(self, mixture: torch.Tensor) -> torch.Tensor:
        """A mixture over skills as the stream's rates: probabilities (control) or loss-mask rates (outputs)."""
        q = mixture / mixture.sum()
        return q if self.task.form == "control" else (q * self.frequencies.sum()).clamp(max=1.0)

    # ---- loss modes -----------------------------------------------------------------------------------------
    def loss_weights(self, module, losses, mask, stats):
        if self.params.mode == "inverse_frequency":
            return self.weights.to(losses)
        if self.params.mode == "self":
            share = torch.nan_to_num(stats["mask_share"])
            mean = (torch.nan_to_num(stats["mask_loss"]) * share).sum() / share.sum().clamp(min=1e-12)
            self._self_weights = stats["mask_loss"] / mean.clamp(min=1e-12)
            return losses.detach() / mean.clamp(min=1e-12).to(losses)
        return None

    # ---- data modes -----------------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        if "data" in self.touches:
            trainer.datamodule.stream.set_rates(self.rates)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.params.mode != "online":
            return
        self.steps += 1
        loss = pl_module.train_stats["mask_loss"].detach().cpu()
        seen = torch.isfinite(loss)
        if self.signal_ema is None:  # NaN until a skill is first seen; its average then starts at that loss
            self.signal_ema = torch.full_like(loss, float("nan"))
            self.signal_at_update = self.signal_ema.clone()
        a = self.params.ema
        smoothed = torch.where(self.signal_ema.isnan(), loss, a * self.signal_ema + (1 - a) * loss)
        self.signal_ema = torch.where(seen, smoothed, self.signal_ema)
        if self.steps % self.params.update_every:
            return
        known = ~self.signal_ema.isnan()
        if self.params.signal == "loss":  # a skill not seen yet counts as average
            ema = torch.where(known, self.signal_ema, self.signal_ema[known].mean() if known.any() else 1.0)
            signal = ema / ema.mean().clamp(min=1e-12)
        else:  # learning progress: relative decrease of the smoothed loss since the last update (0 if unknown)
            drop = (self.signal_at_update - self.signal_ema) / self.signal_at_update.clamp(min=1e-12)
            signal = torch.nan_to_num(drop, nan=0.0).clamp(min=0)
        self.signal_at_update = self.signal_ema.clone()
        k, lr, floor = len(signal), self.params.lr, self.params.floor
        if self.params.algorithm == "eg":
            mixture = torch.softmax(self.mixture.log() + lr * signal, dim=0)
        else:  # EXP3: rewards of the skills seen in this batch, importance-weighted by how likely they were seen
            observed = observation_probability(self.rates, float(pl_module.train_stats["rows"]))
            reward = torch.where(seen, signal / observed.clamp(min=1e-12), torch.zeros_like(signal))
            self.log_weights += floor * lr * reward / k
            mixture = torch.softmax(self.log_weights, dim=0)
        self.mixture = (1 - floor) * mixture + floor / k
        self.rates = self._stream_rates(self.mixture)
        trainer.datamodule.stream.set_rates(self.rates)

    # ---- logs and state -------------------------------------------------------------------------------------
    def logged(self) -> dict[str, float | torch.Tensor]:
        if self.params.mode == "inverse_frequency":
            return {f"weight/{s}": w for s, w in zip(self.skills, self.weights.tolist())}
        if self.params.mode == "self":
            return {} if self._self_weights is None else dict(zip((f"weight/{s}" for s in self.skills), self._self_weights))
        return {f"rate/{s}": r for s, r in zip(self.skills, self.rates.tolist())}

    def state_dict(self) -> dict:
        return {"rates": self.rates, "mixture": self.mixture, "log_weights": self.log_weights,
                "signal_ema": self.signal_ema, "signal_at_update": self.signal_at_update, "steps": self.steps}

    def load_state_dict(self, state_dict: dict) -> None:
        for key, value in state_dict.items():
            setattr(self, key, value)
