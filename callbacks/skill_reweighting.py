"""skill_reweighting: give rare or lagging skills more of the loss, or more of the data.

One public name, four modes, each its own class in the family of what it changes:

| mode | class | family |
|---|---|---|
| `inverse_frequency` (default) | InverseFrequency | loss weighting |
| `self` | SelfReweighting | loss weighting |
| `balanced_sampling` | BalancedSampling | data sampling |
| `online` | OnlineEG (`algorithm=eg`) or OnlineEXP3 (`algorithm=exp3`) | data sampling |
| `resource` | ResourceGuided (the mixture a Resource model fitted to the run recommends) | data sampling |

The classes' docstrings are their method cards; callbacks/README.md has the measured tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from skilltrain.errors import require, unknown
from skilltrain.registry import lazy, register_intervention

ALGORITHMS = ("eg", "exp3")
SIGNALS = ("loss", "progress")
DESCRIPTION = ("per-skill loss weights or skill sampling: inverse_frequency | self | balanced_sampling | online (DoReMi / "
               "EXP3) | resource (the mixture a Resource model fitted to the run recommends)")


@dataclass
class SkillReweightingConfig:
    mode: str = "inverse_frequency"  # inverse_frequency | self | balanced_sampling | online | resource
    exponent: float = 0.0  # balanced_sampling: rates ∝ p^exponent (0: uniform, 1: natural)
    algorithm: str = "eg"  # online: eg (exponentiated gradient, DoReMi) | exp3 (bandit, Online Data Mixing)
    signal: str = "loss"  # online: loss (EMA of the per-skill loss) | progress (its relative decrease)
    lr: float = 1.0  # online: step size of the mixture update
    ema: float = 0.9  # online: EMA factor of the signal
    floor: float = 0.05  # online: every skill keeps at least floor / K of the mixture
    update_every: int = 10  # online: steps between mixture updates
    fit_every: int = 200  # resource: steps between fits of the Resource model (and mixture updates)
    max_slowdown: float = 1.25  # resource: no unlearned skill predicted to be learned later than this × natural

    def validate(self) -> None:
        key = "interventions.skill_reweighting"
        if self.algorithm not in ALGORITHMS:
            raise unknown("algorithm", self.algorithm, ALGORITHMS, key=f"{key}.algorithm")
        if self.signal not in SIGNALS:
            raise unknown("signal", self.signal, SIGNALS, key=f"{key}.signal")
        require(self.exponent >= 0, f"{key}.exponent", f"must be ≥ 0, got {self.exponent}")
        require(self.lr > 0, f"{key}.lr", f"must be > 0, got {self.lr}")
        require(0 <= self.ema < 1, f"{key}.ema", f"must be in [0, 1), got {self.ema}")
        require(0 < self.floor < 1, f"{key}.floor", f"must be in (0, 1), got {self.floor}")
        require(self.update_every >= 1, f"{key}.update_every", f"must be ≥ 1, got {self.update_every}")
        require(self.fit_every >= 1, f"{key}.fit_every", f"must be ≥ 1, got {self.fit_every}")
        require(self.max_slowdown >= 1, f"{key}.max_slowdown", f"must be ≥ 1, got {self.max_slowdown}")


def _register(mode: str, target, uses: tuple[str, ...] = ()) -> None:
    register_intervention("skill_reweighting", DESCRIPTION, SkillReweightingConfig, mode=mode, uses=uses)(target)


def online(params: SkillReweightingConfig, task):
    """`online`: the mixture algorithm named by `algorithm`."""
    from skilltrain.callbacks.data_sampling import OnlineEG, OnlineEXP3

    return {"eg": OnlineEG, "exp3": OnlineEXP3}[params.algorithm](params, task)


_register("inverse_frequency", lazy("skilltrain.callbacks.loss_weighting:InverseFrequency"))
_register("self", lazy("skilltrain.callbacks.loss_weighting:SelfReweighting"))
_register("balanced_sampling", lazy("skilltrain.callbacks.data_sampling:BalancedSampling"), ("exponent",))
_register("online", online, ("algorithm", "signal", "lr", "ema", "floor", "update_every"))
_register("resource", lazy("skilltrain.callbacks.resource_guided:ResourceGuided"), ("ema", "floor", "fit_every", "max_slowdown"))
