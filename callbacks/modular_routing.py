"""modular_routing: one module per skill, so that skills stop competing for one update budget.

One public name, two modes, both in the architecture family:

| mode | class |
|---|---|
| `oracle` (default) | OracleModules: a block-diagonal module per skill, routed by skill id |
| `learned` | LearnedRouting: top-k expert MLPs with a router and a load-balancing loss |

The classes' docstrings are their method cards; callbacks/README.md has the measured tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from skilltrain.errors import require
from skilltrain.registry import lazy, register_intervention

DESCRIPTION = "one module per skill: oracle (block-diagonal, routed by skill id) | learned (top-k experts + load balancing)"


@dataclass
class ModularRoutingConfig:
    mode: str = "oracle"  # oracle (a module per skill, routed by skill id) | learned (top-k experts, routed by input)
    split_inputs: bool = False  # oracle: also split the input features between modules
    n_experts: int | None = None  # learned: number of experts (null: one per skill)
    top_k: int = 1  # learned: experts mixed per sample
    balance: float = 0.01  # learned: weight of the load-balancing loss

    def validate(self) -> None:
        key = "interventions.modular_routing"
        require(self.n_experts is None or self.n_experts >= 2, f"{key}.n_experts", f"must be ≥ 2, got {self.n_experts}")
        require(self.top_k >= 1, f"{key}.top_k", f"must be ≥ 1, got {self.top_k}")
        require(self.balance >= 0, f"{key}.balance", f"must be ≥ 0, got {self.balance}")


for _mode, _target, _uses in (("oracle", "skilltrain.callbacks.architecture:OracleModules", ("split_inputs",)),
                              ("learned", "skilltrain.callbacks.architecture:LearnedRouting", ("n_experts", "top_k", "balance"))):
    register_intervention("modular_routing", DESCRIPTION, ModularRoutingConfig, mode=_mode, uses=_uses)(lazy(_target))
