"""Loss weighting: methods that change how much each skill's losses count.

A method implements `loss_weights(module, losses, mask, stats)` and returns weights broadcastable to the [B, K] loss
matrix: [K] (one per skill) or [B, K] (one per entry). The module multiplies the weights of every intervention and
reduces Σ_b Σ_k M·w·L / B. `stats` holds the all-reduced per-skill statistics of this step (loss, acc, count,
mask_loss, mask_share; rows), so every DDP rank computes the same weights. The base class logs the per-skill weights
it is given in `skill_weights` as `intervention/<name>/weight/<skill>`.

Each class docstring is the method's card; callbacks/README.md has the measured tables.
"""

from __future__ import annotations

import torch

from skilltrain.callbacks.intervention import Intervention
from skilltrain.config import require


class LossWeighting(Intervention):
    """Base of the loss-weighting family: implement `loss_weights`, and set `skill_weights` ([K]) for the logs."""

    touches = frozenset({"loss"})

    def __init__(self, params, task):
        super().__init__(params, task)
        self.skill_weights: torch.Tensor | None = None  # [K], what `logged` reports

    def loss_weights(self, module, losses, mask, stats):
        raise NotImplementedError

    def logged(self) -> dict[str, float | torch.Tensor]:
        if self.skill_weights is None:
            return {}
        return {f"weight/{s}": w for s, w in zip(self.skills, self.skill_weights)}


class InverseFrequency(LossWeighting):
    """Inverse-frequency weighting (`skill_reweighting`, mode `inverse_frequency`, the default).

    What it does. Weights every skill's losses by the inverse of its frequency, so that every skill has the same
    expected share of the loss.

    Formula. w_k = (1/p_k) · Σ_j p_j / K, p_k the task's frequency of skill k: every skill's expected share p_k·w_k
    is equal, and the expected total weight Σ_k p_k w_k is unchanged.

    Parameters. None.

    When it helps. When a rare skill is starved of gradient: the rare parity of `domino_2task` is learned 2–3×
    sooner, the 1%-rare regression skill 2.2× sooner.

    When it hurts. The update budget is moved, not grown: the frequent skill is learned about 20% later.
    """

    def __init__(self, params, task):
        super().__init__(params, task)
        p = torch.tensor(task.frequencies, dtype=torch.float64)
        self.skill_weights = (1 / p) * p.sum() / len(p)

    def loss_weights(self, module, losses, mask, stats):
        return self.skill_weights.to(losses)


class SelfReweighting(LossWeighting):
    """Self-reweighting (`skill_reweighting`, mode `self`).

    What it does. Weights every loss entry by its own size relative to the mean loss: the objective spends its budget
    where the loss is.

    Formula. ℓ̃ = Σ_b Σ_k M·ℓ · sg(ℓ) / sg(ℓ̄) / B, ℓ̄ the mean over the entries in the objective (all-reduced across
    ranks), sg the stop-gradient; the logged weight of skill k is its mean loss over ℓ̄.

    Parameters. None.

    When it helps. When skills differ in how far they are from learned and the loss says so.

    When it hurts. It barely helps on parity skills (1.1–1.3×, intervals include 1): a parity skill's loss stays flat
    at chance until it is learned, so loss size says little about what is learnable next.
    """

    def loss_weights(self, module, losses, mask, stats):
        share = torch.nan_to_num(stats["mask_share"])
        mean = (torch.nan_to_num(stats["mask_loss"]) * share).sum() / share.sum().clamp(min=1e-12)
        self.skill_weights = stats["mask_loss"] / mean.clamp(min=1e-12)
        return losses.detach() / mean.clamp(min=1e-12).to(losses)


class LossNormalize(LossWeighting):
    """Per-skill loss normalisation (`gradient_rescaling`, mode `loss_normalize`, the default).

    What it does. The Resource model of arXiv 2501.12391 says skills compete for one update budget in proportion to
    their frequency and loss; this gives every skill that is still being learned the same share of it.

    Formula. L = Σ_{k not learned} L_k / sg(L_k + eps) + Σ_{k learned} share_k · L_k: every skill still to learn
    contributes a gradient ∇L_k / L_k, an equal budget in log-loss; a learned skill goes back to its natural weight.
    As per-skill weights on the loss matrix: 1 / (share_k · (L_k + eps)), or 1 once learned, with L_k and share_k
    all-reduced across ranks. "Learned" is read off the training statistics: a skill counts as learned while the
    moving average (factor 0.9) of its training metric is past the run's `metric.threshold` (accuracy, or the loss
    for `metric.name=loss`); a skill that falls back below it is normalised again.

    Parameters. `eps`.

    When it helps. It is the strongest intervention measured here for a rare skill: the rare parity of `domino_2task`
    2.5–3.4× sooner, the rare regression skill 3.4× sooner while the frequent one is faster too.

    When it hurts. Normalising a skill that is already learned gives it a full share forever (its weight 1/L_k grows
    as L_k → 0) and starves the skills still to come: the first version did, and left 2 of 10 multitask skills
    unlearned in 3 of 5 seeds; learned skills now return to their natural weight. Until a skill is recognised as
    learned, its weight still grows, and rounding differences are amplified (DDP and one process drift apart).
    """

    EMA = 0.9  # smoothing of the training metric that decides "learned" (minibatches are noisy)

    def __init__(self, params, task):
        super().__init__(params, task)
        self.metric, self.threshold = ("acc", 0.9) if task.accuracy else ("loss", None)  # run config: see check
        self.progress: torch.Tensor | None = None  # EMA of each skill's training metric

    def check(self, cfg) -> None:
        if cfg is not None:
            self.metric, self.threshold = cfg.metric.name, cfg.metric.threshold

    def loss_weights(self, module, losses, mask, stats):
        share = torch.nan_to_num(stats["mask_share"])
        normalised = torch.where(share > 0, 1 / (share * (torch.nan_to_num(stats["mask_loss"]) + self.params.eps))
                                 .clamp(max=1e300), torch.zeros_like(share))
        learned = self._learned(stats)
        self.skill_weights = torch.where(learned, torch.ones_like(normalised), normalised)
        return self.skill_weights.to(losses)

    def _learned(self, stats: dict[str, torch.Tensor]) -> torch.Tensor:
        value = stats[self.metric].detach()
        if self.progress is None:
            self.progress = value.clone()
        self.progress = self.progress.to(value)  # (restored from a checkpoint on the CPU)
        seen = ~value.isnan()
        fresh = self.progress.isnan() & seen
        smoothed = self.EMA * self.progress + (1 - self.EMA) * value
        self.progress = torch.where(fresh, value, torch.where(seen, smoothed, self.progress))
        if self.threshold is None:
            return torch.zeros_like(seen)
        done = self.progress >= self.threshold if self.metric == "acc" else self.progress <= self.threshold
        return done & ~self.progress.isnan()

    def state_dict(self) -> dict:
        return {"progress": self.progress}

    def load_state_dict(self, state_dict: dict) -> None:
        self.progress = state_dict["progress"]


