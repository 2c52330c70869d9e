"""skilltrain: train networks on skill-structured data and measure, skill by skill, how they learn.

The public API is what `__all__` lists (docs/extending.md; everything else is internal):

- run things: `fit`, `compare`, `load_config`, `intervention`; their results `RunResult`, `ComparisonResult`;
- extend it: `register_task`, `register_model`, `register_optimizer`, `register_intervention` (decorators; `lazy`
  defers an import), the base classes `Task`, `DataConfig`, `ModelConfig`, `OptimConfig`, `Intervention` and its
  families `LossWeighting`, `DataSampling`, `GradientEditing`, `Architecture`;
- bring your own Lightning pieces: `SkillModule`, `SkillProgress` (learn steps), `SkillDataModule`;
- `UserError`: a mistake in the input, one line.

The module `skilltrain.testing` is public too: the checks a plugin's entries pass (`python -m skilltrain check`).

Importing skilltrain imports none of torch, Lightning, W&B or datasets: each name loads its module when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_WHERE = {
    "fit": "skilltrain.api",
    "compare": "skilltrain.api",
    "load_config": "skilltrain.api",
    "intervention": "skilltrain.api",
    "RunResult": "skilltrain.run",
    "ComparisonResult": "skilltrain.comparison",
    "register_task": "skilltrain.registry",
    "register_model": "skilltrain.registry",
    "register_optimizer": "skilltrain.registry",
    "register_intervention": "skilltrain.registry",
    "lazy": "skilltrain.registry",
    "Task": "skilltrain.data.base",
    "DataConfig": "skilltrain.data.base",
    "ModelConfig": "skilltrain.models.base",
    "OptimConfig": "skilltrain.config",
    "Intervention": "skilltrain.callbacks.intervention",
    "LossWeighting": "skilltrain.callbacks.loss_weighting",
    "DataSampling": "skilltrain.callbacks.data_sampling",
    "GradientEditing": "skilltrain.callbacks.gradient_editing",
    "Architecture": "skilltrain.callbacks.architecture",
    "SkillModule": "skilltrain.module",
    "SkillProgress": "skilltrain.callbacks.run.skill_progress",
    "SkillDataModule": "skilltrain.data.datamodule",
    "UserError": "skilltrain.errors",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name == "testing":  # the test kit, a public module: `skilltrain.testing.check_intervention(...)`
        return importlib.import_module("skilltrain.testing")
    if name not in _WHERE:
        raise AttributeError(f"module 'skilltrain' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
