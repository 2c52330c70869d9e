"""Divergence: stop a run whose training loss is non-finite or has exploded, and never checkpoint it.

The check runs on the device every step (no synchronisation) and is read back every `every` steps and before
every checkpoint, so a diverged state is never saved: the last checkpoint stays the last good one. The message
names the first bad step and the skills whose loss went non-finite (or exploded).
"""

from __future__ import annotations

import lightning as L
import torch


class TrainingDiverged(Exception):
    """Raised (and turned into `status: diverged`) when the loss goes non-finite or explodes."""


class DivergenceGuard(L.Callback):
    def __init__(self, skills: list[str], factor: float | None, every: int):
        self.skills, self.factor, self.every = skills, factor, every
        self.first_loss: torch.Tensor | None = None
        self.bad_step: torch.Tensor | None = None  # -1 while all is well; else the first bad step (on the device)
        self.bad_skills: torch.Tensor | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss, stats = pl_module.train_loss, pl_module.train_stats
        skill_loss, present = stats["mask_loss"], stats["mask_share"] > 0  # a skill absent from the batch has no loss
        if self.bad_step is None:
            self.bad_step = torch.full((), -1, device=loss.device, dtype=torch.long)
            self.bad_skills = torch.zeros(len(self.skills), dtype=torch.bool, device=loss.device)
        if self.first_loss is None:
            self.first_loss = torch.full_like(skill_loss, float("nan"))
        first = self.first_loss
        if first.device != skill_loss.device:  # (restored from a checkpoint on the CPU)
            first = first.to(skill_loss.device)
        self.first_loss = torch.where(first.isnan() & present, skill_loss.detach(), first)  # a skill's first loss
        bad = present & ~torch.isfinite(skill_loss)
        if self.factor is not None:
            bad |= present & (skill_loss > self.factor * self.first_loss.nan_to_num(nan=float("inf")).clamp(min=1e-12))
        step_bad = bad.any()  # from all-reduced statistics only, so that every rank decides alike
        first = (self.bad_step < 0) & step_bad
        self.bad_step = torch.where(first, torch.full_like(self.bad_step, pl_module.train_stats_step), self.bad_step)
        self.bad_skills = torch.where(first, bad, self.bad_skills)
        if (pl_module.train_stats_step + 1) % self.every == 0:
            self.check()

    def check(self) -> None:
        """Raise TrainingDiverged if any step so far was bad (one device sync)."""
        if self.bad_step is None or int(self.bad_step) < 0:
            return
        skills = [s for s, b in zip(self.skills, self.bad_skills.tolist()) if b]
        which = f" in skill{'s' if len(skills) > 1 else ''} {', '.join(skills)}" if skills else ""
        what = "non-finite or exploded" if self.factor is not None else "non-finite"
        raise TrainingDiverged(f"training diverged at step {int(self.bad_step)}: the loss went {what}{which}")

    def state_dict(self) -> dict:
        return {"first_loss": None if self.first_loss is None else self.first_loss.cpu()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.first_loss = state_dict["first_loss"]
