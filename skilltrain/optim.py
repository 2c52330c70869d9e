"""Optimizers by name, and learning-rate schedules.

SignGD is Adam with betas (0, 0): Δθ = −lr · g / (|g| + eps) (arXiv 2501.12391 uses it to show the Domino
mechanism); its weight decay is decoupled (AdamW), so that `optim.weight_decay` means the same for signgd and adamw
(the grokking comparison).

Schedules come from `torch.optim.lr_scheduler` and are stepped once per optimizer step: an optional linear warm-up
(`optim.warmup_steps`) followed by `optim.scheduler`. Their state is in the checkpoint, so a resume continues them.
"""

from __future__ import annotations

import torch
from torch.optim import lr_scheduler

from skilltrain.registry import OPTIMIZERS, register_optimizer


def _betas(cfg, default=(0.9, 0.999)):
    return tuple(cfg.betas) if cfg.betas is not None else default


@register_optimizer("adam", "Adam (betas from optim.betas, default (0.9, 0.999))")
def adam(params, cfg):
    return torch.optim.Adam(params, lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps, weight_decay=cfg.weight_decay)


@register_optimizer("adamw", "AdamW (decoupled weight decay optim.weight_decay)")
def adamw(params, cfg):
    return torch.optim.AdamW(params, lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps, weight_decay=cfg.weight_decay)


@register_optimizer("sgd", "SGD (optim.momentum, optim.weight_decay)")
def sgd(params, cfg):
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


@register_optimizer("signgd", "SignGD: Adam with betas (0, 0), i.e. update = -lr * g / (|g| + eps) (+ decoupled decay)")
def signgd(params, cfg):
    return torch.optim.AdamW(params, lr=cfg.lr, betas=(0.0, 0.0), eps=cfg.eps, weight_decay=cfg.weight_decay)


def build_optimizer(params, cfg) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.name).obj(params, cfg)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg, max_steps: int) -> lr_scheduler.LRScheduler | None:
    """The per-step schedule `optim.scheduler` after `optim.warmup_steps` of linear warm-up; None for a constant lr."""
    decay_steps = max(1, max_steps - cfg.warmup_steps)
    main = {
        "constant": None,
        "cosine": lambda: lr_scheduler.CosineAnnealingLR(optimizer, T_max=decay_steps, eta_min=cfg.lr * cfg.min_lr_ratio),
        "linear": lambda: lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=max(cfg.min_lr_ratio, 1e-12),
                                                total_iters=decay_steps),
        "step": lambda: lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma),
        "exponential": lambda: lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma),
    }[cfg.scheduler]
    if not cfg.warmup_steps:
        return main() if main else None
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=cfg.warmup_start_factor, end_factor=1.0,
                                   total_iters=cfg.warmup_steps)
    if main is None:
        return warmup
    return lr_scheduler.SequentialLR(optimizer, [warmup, main()], milestones=[cfg.warmup_steps])
