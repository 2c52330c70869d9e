"""Your own model, as a plugin: a residual MLP with layer norm.

    python -m skilltrain fit recipe=compositional plugins=[examples/own_model.py] model.name=residual_mlp model.depth=3

A model is any `torch.nn.Module` built as `cls(config, task, n_outputs)` that maps a batch's `x` to
`[B, n_outputs]`; its config dataclass extends `skilltrain.ModelConfig` (which brings `model.dtype` and
`model.head`), and its fields become `model.*` keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import skilltrain


@dataclass
class ResidualMLPConfig(skilltrain.ModelConfig):
    name: str = "residual_mlp"
    width: int = 64
    depth: int = 2  # residual blocks

    def validate(self) -> None:
        super().validate()
        if self.width < 1 or self.depth < 1:
            raise ValueError(f"width and depth must be ≥ 1, got {self.width} and {self.depth}")


@skilltrain.register_model("residual_mlp", "pre-LayerNorm residual MLP (an example plugin)", ResidualMLPConfig)
class ResidualMLP(nn.Module):
    def __init__(self, cfg: ResidualMLPConfig, task: skilltrain.Task, n_outputs: int):
        super().__init__()
        self.vocab_size = task.vocab_size  # token inputs are one-hot encoded
        n_inputs = task.vocab_size * task.seq_len if task.tokens else task.n_inputs
        self.embed = nn.Linear(n_inputs, cfg.width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(cfg.width), nn.Linear(cfg.width, 4 * cfg.width), nn.GELU(),
                          nn.Linear(4 * cfg.width, cfg.width)) for _ in range(cfg.depth))
        self.head = nn.Sequential(nn.LayerNorm(cfg.width), nn.Linear(cfg.width, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.vocab_size is not None:
            x = nn.functional.one_hot(x, self.vocab_size).flatten(1).to(self.embed.weight.dtype)
        h = self.embed(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)
