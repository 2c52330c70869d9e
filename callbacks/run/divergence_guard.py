"""Divergence: stop a run whose training loss is non-finite or has exploded, and never checkpoint it.

The check runs on the device, over the steps since the last check at once (no synchronisation), every `every`
steps and before every checkpoint, so a diverged state is never saved: the last checkpoint stays the last good
one. The message names the first bad step and the skills whose loss went non-finite (or exploded).
"""

from __future__ import annotations

import lightning as L
import torch


class TrainingDiverged(Exception):
    """Raised (and turned into `status: diverged`) when the loss goes non-finite or explodes."""


class DivergenceGuard(L.Callback):
    def __init__(self, skills: list[str], factor: float | None, every: int):
        self.skills, self.factor, self.every = skills, factor, every
        self.first_loss: torch.Tensor | None = None  # each skill's first loss (NaN until it is first in a batch)
        self.bad_step: torch.Tensor | None = None  # -1 while all is well; else the first bad step (on the device)
        self.bad_skills: torch.Tensor | None = None
        self._pending: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (step, skill losses, skill shares)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stats = pl_module.train_stats  # all-reduced statistics only, so that every rank decides alike
        self._pending.append((pl_module.train_stats_step, stats["mask_loss"], stats["mask_share"]))
        if (pl_module.train_stats_step + 1) % self.every == 0:
            self.check()

    def _scan(self) -> None:
        """The steps since the last scan, all at once and on the device (no synchronisation): a step is bad where
        a skill in its batch has a non-finite loss, or one above `factor` × that skill's first loss."""
        if not self._pending:
            return
        steps, losses, shares = zip(*self._pending)
        self._pending = []
        loss = torch.stack(losses).detach()  # [steps, K]
        present = torch.stack(shares) > 0  # a skill absent from a step's batch has no loss there
        device = loss.device
        if self.bad_step is None:
            self.bad_step = torch.full((), -1, device=device, dtype=torch.long)
            self.bad_skills = torch.zeros(len(self.skills), dtype=torch.bool, device=device)
        first = self.first_loss
        first = torch.full_like(loss[0], float("nan")) if first is None else first.to(device)  # (restored on the CPU)
        at = present.to(torch.int8).argmax(0)  # each skill's first step in the batches scanned now
        self.first_loss = torch.where(first.isnan() & present.any(0), loss.gather(0, at[None])[0], first)
        bad = present & ~torch.isfinite(loss)
        if self.factor is not None:
            bad |= present & (loss > self.factor * self.first_loss.nan_to_num(nan=float("inf")).clamp(min=1e-12))
        step_bad = bad.any(1)
        row = step_bad.to(torch.int8).argmax()  # the first bad step scanned now (if any)
        first_bad = (self.bad_step < 0) & step_bad.any()
        self.bad_step = torch.where(first_bad, torch.tensor(steps, device=device)[row], self.bad_step)
        self.bad_skills = torch.where(first_bad, bad[row], self.bad_skills)

    def check(self) -> None:
        """Raise TrainingDiverged if any step so far was bad (one device sync)."""
        self._scan()
        if self.bad_step is None or int(self.bad_step) < 0:
            return
        skills = [s for s, b in zip(self.skills, self.bad_skills.tolist()) if b]
        which = f" in skill{'s' if len(skills) > 1 else ''} {', '.join(skills)}" if skills else ""
        what = "non-finite or exploded" if self.factor is not None else "non-finite"
        raise TrainingDiverged(f"training diverged at step {int(self.bad_step)}: the loss went {what}{which}")

    def state_dict(self) -> dict:
        self._scan()
        return {"first_loss": None if self.first_loss is None else self.first_loss.cpu()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.first_loss = state_dict["first_loss"]
