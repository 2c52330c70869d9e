"""gradient_rescaling: give every skill the same share of the update, whatever its frequency or loss scale.

Method card
-----------
What it does. The resource model (PAPER.md) says skills compete for one update budget in proportion to their
frequency and loss; this intervention equalises that budget across skills.

Formulas (L_k: skill k's mean loss over its entries in the objective; sg: stop-gradient):
- `loss_normalize` (default): L = Σ_k L_k / (sg(L_k) + eps). Every skill contributes a gradient of relative size
  ∇L_k / L_k, i.e. the same "budget" in log-loss. Implemented as per-skill weights 1 / (share_k · (L_k + eps)) on
  the loss matrix, with L_k and share_k all-reduced across ranks. Extra cost O(K): one weight per skill.
- `grad_norm`: exact per-skill gradients g_k = ∇ S_k (S_k: skill k's part of the loss), each rescaled to a common
  norm before summing: L = Σ_k (target_k / ‖g_k‖) S_k. target_k = the mean of the ‖g_j‖ (`target=mean`), or, as in
  GradNorm, that mean times (r_k)^alpha with r_k = (L_k / L_k(0)) / mean_j (L_j / L_j(0)) (`target=gradnorm`: skills
  that have progressed least get more). The per-skill gradients are all-reduced across ranks before their norms
  are taken. Cost: K extra backward passes per step (bench/interventions.py measures it against K).
- `sign`: the sign of the summed gradient, g ← sign(g), in `on_before_optimizer_step` (after DDP's all-reduce,
  before clipping): SignGD's mechanism as a callback for any optimizer.

Per-skill weights (and gradient norms) are logged as `intervention/gradient_rescaling/{weight,grad_norm}/<skill>`.

When it helps, when it hurts. See callbacks/README.md for the measured A/B tables. Equalising budgets speeds the
rare skill at some cost to the frequent one; loss normalisation amplifies the gradient of skills whose loss is
already tiny (eps bounds it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skilltrain.callbacks.intervention import Intervention
from skilltrain.config import require
from skilltrain.errors import unknown
from skilltrain.registry import INTERVENTIONS

MODES = ("loss_normalize", "grad_norm", "sign")
TARGETS = ("mean", "gradnorm")


@dataclass
class GradientRescalingConfig:
    mode: str = "loss_normalize"  # loss_normalize | grad_norm | sign
    eps: float = 1.0e-8  # loss_normalize: L_k / (sg(L_k) + eps)
    target: str = "mean"  # grad_norm: mean (the mean norm for every skill) | gradnorm (GradNorm's target)
    alpha: float = 1.0  # grad_norm with target=gradnorm: strength of the pull toward lagging skills

    def validate(self) -> None:
        key = "interventions.gradient_rescaling"
        if self.mode not in MODES:
            raise unknown("mode", self.mode, MODES, key=f"{key}.mode")
        if self.target not in TARGETS:
            raise unknown("target", self.target, TARGETS, key=f"{key}.target")
        require(self.eps > 0, f"{key}.eps", f"must be > 0, got {self.eps}")
        require(self.alpha >= 0, f"{key}.alpha", f"must be ≥ 0, got {self.alpha}")


@INTERVENTIONS.register(
    "gradient_rescaling",
    "equal update budget per skill: loss_normalize (Σ L_k/sg(L_k)) | grad_norm (per-skill gradients) | sign",
    GradientRescalingConfig,
)
class GradientRescaling(Intervention):
    name = "gradient_rescaling"

    def __init__(self, params: GradientRescalingConfig, task):
        super().__init__(params, task)
        self.initial_loss: torch.Tensor | None = None  # gradnorm target: L_k(0), per skill
        self.weights: torch.Tensor | None = None
        self.grad_norms: torch.Tensor | None = None

    @property
    def touches(self) -> frozenset[str]:
        return frozenset({"gradients"} if self.params.mode == "sign" else {"loss"})

    def check(self, cfg) -> None:
        # grad_norm's per-skill gradients are taken in training_step, before the AMP loss scaler: in float16 they
        # could underflow to zero and silently switch a skill off.
        require(self.params.mode != "grad_norm" or not str(cfg.trainer.precision).startswith("16"), "trainer.precision",
                f"{cfg.trainer.precision} cannot be used with interventions.gradient_rescaling.mode=grad_norm "
                "(per-skill gradients would underflow in float16); use bf16-mixed or 32")

    def loss_weights(self, module, losses, mask, stats):
        if self.params.mode == "loss_normalize":
            share = torch.nan_to_num(stats["mask_share"])
            scale = share * (torch.nan_to_num(stats["mask_loss"]) + self.params.eps)
            self.weights = torch.where(share > 0, 1 / scale.clamp(min=1e-300), torch.zeros_like(scale))
        elif self.params.mode == "grad_norm":
            self.weights = self._grad_norm_weights(module, losses, mask, stats)
        else:
            return None
        return self.weights.to(losses)

    def _grad_norm_weights(self, module, losses, mask, stats) -> torch.Tensor:
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
        return torch.where(present, target / norms.clamp(min=1e-300), torch.zeros_like(norms))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.params.mode == "sign":
            for p in pl_module.parameters():
                if p.grad is not None:
                    p.grad.sign_()

    def logged(self) -> dict[str, float | torch.Tensor]:
        values = {}
        if self.weights is not None:
            values.update({f"weight/{s}": w for s, w in zip(self.skills, self.weights)})
        if self.grad_norms is not None:
            values.update({f"grad_norm/{s}": n for s, n in zip(self.skills, self.grad_norms)})
        return values

    def state_dict(self) -> dict:
        return {"initial_loss": self.initial_loss}

    def load_state_dict(self, state_dict: dict) -> None:
        self.initial_loss = state_dict["initial_loss"]
