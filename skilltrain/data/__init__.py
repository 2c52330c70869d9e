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
from skilltrain.data.base import DTYPES, DataConfig, Task
from skilltrain.registry import TASKS


def build_task(cfg: DataConfig, seed: int, dtype: torch.dtype = torch.float32) -> Task:
    """The task named by `cfg.name`, its random structure drawn from `seed` (the data seed)."""
    return TASKS.get(cfg.name).obj(cfg, seed, dtype)


def task_of_run(saved, plugins=(), trust_plugins: bool = False) -> Task:
    """The task a finished run trained on, rebuilt from its saved config: `saved` is its run directory (a
    skilltrain.rundir.RunDir or a path; its plugins imported only as `plugins` and `trust_plugins` say) or the saved
    config itself (an OmegaConf node)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from skilltrain.config import from_container
    from skilltrain.rundir import RunDir

    if isinstance(saved, (RunDir, str, Path)):
        run = saved if isinstance(saved, RunDir) else RunDir(saved)
        container = run.config_for_reading(plugins, trust_plugins)
        with run.explaining_plugins():
            cfg = from_container(container, f"the saved config of {run.path}")
    else:
        cfg = from_container(OmegaConf.to_container(saved), "the run's saved config")
    seed = cfg.data.seed if cfg.data.seed is not None else cfg.seed
    return build_task(OmegaConf.to_object(cfg.data), seed, DTYPES[cfg.model.dtype])


__all__ = ["DataConfig", "Task", "build_task", "task_of_run"]
