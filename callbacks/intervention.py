"""The interface every intervention implements (DESIGN.md §Interventions).

An intervention is a Lightning `Callback` with a registered name (`interventions.<name>.<param>=value` enables it),
a unique `state_key`, `state_dict`/`load_state_dict` of tensors and plain Python (exact resume; checkpoints load
with weights_only=True), and a declaration of what it touches:

- "loss":      per-skill or per-sample weights on the loss matrix, returned by `loss_weights`; the module
               multiplies the weights of all interventions (each computed from the unweighted losses, so they
               compose: "equalise, then tilt"), and adds any `extra_loss` (e.g. a load-balancing term).
- "gradients": edits of the gradients in `on_before_optimizer_step` (accumulated, DDP-synchronised, AMP-unscaled,
               not yet clipped).
- "model":     changes the model in `setup(stage="fit")`, before checkpoint restore, DDP wrapping and optimizer
               creation.
- "data":      changes the stream's skill rates, identically on every rank.

Everything an intervention computes from the batch uses the module's all-reduced per-skill statistics
(`SkillModule.train_stats`), so every rank makes the same decision even when a skill is missing from its batch.
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch

from skilltrain.errors import UserError

TOUCHES = ("loss", "gradients", "model", "data")
EXCLUSIVE = ("model", "data")  # two interventions that both rebuild the model or both set the skill rates conflict


class Intervention(L.Callback):
    name: ClassVar[str] = ""
    find_unused_parameters: ClassVar[bool] = False  # whether DDP must look for parameters without gradients

    def __init__(self, params: Any, task):
        self.params = params
        self.task = task
        self.skills: list[str] = list(task.skills)

    @property
    def state_key(self) -> str:
        return f"intervention/{self.name}"

    @property
    def touches(self) -> frozenset[str]:
        raise NotImplementedError

    def check(self, cfg) -> None:
        """Refuse, with one UserError line, a setting this intervention cannot work with."""

    # ---- loss-level hooks (called by SkillModule.training_step) ---------------------------------------------
    def loss_weights(self, module, losses: torch.Tensor, mask: torch.Tensor | None,
                     stats: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Weights broadcastable to the [B, K] loss matrix ([K] per skill or [B, K] per entry), or None."""
        return None

    def extra_loss(self, module) -> torch.Tensor | None:
        return None

    def logged(self) -> dict[str, float | torch.Tensor]:
        """Values logged as intervention/<name>/<key> at the logging cadence (same keys on every rank)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass


def check_composition(interventions: list[Intervention], cfg) -> None:
    """Each intervention's own checks, then: at most one intervention may own the model, and one the data."""
    for iv in interventions:
        iv.check(cfg)
    for part in EXCLUSIVE:
        owners = [iv.name for iv in interventions if part in iv.touches]
        if len(owners) > 1:
            raise UserError(f"interventions: {' and '.join(owners)} both change the {part}; they cannot be combined")
