"""Models, registered by name: build_model(cfg.model, task) → an nn.Module mapping a batch's x to outputs."""

from __future__ import annotations

from torch import nn

from skilltrain.data.base import Task
from skilltrain.models import embedding_mlp, hierarchical_cnn, mlp, modular, transformer  # noqa: F401  (register)
from skilltrain.models.base import DTYPES, ModelConfig
from skilltrain.registry import MODELS


def per_skill_head(cfg: ModelConfig, task: Task) -> bool:
    """Whether the model has one output block per skill, of which each sample uses its own (control form only)."""
    return task.form == "control" and (cfg.head == "per_skill" or (cfg.head == "auto" and task.head == "per_skill"))


def build_model(cfg: ModelConfig, task: Task) -> nn.Module:
    """The model named by cfg.name for this task's inputs, with task.n_outputs outputs (× skills for a per-skill head)."""
    n_outputs = task.n_outputs * (task.n_skills if per_skill_head(cfg, task) else 1)
    model = MODELS.get(cfg.name).obj(cfg, task, n_outputs)
    return model.to(DTYPES[cfg.dtype])


__all__ = ["ModelConfig", "build_model", "per_skill_head", "DTYPES"]