class GradNormWeighting(LossWeighting):
    """Per-skill gradient-norm equalisation (`gradient_rescaling`, mode `grad_norm`; GradNorm's family).

    What it does. Rescales each skill's gradient to a common norm before the gradients are summed.

    Formula. Exact per-skill gradients g_k = ∇S_k (S_k: skill k's part of the loss; one extra backward pass per
    skill, all-reduced across ranks), each rescaled: L = Σ_k (target_k / ‖g_k‖) S_k. target_k = the mean of the
    ‖g_j‖ (`target=mean`), or, as in GradNorm, that mean times r_k^alpha with r_k = (L_k / L_k(0)) / mean_j (L_j /
    L_j(0)) (`target=gradnorm`: skills that have progressed least get more). Logged: the norms, `grad_norm/<skill>`.

    Parameters. `target`, `alpha`.

    When it helps. Skills whose gradients differ in scale by orders of magnitude (1.8–2.2× for the rare parity).

    When it hurts. It costs K extra backward passes per step (about 1 + 0.23·K here), and left the rare regression
    skill unlearned in 4 of 10 seeds. Refused under float16 (the per-skill gradients are taken before the AMP loss
    scaler and would underflow).
    """

    def __init__(self, params, task):
        super().__init__(params, task)
        self.initial_loss: torch.Tensor | None = None  # gradnorm target: L_k(0), per skill
        self.grad_norms: torch.Tensor | None = None

    def check(self, cfg) -> None:
        if cfg is not None:
            require(not str(cfg.trainer.precision).startswith("16"), "trainer.precision",
                    f"{cfg.trainer.precision} cannot be used with interventions.gradient_rescaling.mode=grad_norm "
                    "(per-skill gradients would underflow in float16); use bf16-mixed or 32")

    def loss_weights(self, module, losses, mask, stats):
        params = [p for p in module.parameters() if p.requires_grad]
        parts = (losses if mask is None else torch.where(mask, losses, 0)).sum(0) / losses.shape[0]  # S_k
        grads = []
        for k in range(len(self.skills)):
            g = torch.autograd.grad(parts[k], params, retain_graph=True, allow_unused=True)
            grads.append(torch.cat([(gi if gi is not None else torch.zeros_like(p)).flatten() for gi, p in zip(g, params)]))
        grads = module.trainer.strategy.reduce(torch.stack(grads), reduce_op="mean")  # the ranks' mean gradient
        norms = grads.norm(dim=1).double()
        present = norms > 0
        mean = norms[present].mean() if present.any() else norms.new_tensor(1.0)
        target = torch.full_like(norms, float(mean))
        if self.params.target == "gradnorm":
            loss = stats["mask_loss"].detach().double().cpu()
            if self.initial_loss is None:
                self.initial_loss = loss.clone()
            self.initial_loss = torch.where(torch.isfinite(self.initial_loss), self.initial_loss, loss)  # first seen
            rate = torch.nan_to_num(loss / self.initial_loss.clamp(min=1e-12), nan=1.0).to(norms)
            target = target * (rate / rate[present].mean().clamp(min=1e-12)) ** self.params.alpha
        self.grad_norms = norms
        self.skill_weights = torch.where(present, target / norms.clamp(min=1e-300), torch.zeros_like(norms))
        return self.skill_weights.to(losses)

    def logged(self) -> dict[str, float | torch.Tensor]:
        values = super().logged()
        if self.grad_norms is not None:
            values.update({f"grad_norm/{s}": n for s, n in zip(self.skills, self.grad_norms)})
        return values

    def state_dict(self) -> dict:
        return {"initial_loss": self.initial_loss}

    def load_state_dict(self, state_dict: dict) -> None:
        self.initial_loss = state_dict["initial_loss"]
