"""Models, registered by name: build_model(cfg.model, task) → an nn.Module mapping a batch's x to outputs."""

from __future__ import annotations

import torch
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


def skill_owners(model: nn.Module) -> dict[str, torch.Tensor]:
    """{parameter name: the skill that owns each of its entries, −1 where the skills share it}: an entry is skill k's
    when only skill k's loss depends on it (a module of a modular model, a per-skill head's block). A model says so
    with a `skill_owners()` method; a parameter it does not name, and every parameter of a model without one, is
    shared."""
    method = getattr(model, "skill_owners", None)
    return dict(method()) if callable(method) else {}


__all__ = ["ModelConfig", "build_model", "per_skill_head", "skill_owners", "DTYPES"]
