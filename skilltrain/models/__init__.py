"""Models, registered by name: build_model(cfg.model, task) → an nn.Module mapping a batch's x to outputs."""

from __future__ import annotations

from torch import nn

from skilltrain.data.base import Task
from skilltrain.models import mlp  # noqa: F401  (registers the MLP)
from skilltrain.models.base import DTYPES, ModelConfig
from skilltrain.registry import MODELS


def build_model(cfg: ModelConfig, task: Task) -> nn.Module:
    model = MODELS.get(cfg.name).obj(cfg, task.n_inputs, task.n_outputs)
    return model.to(DTYPES[cfg.dtype])


__all__ = ["ModelConfig", "build_model", "DTYPES"]
