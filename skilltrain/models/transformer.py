"""A small pre-LayerNorm transformer encoder for token-form tasks.

tokens [B, T] → token + learned positional embeddings → depth × (x + attn(LN(x)); x + MLP(LN(x))) → LN →
pool over positions (mean, or the first token) → linear head. Attention is
`torch.nn.functional.scaled_dot_product_attention` (bidirectional: every task here sees its whole input).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from skilltrain.config import require
from skilltrain.data.base import Task
from skilltrain.errors import unknown
from skilltrain.models.base import ModelConfig, require_tokens
from skilltrain.models.mlp import ACTIVATIONS
from skilltrain.registry import MODELS

POOLS = ("mean", "first")


@dataclass
class TransformerConfig(ModelConfig):
    name: str = "transformer"
    depth: int = 2
    width: int = 64
    heads: int = 4
    mlp_ratio: int = 4
    activation: str = "gelu"
    dropout: float = 0.0
    pool: str = "mean"  # mean over positions | first (the first token, e.g. a task token)

    def validate(self) -> None:
        super().validate()
        require(self.depth >= 1, "model.depth", f"must be ≥ 1, got {self.depth}")
        require(self.heads >= 1, "model.heads", f"must be ≥ 1, got {self.heads}")
        require(self.width >= 1 and self.width % self.heads == 0, "model.width",
                f"must be a positive multiple of model.heads={self.heads}, got {self.width}")
        require(self.mlp_ratio >= 1, "model.mlp_ratio", f"must be ≥ 1, got {self.mlp_ratio}")
        require(0 <= self.dropout < 1, "model.dropout", f"must be in [0, 1), got {self.dropout}")
        if self.activation not in ACTIVATIONS:
            raise unknown("activation", self.activation, ACTIVATIONS, key="model.activation")
        if self.pool not in POOLS:
            raise unknown("pooling", self.pool, POOLS, key="model.pool")


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.heads, self.dropout = cfg.heads, cfg.dropout
        self.ln1 = nn.LayerNorm(cfg.width)
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)
        self.ln2 = nn.LayerNorm(cfg.width)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width), ACTIVATIONS[cfg.activation](),
                                 nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


@MODELS.register("transformer", "pre-LayerNorm transformer encoder on token inputs (data.token_form=true)", TransformerConfig)
class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig, task: Task, n_outputs: int):
        super().__init__()
        require_tokens(task, "a transformer")
        self.pool = cfg.pool
        self.embed = nn.Embedding(task.vocab_size, cfg.width)
        self.position = nn.Parameter(torch.zeros(task.seq_len, cfg.width))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.ln = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.position
        for block in self.blocks:
            h = block(h)
        h = self.ln(h)
        return self.head(h.mean(dim=1) if self.pool == "mean" else h[:, 0])
