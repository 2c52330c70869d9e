"""Token embeddings, concatenated, into an MLP: the grokking network of exp. 5 (docs/experiments.md).

tokens [B, T] → a learnable embedding per token (one table, N(0, 1) init) → concatenate → MLP → outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from skilltrain.config import require
from skilltrain.data.base import Task
from skilltrain.models.base import require_tokens
from skilltrain.models.mlp import ACTIVATIONS, HiddenLayersConfig
from skilltrain.registry import MODELS


@dataclass
class EmbeddingMLPConfig(HiddenLayersConfig):
    name: str = "embedding_mlp"
    embed_dim: int = 128
    widths: list[int] = field(default_factory=lambda: [100, 100])
    activation: str = "silu"

    def validate(self) -> None:
        super().validate()
        require(self.embed_dim >= 1, "model.embed_dim", f"must be ≥ 1, got {self.embed_dim}")


@MODELS.register("embedding_mlp", "learnable token embeddings, concatenated, into an MLP (grokking)", EmbeddingMLPConfig)
class EmbeddingMLP(nn.Module):
    def __init__(self, cfg: EmbeddingMLPConfig, task: Task, n_outputs: int):
        super().__init__()
        require_tokens(task, "embedding_mlp")
        self.embed = nn.Embedding(task.vocab_size, cfg.embed_dim)  # N(0, 1) init, as the paper
        sizes = [task.seq_len * cfg.embed_dim, *cfg.widths]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[cfg.activation]()]
        layers.append(nn.Linear(sizes[-1], n_outputs))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embed(x).flatten(1))
