"""Ending a run once every skill is learned (`stop.when_all_learned`, after `stop.patience` more steps)."""

from __future__ import annotations

import lightning as L


class StopWhenAllLearned(L.Callback):
    """`stop.when_all_learned`: end the run `patience` steps after its last skill is learned (learn steps are
    decided every `trainer.log_every_n_steps` steps and at evaluations, so it ends within that many steps of it).
    It reads only the learn-step record on the host, the same on every rank: all ranks stop at the same step."""

    def __init__(self, progress, patience: int):
        self.progress, self.patience = progress, patience
        self.fired_at: int | None = None  # the step it ended the run at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        learned = self.progress.learned.values()
        if self.fired_at is None and all(step is not None for step in learned):
            if trainer.global_step >= max(learned) + self.patience:
                trainer.should_stop = True
                self.fired_at = trainer.global_step
