"""Optimizers by name. SignGD is Adam with betas (0, 0): Δθ = −lr · g / (|g| + eps) (PAPER.md); its weight decay is
decoupled (AdamW), so that `optim.weight_decay` means the same for signgd and adamw (the grokking comparison)."""

from __future__ import annotations

import torch

from skilltrain.registry import OPTIMIZERS


def _betas(cfg, default=(0.9, 0.999)):
    return tuple(cfg.betas) if cfg.betas is not None else default


OPTIMIZERS.register("adam", "Adam (betas from optim.betas, default (0.9, 0.999))")(
    lambda params, cfg: torch.optim.Adam(params, lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps, weight_decay=cfg.weight_decay)
)
OPTIMIZERS.register("adamw", "AdamW (decoupled weight decay optim.weight_decay)")(
    lambda params, cfg: torch.optim.AdamW(params, lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps, weight_decay=cfg.weight_decay)
)
OPTIMIZERS.register("sgd", "SGD (optim.momentum, optim.weight_decay)")(
    lambda params, cfg: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
)
OPTIMIZERS.register("signgd", "SignGD: Adam with betas (0, 0), i.e. update = -lr * g / (|g| + eps) (+ decoupled decay)")(
    lambda params, cfg: torch.optim.AdamW(params, lr=cfg.lr, betas=(0.0, 0.0), eps=cfg.eps, weight_decay=cfg.weight_decay)
)


def build_optimizer(params, cfg) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.name).obj(params, cfg)
