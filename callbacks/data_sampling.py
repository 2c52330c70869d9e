"""Data sampling: methods that change which skills the training stream draws.

A method implements `rates(stats)`: given the all-reduced per-skill statistics of the step just taken, the skill
mixture (probabilities over skills) to draw the next batches from, or None to keep the current one; and optionally
`initial_mixture()` (default: the task's natural frequencies). The base class turns a mixture into the stream's
rates — sampling probabilities in the control form; loss-mask rates in the outputs form, rescaled to keep
Σ_k rate_k = Σ_k p_k (each capped at 1) — sets them on the datamodule (`set_skill_rates`), identically on every
rank, logs them as `intervention/<name>/rate/<skill>`, and keeps them in the checkpoint.

A table with a `data.mix_column` (e.g. skills found by `discover`) has these methods mix over that column's groups
instead (`Task.mixing`, the module's `mix_stats`): their rates are then logged per group
(`intervention/<name>/rate/<group>`), while every other log, learn step and comparison stays on the skills.

A user's own LightningDataModule takes part by implementing `set_skill_rates(rates)`.
"""

from __future__ import annotations

import torch

from skilltrain.callbacks.intervention import Intervention
from skilltrain.errors import UserError


class DataSampling(Intervention):
    """Base of the data-sampling family: implement `rates(stats)` (and `initial_mixture()` when it is not natural)."""

    touches = frozenset({"data"})

    def __init__(self, params, task):
        super().__init__(params, task)
        # what it mixes over: the skills, or the task's mix groups (data.mix_column), with their natural frequencies
        self.skills, frequencies = task.mixing
        self.frequencies = torch.tensor(frequencies, dtype=torch.float64)
        self.total_frequency = float(sum(frequencies))
        self.mixture = self.initial_mixture()
        self.stream_rates = self.to_stream_rates(self.mixture)

    def initial_mixture(self) -> torch.Tensor:
        return self.frequencies / self.frequencies.sum()

    def rates(self, stats: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The mixture over skills for the next batches, or None to keep the current one."""
        raise NotImplementedError

    def to_stream_rates(self, mixture: torch.Tensor) -> torch.Tensor:
        """A mixture over skills as the stream's rates: probabilities (control) or loss-mask rates (outputs)."""
        q = mixture / mixture.sum()
        return q if self.task.form == "control" else (q * self.total_frequency).clamp(max=1.0)

    def check(self, cfg) -> None:
        if cfg is not None and self.task.form == "control" and cfg.data.batch_size is None:
            raise UserError(f"interventions.{self.name}: {type(self).__name__} changes which samples are drawn, but a "
                            "full-batch pool (data.batch_size=null) draws every row every step; set data.batch_size")

    # ---- hooks ----------------------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "set_skill_rates"):
            raise UserError(f"interventions.{self.name}: changes the skill rates of the data, but the datamodule "
                            f"{type(datamodule).__name__} has no set_skill_rates(rates) method")
        datamodule.set_skill_rates(self.stream_rates)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        mixture = self.rates(pl_module.mix_stats if self.task.mix_groups is not None else pl_module.train_stats)
        if mixture is not None:
            self.mixture = mixture
            self.stream_rates = self.to_stream_rates(mixture)
            # on the device, unchecked: a training step reads nothing back (set_skill_rates for a user's DataModule)
            getattr(trainer.datamodule, "update_skill_rates", trainer.datamodule.set_skill_rates)(self.stream_rates)

    def logged(self) -> dict[str, float | torch.Tensor]:
        return {f"rate/{s}": r for s, r in zip(self.skills, self.stream_rates.tolist())}

    def state_dict(self) -> dict:
        return {"mixture": self.mixture, "stream_rates": self.stream_rates}

    def load_state_dict(self, state_dict: dict) -> None:
        self.mixture, self.stream_rates = state_dict["mixture"], state_dict["stream_rates"]


class BalancedSampling(DataSampling):
    """Skill-balanced sampling (`skill_reweighting`, mode `balanced_sampling`).

    What it does. Draws skills in a fixed mixture flatter than the natural one.

    Formula. q_k ∝ p_k^exponent (exponent 0: uniform; 1: the natural mixture). Control form: the stream draws skills
    (or pool rows, with per-row weights) with probabilities q; outputs form: loss-mask rates rescaled to keep
    Σ_k q_k = Σ_k p_k (capped at 1).

    Parameters. `exponent`.

    When it helps. Many skills with a wide frequency range (`multitask_parity`), and a rare skill beside a frequent
    one (`domino_2task`). Measured, with intervals: callbacks/README.md.

    When it hurts. The most frequent skill gets less data and is learned later (several times later on
    `multitask_parity`, still early). Refused for a full-batch control-form pool, which draws every row every step.
    """

    stackable = True

    def initial_mixture(self) -> torch.Tensor:
        q = self.frequencies ** self.params.exponent
        return q / q.sum()

    def rates(self, stats):
        return None


class OnlineMixing(DataSampling):
    """Shared part of the online mixtures: an EMA of each skill's all-reduced training loss (a skill's average starts
    when it is first seen), turned into a per-skill signal every `update_every` steps: the EMA loss over its mean
    across skills (`signal=loss`; a skill not seen yet counts as average), or its relative decrease since the last
    update (`signal=progress`; 0 while unknown). Subclasses turn the signal into a mixture (`update`); both then mix
    in `floor` / K of the uniform mixture."""

    stackable = True

    def __init__(self, params, task):
        super().__init__(params, task)
        self.signal_ema: torch.Tensor | None = None
        self.signal_at_update: torch.Tensor | None = None
        self.steps = 0

    def rates(self, stats):
        """On the device of the statistics: nothing is read back to the host."""
        self.steps += 1
        loss = stats["mask_loss"].detach()
        seen = torch.isfinite(loss)
        if self.mixture.device != loss.device:  # the first step on a GPU, or state restored from a checkpoint
            self._to(loss.device)
        if self.signal_ema is None:  # NaN until a skill is first seen; its average then starts at that loss
            self.signal_ema = torch.full_like(loss, float("nan"))
            self.signal_at_update = self.signal_ema.clone()
        a = self.params.ema
        smoothed = torch.where(self.signal_ema.isnan(), loss, a * self.signal_ema + (1 - a) * loss)
        self.signal_ema = torch.where(seen, smoothed, self.signal_ema)
        if self.steps % self.params.update_every:
            return None
        known = ~self.signal_ema.isnan()
        if self.params.signal == "loss":  # a skill not seen yet counts as average (1 when none is known)
            known_mean = torch.where(known, self.signal_ema, 0).sum() / known.sum().clamp(min=1)
            ema = torch.where(known, self.signal_ema, torch.where(known.any(), known_mean, 1.0))
            signal = ema / ema.mean().clamp(min=1e-12)
        else:
            drop = (self.signal_at_update - self.signal_ema) / self.signal_at_update.clamp(min=1e-12)
            signal = torch.nan_to_num(drop, nan=0.0).clamp(min=0)
        self.signal_at_update = self.signal_ema.clone()
        mixture = self.update(signal, seen, stats["rows"])
        floor, k = self.params.floor, len(signal)
        return (1 - floor) * mixture + floor / k

    def update(self, signal: torch.Tensor, seen: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _to(self, device) -> None:
        """Move the state to the statistics' device, once (after a resume, or on the first step)."""
        for key in ("signal_ema", "signal_at_update", "mixture", "stream_rates", "log_weights"):
            value = getattr(self, key, None)
            if isinstance(value, torch.Tensor):
                setattr(self, key, value.to(device))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "signal_ema": self.signal_ema, "signal_at_update": self.signal_at_update,
                "steps": self.steps}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.signal_ema, self.signal_at_update = state_dict["signal_ema"], state_dict["signal_at_update"]
        self.steps = state_dict["steps"]


class OnlineEG(OnlineMixing):
    """Online mixture by exponentiated gradient (`skill_reweighting`, mode `online`, `algorithm=eg`; DoReMi-style).

    What it does. Shifts the data mixture toward the skills whose training loss is high (or falls fastest).

    Formula. Every `update_every` steps: q ← softmax(log q + lr · s), s the per-skill signal (see OnlineMixing:
    EMA loss over its mean, or learning progress), then q ← (1 − floor) · q + floor / K. This q maximises
    lr·⟨q, s⟩ − KL(q ‖ q_old): a mirror-descent step on the simplex.

    Parameters. `signal`, `lr`, `ema`, `floor`, `update_every`.

    When it helps. Many skills with a wide frequency range: the best arm measured on `multitask_parity`, and the
    rare parity of `domino_2task`. Measured, with intervals: callbacks/README.md.

    When it hurts. The frequent skill is learned later: data moved to the lagging skills is taken from it.
    """

    def update(self, signal, seen, rows):
        return torch.softmax(self.mixture.log() + self.params.lr * signal, dim=0)


class OnlineEXP3(OnlineMixing):
    """Online mixture as an EXP3 bandit (`skill_reweighting`, mode `online`, `algorithm=exp3`; Online Data Mixing).

    What it does. Treats skills as arms and the training signal as their reward, observed only for the skills in
    the batch, and shifts the mixture toward the most rewarding.

    Formula. Every `update_every` steps, for the skills in the batch: ŝ_k = s_k · 1[k in the batch] / P(k in the
    batch), P = 1 − (1 − r_k)^B for a batch of B rows each carrying skill k with probability r_k (its sampling
    probability, or its loss-mask rate): unbiased, E[ŝ_k] = s_k. Then w_k ← w_k · exp(floor · lr · ŝ_k / K),
    q = softmax(log w), and q ← (1 − floor) · q + floor / K. (Dividing by r_k instead, the per-row rate, is
    unbiased only for a batch of one row: with B rows it inflates a rare skill's reward by about 1/r_k.)

    Parameters. `signal`, `lr`, `ema`, `floor`, `update_every`.

    When it helps. Rare skills: the rare parity of `domino_2task`, the rare multitask skills. Measured, with
    intervals: callbacks/README.md.

    When it hurts. Its weights start uniform and move slowly (step floor · lr / K), so it behaves much like balanced
    sampling, and the frequent skill is learned later.
    """

    def __init__(self, params, task):
        super().__init__(params, task)
        self.log_weights = torch.zeros(len(self.skills), dtype=torch.float64)

    def update(self, signal, seen, rows):
        observed = observation_probability(self.stream_rates, rows)
        reward = torch.where(seen, signal / observed.clamp(min=1e-12), torch.zeros_like(signal))
        self.log_weights = self.log_weights + self.params.floor * self.params.lr * reward / len(signal)
        return torch.softmax(self.log_weights, dim=0)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "log_weights": self.log_weights}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.log_weights = state_dict["log_weights"]


def observation_probability(rates: torch.Tensor, rows: float | torch.Tensor) -> torch.Tensor:
    """P(skill k is in a batch of `rows` rows) = 1 − (1 − r_k)^rows, with r_k each row's chance to carry skill k: its
    sampling probability (control form) or its loss-mask rate (outputs form). Rows drawn by an epoch-shuffled walk
    through a pool are seen a little more surely than independent draws; the difference is negligible once
    r_k · rows ≫ 1."""
    return 1 - (1 - rates.double().clamp(0, 1)) ** rows
