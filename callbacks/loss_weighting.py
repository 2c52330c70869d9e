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
from skilltrain.callbacks.run.skill_progress import MIN_SAMPLES
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

    When it helps. When a rare skill is starved of gradient (the rare parity of `domino_2task`, the 1%-rare
    regression skill). Measured, with intervals: callbacks/README.md.

    When it hurts. The update budget is moved, not grown: the frequent skill is learned later.
    """

    stackable = True

    def __init__(self, params, task):
        super().__init__(params, task)
        p = torch.tensor(task.frequencies, dtype=torch.float64)
        self.skill_weights = (1 / p) * p.sum() / len(p)

    def loss_weights(self, module, losses, mask, stats):
        if self.skill_weights.device != losses.device:  # once: the weights live on the training device
            self.skill_weights = self.skill_weights.to(losses.device)
        return self.skill_weights.to(losses.dtype)


class SelfReweighting(LossWeighting):
    """Self-reweighting (`skill_reweighting`, mode `self`).

    What it does. Weights every loss entry by its own size relative to the mean loss: the objective spends its budget
    where the loss is.

    Formula. ℓ̃ = Σ_b Σ_k M·ℓ · sg(ℓ) / sg(ℓ̄) / B, ℓ̄ the mean over the entries in the objective (all-reduced across
    ranks), sg the stop-gradient; the logged weight of skill k is its mean loss over ℓ̄.

    Parameters. None.

    When it helps. When skills differ in how far they are from learned and the loss says so.

    When it hurts. It barely helps on parity skills (intervals include no speedup): a parity skill's loss stays flat
    at chance until it is learned, so loss size says little about what is learnable next.
    """

    stackable = True

    def loss_weights(self, module, losses, mask, stats):
        share = torch.nan_to_num(stats["mask_share"])
        mean = (torch.nan_to_num(stats["mask_loss"]) * share).sum() / share.sum().clamp(min=1e-12)
        self.skill_weights = stats["mask_loss"] / mean.clamp(min=1e-12)
        return losses.detach() / mean.clamp(min=1e-12).to(losses.dtype)


class LossNormalize(LossWeighting):
    """Per-skill loss normalisation (`gradient_rescaling`, mode `loss_normalize`, the default).

    What it does. The Resource model of arXiv 2501.12391 says skills compete for one update budget in proportion to
    their frequency and loss; this gives every skill that is still being learned the same share of it.

    Formula. L = Σ_{k not learned} L_k / sg(L_k + eps) + Σ_{k learned} share_k · L_k: every skill still to learn
    contributes a gradient ∇L_k / L_k, an equal budget in log-loss; a learned skill goes back to its natural weight.
    As per-skill weights on the loss matrix: 1 / (share_k · (L_k + eps)), or 1 once learned, with L_k and share_k
    all-reduced across ranks. "Learned" is read off the training statistics with the evidence rule of the learn steps:
    the skill's training metric (accuracy, or the loss for `metric.name=loss`) averaged over its most recent
    ~`metric.min_samples` samples (an exponentially weighted pool: each step's n samples discount the pool by
    exp(−n / min_samples); in a full batch, the step itself), once the pool holds that many, is past the run's
    `metric.threshold` (`learned_threshold` overrides it); a skill that falls back is normalised again.

    Parameters. `eps`, `learned_threshold`.

    When it helps. The strongest intervention measured here for a rare skill (the rare parity of `domino_2task`, the
    rare regression skill, whose frequent partner is faster too), and for many Zipf skills. Measured, with
    intervals: callbacks/README.md.

    When it hurts. Normalising a skill that is already learned gives it a full share forever (its weight 1/L_k grows
    as L_k → 0) and starves the skills still to come (a first version did, and left multitask skills unlearned);
    learned skills therefore return to their natural weight. Until a skill is recognised as
    learned, its weight still grows, and rounding differences are amplified (DDP and one process drift apart).
    """

    stackable = True

    def __init__(self, params, task):
        super().__init__(params, task)
        self.metric = "acc" if task.accuracy else "loss"  # the run's metric.* once `check` has seen the config
        self.threshold = params.learned_threshold if params.learned_threshold is not None else (
            0.9 if task.accuracy else None)  # a user's own Trainer with regression skills: set learned_threshold
        self.min_samples = MIN_SAMPLES
        self.pooled: torch.Tensor | None = None  # [2, K]: discounted Σ metric·n and Σ n of each skill's samples

    def check(self, cfg) -> None:
        if cfg is not None:
            self.metric = cfg.metric.name
            # a full batch measures the whole training set every step: one step is the evidence, as for learn steps
            self.min_samples = 1 if cfg.data.batch_size is None else cfg.metric.min_samples
            if self.params.learned_threshold is None:
                self.threshold = cfg.metric.threshold

    def loss_weights(self, module, losses, mask, stats):
        share = torch.nan_to_num(stats["mask_share"])
        normalised = torch.where(share > 0, 1 / (share * (torch.nan_to_num(stats["mask_loss"]) + self.params.eps))
                                 .clamp(max=1e300), torch.zeros_like(share))
        learned = self._learned(stats)
        self.skill_weights = torch.where(learned, torch.ones_like(normalised), normalised)
        return self.skill_weights.to(losses.dtype)

    def _learned(self, stats: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per skill, whether its recent samples (about min_samples of them) put it past the threshold. On the
        device, from all-reduced statistics: no synchronisation, the same on every rank."""
        count = stats["count"].detach()
        value = torch.nan_to_num(stats[self.metric].detach()) * count
        if self.pooled is None:
            self.pooled = torch.zeros(2, len(count), dtype=count.dtype, device=count.device)
        if self.pooled.device != count.device:  # (restored from a checkpoint on the CPU)
            self.pooled = self.pooled.to(count.device)
        keep = torch.exp(-count / self.min_samples)  # a full batch of ≫ min_samples samples replaces the pool
        self.pooled = self.pooled * keep + torch.stack([value, count])
        if self.threshold is None:
            return torch.zeros_like(count, dtype=torch.bool)
        mean = self.pooled[0] / self.pooled[1].clamp(min=1e-12)
        enough = self.pooled[1] >= (1 - 1 / torch.e) * self.min_samples  # what min_samples samples leave in the pool
        return enough & (mean >= self.threshold if self.metric == "acc" else mean <= self.threshold)

    def state_dict(self) -> dict:
        return {"pooled": self.pooled}

    def load_state_dict(self, state_dict: dict) -> None:
        self.pooled = state_dict["pooled"]


