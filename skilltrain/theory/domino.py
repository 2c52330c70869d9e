"""The Domino model (arXiv 2501.12391): the Resource model's limit of no waste and well-separated frequencies.

The whole budget goes to one skill at a time, in order of frequency, and each skill takes t0 = 1/η_eff steps
(η_eff = 2·lr·√N for SignGD on N parameters): its unlearned fraction falls linearly from 1 to 0. A modular network of
n modules of N/n parameters each learns its modules' skills in parallel, each skill in t0·√n (a module's budget is
2·lr·√(N/n)). Skills go to modules round-robin in order of frequency, so each module learns its own skills in turn.

Scaling (Zipf p_i ∝ i^−α): skill i is learned at step ≈ i·t0, so after S steps about S/t0 skills are learned and
the loss left is the Zipf tail Σ_{i > S/t0} p_i ∝ S^−(α−1): a step-scaling exponent α_S = α − 1. The paper draws
α_N = α_S = α − 1 as the Domino model's lines beside the Geometry model's fitted exponents (skilltrain.theory.scaling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skilltrain.config import require


@dataclass
class DominoConfig:
    """`domino.*` of a theory run."""

    lr: float = 1.0e-3  # SignGD learning rate: η_eff = 2·lr·√(N / n_modules) per module
    n_params: int = 1000  # N
    n_modules: int = 1  # n: modules of N/n parameters each, learning in parallel

    def validate(self) -> None:
        require(self.lr > 0, "domino.lr", f"must be > 0, got {self.lr}")
        require(self.n_params >= 1, "domino.n_params", f"must be ≥ 1, got {self.n_params}")
        require(1 <= self.n_modules <= self.n_params, "domino.n_modules",
                f"must be in [1, n_params={self.n_params}], got {self.n_modules}")


def skill_time(cfg: DominoConfig) -> float:
    """Steps a module takes per skill: t0·√n = √n / (2·lr·√N)."""
    return 1 / (2 * cfg.lr * math.sqrt(cfg.n_params / cfg.n_modules))


def schedule(frequencies: list[float], cfg: DominoConfig) -> list[tuple[float, float]]:
    """Per skill (in the given order): (start, end) of its learning, in steps."""
    t = skill_time(cfg)
    order = sorted(range(len(frequencies)), key=lambda i: -frequencies[i])  # stable: ties keep their order
    windows = [(0.0, 0.0)] * len(frequencies)
    for rank, i in enumerate(order):
        turn = rank // cfg.n_modules  # the module's skills before this one
        windows[i] = (turn * t, (turn + 1) * t)
    return windows


def unlearned(frequencies: list[float], cfg: DominoConfig, steps: list[int]) -> torch.Tensor:
    """u [T, K] at the given steps: 1 before a skill's window, falling linearly to 0 across it."""
    windows = torch.tensor(schedule(frequencies, cfg), dtype=torch.float64)
    t = torch.tensor(steps, dtype=torch.float64)[:, None]
    return (1 - (t - windows[:, 0]) / (windows[:, 1] - windows[:, 0])).clamp(0, 1)
