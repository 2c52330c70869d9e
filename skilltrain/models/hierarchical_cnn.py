"""A deep CNN whose layers mirror a hierarchy: the network the Random Hierarchy Model's sample complexity is about.

tokens [B, T] → one-hot [B, T, v] → depth × (a convolution with kernel = stride = `patch`, activation) →
[B, 1, width] → linear head. Each layer merges `patch` neighbours into one, as one level of an s-ary tree does
(patch = the RHM's s), so the sequence must have patch^depth tokens and the depth is read off the input:
log_patch(T). Cagnetta, Petrini, Wyart et al. show such a network learns the RHM from about n_c·m^L samples,
where a shallow one needs far more.

Since kernel = stride, the patches do not overlap and the convolution is one linear map applied to every patch
(`Patches`): the same weights and outputs as Conv1d, and about twice as fast on CPU for these small inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from skilltrain.config import require
from skilltrain.data.base import Task
from skilltrain.errors import UserError, unknown
from skilltrain.models.base import ModelConfig, require_tokens
from skilltrain.models.mlp import ACTIVATIONS
from skilltrain.registry import MODELS


@dataclass
class HierarchicalCNNConfig(ModelConfig):
    name: str = "hierarchical_cnn"
    width: int = 256  # channels of every layer
    patch: int = 2  # kernel size = stride: tokens merged per layer (the RHM's branching s)
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        require(self.width >= 1, "model.width", f"must be ≥ 1, got {self.width}")
        require(self.patch >= 2, "model.patch", f"must be ≥ 2, got {self.patch}")
        if self.activation not in ACTIVATIONS:
            raise unknown("activation", self.activation, ACTIVATIONS, key="model.activation")


def tree_depth(length: int, patch: int) -> int | None:
    """L with patch^L = length, or None when the length is not a power of the patch."""
    depth = 0
    while length > 1 and length % patch == 0:
        length, depth = length // patch, depth + 1
    return depth if length == 1 and depth >= 1 else None


class Patches(nn.Module):
    """A convolution with kernel = stride = patch over [B, T, C]: each group of `patch` neighbours → one position."""

    def __init__(self, channels: int, width: int, patch: int, activation: str):
        super().__init__()
        self.patch = patch
        self.linear = nn.Linear(patch * channels, width)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, c = h.shape
        return self.activation(self.linear(h.reshape(b, t // self.patch, self.patch * c)))


@MODELS.register("hierarchical_cnn", "deep CNN, kernel = stride = model.patch, one layer per level of a tree (RHM)",
                 HierarchicalCNNConfig)
class HierarchicalCNN(nn.Module):
    def __init__(self, cfg: HierarchicalCNNConfig, task: Task, n_outputs: int):
        super().__init__()
        require_tokens(task, "hierarchical_cnn")
        depth = tree_depth(task.seq_len, cfg.patch)
        if depth is None:
            raise UserError(f"model.patch: hierarchical_cnn merges {cfg.patch} tokens per layer, so the input needs "
                            f"{cfg.patch}^depth tokens, but task {task.cfg.name} gives {task.seq_len}")
        self.vocab_size = task.vocab_size
        channels = [task.vocab_size] + [cfg.width] * depth
        self.layers = nn.ModuleList(Patches(a, b, cfg.patch, cfg.activation) for a, b in zip(channels[:-1], channels[1:]))
        self.head = nn.Linear(cfg.width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.one_hot(x, self.vocab_size).to(self.head.weight.dtype)  # [B, T, v]
        for layer in self.layers:
            h = layer(h)
        return self.head(h.squeeze(1))
