"""Skill-tagged data: tasks (registered by name), seeded batch streams and the Lightning datamodule."""

from __future__ import annotations

import torch

from skilltrain.data import (
    composition,  # noqa: F401  (registers compositional_sparse_parity, dependency_graph)
    hf,  # noqa: F401  (registers hf: users' own data sets)
    modular,  # noqa: F401  (registers modular_addition)
    parity,  # noqa: F401  (registers the parity tasks)
    regression,  # noqa: F401  (registers two_skill_regression)
    rhm,  # noqa: F401  (registers rhm)
)
from skilltrain.data.base import DataConfig, Task
from skilltrain.registry import TASKS


def build_task(cfg: DataConfig, seed: int, dtype: torch.dtype = torch.float32) -> Task:
    """The task named by `cfg.name`, its random structure drawn from `seed` (the data seed)."""
    return TASKS.get(cfg.name).obj(cfg, seed, dtype)


__all__ = ["DataConfig", "Task", "build_task"]
