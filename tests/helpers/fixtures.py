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


# Interventions as a plugin author might write them, for the test kit (skilltrain.testing): `KIT_PLUGIN` with one of
# the `KIT_BUGS` replacing its marked lines. Each bug fails one check of the kit.
KIT_PLUGIN = '''
from dataclasses import dataclass

import torch

import skilltrain


@dataclass
class SmoothConfig:
    decay: float = 0.9


@skilltrain.register_intervention("smooth", "weights skills by a running mean of their loss", SmoothConfig)
class Smooth(skilltrain.Intervention):
    """Smoothed loss weighting (a test plugin).

    What it does. Weights each skill by a running mean of its loss.

    Formula. m_k ← d·m_k + (1 − d)·ℓ_k; w_k = K·m_k / Σ_j m_j.

    Parameters. `decay`.

    When it helps. When a lagging skill's loss stays high.

    When it hurts. When losses are noisy.
    """

    touches = frozenset({"loss"})

    def __init__(self, params, task):
        super().__init__(params, task)
        self.mean = torch.zeros(len(self.skills), dtype=torch.float64)

    def loss_weights(self, module, losses, mask, stats):
        loss = torch.nan_to_num(stats["mask_loss"]).detach().double().cpu()  # BUG:local
        self.mean = self.params.decay * self.mean + (1 - self.params.decay) * loss
        self.w = len(self.mean) * self.mean / self.mean.sum().clamp(min=1e-12)
        return self.w.to(losses)

    def logged(self):
        return {f"weight/{s}": w for s, w in zip(self.skills, self.w)} if hasattr(self, "w") else {}  # BUG:logged

    def state_dict(self):
        return {"mean": self.mean.clone()}  # BUG:state

    def load_state_dict(self, state_dict):
        self.mean = state_dict["mean"].clone()  # BUG:load
'''

KIT_BUGS = {
    "state": {  # its running mean is not in its state_dict: a resume starts it from zero
        "# BUG:state": None, "# BUG:load": None},
    "local": {  # its running mean follows the rank's own batch, not the all-reduced statistics
        "# BUG:local": "loss = losses.detach().mean(0).double().cpu()  # this rank's own batch"},
    "logged": {"# BUG:logged": "return {}"},
    "card": {"    Formula.": "    Math."},
    "raises": {"# BUG:local": "raise ValueError('no weights today')"},
}


def kit_plugin(bug: str | None = None) -> str:
    """KIT_PLUGIN's source with `bug` (a key of KIT_BUGS): each marked line replaced by the bug's code (None: the
    line is deleted, and a method left without a body is deleted too), or the text replaced."""
    text = KIT_PLUGIN
    for marker, code in (KIT_BUGS[bug] if bug else {}).items():
        if not marker.startswith("# BUG"):
            text = text.replace(marker, code)
            continue
        lines = text.splitlines()
        i = next(i for i, line in enumerate(lines) if line.rstrip().endswith(marker))
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        if code is None:
            del lines[i - 1: i + 1]  # the method with its one-line body
        else:
            lines[i] = indent + code
        text = "\n".join(lines) + "\n"
    return text