class GradNormWeighting(LossWeighting):
    """Per-skill gradient-norm equalisation (`gradient_rescaling`, mode `grad_norm`; GradNorm's family).

    What it does. Rescales each skill's gradient to a common norm before the gradients are summed.

    Formula. Exact per-skill gradients g_k = ∇S_k (S_k: skill k's part of the loss; one extra backward pass per
    skill, all-reduced across ranks), each rescaled: L = Σ_k (target_k / ‖g_k‖) S_k. target_k = the mean of the
    ‖g_j‖ (`target=mean`), or, as in GradNorm, that mean times r_k^alpha with r_k = (L_k / L_k(0)) / mean_j (L_j /
    L_j(0)) (`target=gradnorm`: skills that have progressed least get more). Logged: the norms, `grad_norm/<skill>`.

    Parameters. `target`, `alpha`.

    When it helps. Skills whose gradients differ in scale by orders of magnitude. Measured, with intervals:
    callbacks/README.md.

    When it hurts. It costs K extra backward passes per step (bench/interventions.py), and it left the rare
    regression skill unlearned in some seeds. Refused under float16 (the per-skill gradients are taken before the AMP loss
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
        n_present = present.sum()  # (masked means on the device: nothing is read back to the host)
        mean = torch.where(n_present > 0, torch.where(present, norms, 0).sum() / n_present.clamp(min=1), 1.0)
        target = mean.expand_as(norms)
        if self.params.target == "gradnorm":
            loss = stats["mask_loss"].detach().double()
            if self.initial_loss is None:
                self.initial_loss = loss.clone()
            if self.initial_loss.device != loss.device:  # (restored from a checkpoint on the CPU)
                self.initial_loss = self.initial_loss.to(loss.device)
            self.initial_loss = torch.where(torch.isfinite(self.initial_loss), self.initial_loss, loss)  # first seen
            rate = torch.nan_to_num(loss / self.initial_loss.clamp(min=1e-12), nan=1.0)
            rate_mean = torch.where(present, rate, 0).sum() / n_present.clamp(min=1)
            target = target * (rate / rate_mean.clamp(min=1e-12)) ** self.params.alpha
        self.grad_norms = norms
        self.skill_weights = torch.where(present, target / norms.clamp(min=1e-300), torch.zeros_like(norms))
        return self.skill_weights.to(losses.dtype)

    def logged(self) -> dict[str, float | torch.Tensor]:
        values = super().logged()
        if self.grad_norms is not None:
            values.update({f"grad_norm/{s}": n for s, n in zip(self.skills, self.grad_norms)})
        return values

    def state_dict(self) -> dict:
        return {"initial_loss": self.initial_loss}

    def load_state_dict(self, state_dict: dict) -> None:
        self.initial_loss = state_dict["initial_loss"]
