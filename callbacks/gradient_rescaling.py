"""gradient_rescaling: give every skill the same share of the update, whatever its frequency or loss scale.

One public name, three modes, each its own class in the family of what it changes:

| mode | class | family |
|---|---|---|
| `loss_normalize` (default) | LossNormalize | loss weighting |
| `grad_norm` | GradNormWeighting | loss weighting (weights from per-skill gradients) |
| `sign` | SignGradients | gradient editing |

The classes' docstrings are their method cards; callbacks/README.md has the measured tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from skilltrain.errors import require, unknown
from skilltrain.registry import lazy, register_intervention

TARGETS = ("mean", "gradnorm")
DESCRIPTION = "equal update budget per skill: loss_normalize (Σ L_k/sg(L_k)) | grad_norm (per-skill gradients) | sign"


@dataclass
class GradientRescalingConfig:
    mode: str = "loss_normalize"  # loss_normalize | grad_norm | sign
    eps: float = 1.0e-8  # loss_normalize: L_k / (sg(L_k) + eps)
    learned_threshold: float | None = None  # loss_normalize: a skill past it is learned (null: metric.threshold)
    target: str = "mean"  # grad_norm: mean (the mean norm for every skill) | gradnorm (GradNorm's target)
    alpha: float = 1.0  # grad_norm with target=gradnorm: strength of the pull toward lagging skills

    def validate(self) -> None:
        key = "interventions.gradient_rescaling"
        if self.target not in TARGETS:
            raise unknown("target", self.target, TARGETS, key=f"{key}.target")
        require(self.eps > 0, f"{key}.eps", f"must be > 0, got {self.eps}")
        require(self.alpha >= 0, f"{key}.alpha", f"must be ≥ 0, got {self.alpha}")


for _mode, _target, _uses in (
        ("loss_normalize", "skilltrain.callbacks.loss_weighting:LossNormalize", ("eps", "learned_threshold")),
        ("grad_norm", "skilltrain.callbacks.loss_weighting:GradNormWeighting", ("target", "alpha")),
        ("sign", "skilltrain.callbacks.gradient_editing:SignGradients", ())):
    register_intervention("gradient_rescaling", DESCRIPTION, GradientRescalingConfig, mode=_mode, uses=_uses)(lazy(_target))
