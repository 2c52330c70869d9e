"""Test data more than one test file needs: a plugin's source text (an intervention and a model, as a user writes
them; `plugin` in conftest.py writes it to a file), the short run plugin tests train, and a small skill-tagged table."""

from __future__ import annotations

import numpy as np
import pandas as pd

# a user's plugin file: the `focus` intervention and the `tiny` model
PLUGIN = '''
from dataclasses import dataclass

import torch
from torch import nn

import skilltrain

STATS = ("loss", "acc", "mask_loss", "mask_share", "rows")


@dataclass
class FocusConfig:
    strength: float = 2.0  # the rare skill's weight

    def validate(self):
        if self.strength <= 0:
            raise ValueError(f"strength must be > 0, got {self.strength}")


@skilltrain.register_intervention("focus", "weights the last skill by `strength`", FocusConfig)
class Focus(skilltrain.Intervention):
    """Focus: the last skill's losses weighted by `strength` (a test plugin)."""

    touches = frozenset({"loss"})

    def loss_weights(self, module, losses, mask, stats):
        missing = [k for k in STATS if k not in stats]
        assert not missing, missing  # today's documented statistics reach a plugin
        w = torch.ones(len(self.skills), dtype=losses.dtype, device=losses.device)
        w[-1] = self.params.strength
        self.w = w
        return w

    def logged(self):
        return {f"weight/{s}": v for s, v in zip(self.skills, self.w)} if hasattr(self, "w") else {}


@dataclass
class TinyConfig(skilltrain.ModelConfig):
    name: str = "tiny"
    hidden: int = 40


@skilltrain.register_model("tiny", "one hidden layer, named `inner`", TinyConfig)
class Tiny(nn.Module):
    def __init__(self, cfg, task, n_outputs):
        super().__init__()
        self.inner = nn.Linear(task.n_inputs, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, n_outputs)

    def forward(self, x):
        return self.out(torch.relu(self.inner(x)))
'''


# the short run the plugin tests train
SMALL = ("recipe=domino_2task", "data.n_samples=2000", "trainer.max_steps=40", "trainer.val_check_interval=20")


def toy_table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Two string-named skills told apart by a control feature: 'xor' (frequent) and 'and' (rare)."""
    rng = np.random.default_rng(seed)
    skill = rng.choice(["xor", "and"], size=n, p=[0.8, 0.2])
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    label = np.where(skill == "xor", a ^ b, a & b)
    return pd.DataFrame({"is_and": (skill == "and").astype(float), "a": a.astype(float), "b": b.astype(float),
                         "skill": skill, "label": label})
