"""Two-skill regression of exp. 4 in docs/experiments.md (Fig 19): a frequent and a rare skill on separate outputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skilltrain.config import require
from skilltrain.data.base import DataConfig, Task
from skilltrain.registry import TASKS


@dataclass
class TwoSkillRegressionConfig(DataConfig):
    name: str = "two_skill_regression"
    rare_fraction: float = 0.01  # share r of the rare skill x2sq: default frequencies [1 − r, r]
    n_samples: int | None = 1000  # the paper's N = 1000 rows: 990 of x1sq and 10 of x2sq at r = 0.01
    batch_size: int | None = None
    eval_samples: int = 500  # per skill

    def validate(self) -> None:
        super().validate()
        r = self.rare_fraction
        require(0 < r < 1, "data.rare_fraction", f"must be in (0, 1), got {r}")
        require(not self.token_form, "data.token_form", "two_skill_regression has continuous inputs; it has no token form")


@TASKS.register(
    "two_skill_regression",
    "exp. 4: x = (u, 0) → u² on output 1 (frequent), x = (0, u) → u² on output 2 (rare); u ~ U[−1, 1]",
    TwoSkillRegressionConfig,
)
class TwoSkillRegression(Task):
    """Control form with a per-skill head: each sample's squared error is on its own skill's output unit."""

    form = "control"
    loss = "mse"
    accuracy = False
    head = "per_skill"

    def __init__(self, cfg: TwoSkillRegressionConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        self.n_inputs = 2
        self.finish(["x1sq", "x2sq"], [1 - cfg.rare_fraction, cfg.rare_fraction])

    def sample(self, n, generator, skill=None):
        assert skill is not None and len(skill) == n
        u = torch.rand(n, generator=generator, device=generator.device, dtype=self.dtype) * 2 - 1
        x = torch.zeros(n, 2, device=generator.device, dtype=self.dtype)
        x[torch.arange(n, device=x.device), skill] = u  # skill 0 sets x1, skill 1 sets x2; the other stays 0
        return {"x": x, "y": u**2, "skill": skill}
