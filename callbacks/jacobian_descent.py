"""jacobian_descent: combine the skills' gradients with a multi-objective aggregator instead of summing them.

One public name; `aggregator` picks the method, each an aggregator of torchjd (Jacobian descent for PyTorch, an
optional dependency: `pip install -e ".[mtl]"`):

| aggregator | torchjd class | its own keys |
|---|---|---|
| `upgrad` (default) | UPGrad | norm_eps, reg_eps |
| `mgda` | MGDA | epsilon, max_iters |
| `pcgrad` | PCGrad | |
| `cagrad` | CAGrad | c, norm_eps |
| `imtl_g` | IMTLG | |
| `nash_mtl` | NashMTL | max_norm, optim_niter |
| `aligned_mtl` | AlignedMTL | scale_mode |
| `dualproj` | DualProj | norm_eps, reg_eps |
| `fairgrad` | FairGrad | alpha, max_iters |

`params` (every aggregator): `all` (default) takes the Jacobian over every trainable parameter; `shared` over the
parameters the skills share: an entry of a parameter that one skill owns (only that skill's loss depends on it: a
module of `model.name=modular_mlp` or of `modular_routing.mode=oracle`, a block of a per-skill head; a model declares
them, skilltrain.models.skill_owners) is left out of the Jacobian and gets the plain summed gradient, the baseline's,
while the shared entries get the aggregate of their own Jacobian. For a model without per-skill parts, shared = all.

Setting a key the chosen aggregator does not use is refused (one line), as for a mode's keys. The class,
skilltrain.callbacks.jacobian_weighting.JacobianDescent, is the method card; callbacks/README.md has the costs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass

from skilltrain.errors import UserError, require, unknown
from skilltrain.registry import lazy, register_intervention

USES = {
    "upgrad": ("norm_eps", "reg_eps"),
    "mgda": ("epsilon", "max_iters"),
    "pcgrad": (),
    "cagrad": ("c", "norm_eps"),
    "imtl_g": (),
    "nash_mtl": ("max_norm", "optim_niter"),
    "aligned_mtl": ("scale_mode",),
    "dualproj": ("norm_eps", "reg_eps"),
    "fairgrad": ("alpha", "max_iters"),
}
AGGREGATORS = tuple(USES)
SCALE_MODES = ("min", "median", "rmse")
PARAMS = ("all", "shared")
EXTRA = 'pip install -e ".[mtl]"'
DESCRIPTION = ("combine the per-skill gradients with a torchjd aggregator instead of summing them: "
               + " | ".join(AGGREGATORS))


@dataclass
class JacobianDescentConfig:
    aggregator: str = "upgrad"  # upgrad | mgda | pcgrad | cagrad | imtl_g | nash_mtl | aligned_mtl | dualproj | fairgrad
    params: str = "all"  # all | shared: the Jacobian over every parameter, or over the entries no one skill owns
    norm_eps: float | None = None  # upgrad, dualproj, cagrad: guards the Gramian's normalisation (null: torchjd's, 1e-4)
    reg_eps: float | None = None  # upgrad, dualproj: added to the Gramian's diagonal (null: torchjd's, 1e-4)
    epsilon: float | None = None  # mgda: stopping tolerance (null: torchjd's, 1e-3)
    max_iters: int | None = None  # mgda (null: 100), fairgrad (null: until its solver converges)
    c: float = 0.4  # cagrad: radius of the ball around the mean gradient (the CAGrad paper's value)
    max_norm: float = 1.0  # nash_mtl: the combined gradient's norm is clipped to it (0: no clipping)
    optim_niter: int = 20  # nash_mtl: iterations of its convex-concave solver per step
    scale_mode: str = "min"  # aligned_mtl: min | median | rmse
    alpha: float = 1.0  # fairgrad: the alpha of alpha-fairness (1: proportional fairness)

    def validate(self) -> None:
        key = "interventions.jacobian_descent"
        if self.aggregator not in USES:
            raise unknown("aggregator", self.aggregator, AGGREGATORS, key=f"{key}.aggregator")
        uses = USES[self.aggregator]
        for f in dataclasses.fields(self):
            if f.name not in ("aggregator", "params") and f.name not in uses and getattr(self, f.name) != f.default:
                users = [a for a, used in USES.items() if f.name in used]
                raise UserError(f"{key}.{f.name}: not used by aggregator={self.aggregator}, which would ignore it "
                                f"({f.name} is for {' / '.join(users)}; {self.aggregator} takes "
                                f"{', '.join(uses) or 'no parameters'})")
        if self.params not in PARAMS:
            raise unknown("parameter selection", self.params, PARAMS, key=f"{key}.params")
        if self.scale_mode not in SCALE_MODES:
            raise unknown("scale_mode", self.scale_mode, SCALE_MODES, key=f"{key}.scale_mode")
        for name in ("norm_eps", "reg_eps", "epsilon"):
            value = getattr(self, name)
            require(value is None or value >= 0, f"{key}.{name}", f"must be ≥ 0, got {value}")
        require(self.max_iters is None or self.max_iters >= 1, f"{key}.max_iters", f"must be ≥ 1, got {self.max_iters}")
        require(self.c >= 0, f"{key}.c", f"must be ≥ 0, got {self.c}")
        require(self.max_norm >= 0, f"{key}.max_norm", f"must be ≥ 0, got {self.max_norm}")
        require(self.optim_niter >= 1, f"{key}.optim_niter", f"must be ≥ 1, got {self.optim_niter}")
        require(self.alpha > 0, f"{key}.alpha", f"must be > 0, got {self.alpha}")
        require(importlib.util.find_spec("torchjd") is not None, key, f"needs torchjd, an optional dependency: {EXTRA}")


register_intervention("jacobian_descent", DESCRIPTION, JacobianDescentConfig)(
    lazy("skilltrain.callbacks.jacobian_weighting:JacobianDescent"))
