"""Checkpoints of a run: `<run_dir>/checkpoints/last.ckpt`, always the latest complete step.

Written every `checkpoint.every_n_steps` steps and when training ends (or is stopped): first to
`last.ckpt.partial`, then renamed in the same directory, so a killed process never leaves half a checkpoint where
the last good one was (Lightning's own write goes through the system's temporary directory, which may be another
filesystem, and then copies).

A periodic checkpoint that falls on an evaluation step is written after that evaluation: Lightning does not repeat
the evaluation of the checkpoint's step on resume, so a checkpoint written before it (as ModelCheckpoint's
`every_n_train_steps` does) would lose it. Then every checkpoint holds all that happened up to its step, and a
resumed run repeats and loses nothing.

A run stopped by SIGTERM (or a first Ctrl-C) stops at a step boundary and writes its checkpoint there. A diverged
run writes none: the divergence guard is consulted before every write, so `last.ckpt` stays the last good state.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from skilltrain.guard import DivergenceGuard


class RunCheckpoints(L.Callback):
    def __init__(self, dirpath: Path, every_n_steps: int | None, val_every: int, guard: DivergenceGuard):
        self.path = Path(dirpath) / "last.ckpt"
        self.guard = guard
        self.every_n_steps, self.val_every = every_n_steps, val_every
        self._deferred = False

    def save(self, trainer: L.Trainer) -> None:
        self.guard.check()  # raises instead of saving a diverged state
        for logger in trainer.loggers:  # metrics.csv on disk must cover what the checkpoint covers (a resume
            logger.save()  # keeps its rows up to the checkpoint and re-logs the rest)
        partial = self.path.with_name(self.path.name + ".partial")
        trainer.save_checkpoint(str(partial), weights_only=False)  # the full state; every rank calls, rank 0 writes
        if trainer.is_global_zero:
            os.replace(partial, self.path)  # same directory: atomic, whatever filesystem /tmp is on

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0:
            if step % self.val_every == 0:
                self._deferred = True  # this step's evaluation comes next; save after it
            else:
                self.save(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._deferred and not trainer.sanity_checking:
            self._deferred = False
            self.save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        if isinstance(exception, SIGTERMException):  # raised by Lightning at a step boundary, on every rank
            self.save(trainer)
