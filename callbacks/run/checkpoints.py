"""Checkpoints of a run: the `last` checkpoint of its run directory (skilltrain.rundir), always the latest
complete step.

Written every `checkpoint.every_n_steps` steps and when training ends (or is stopped): first to a `.partial`
file, then fsynced and renamed in the same directory (skilltrain.rundir.publish), so a killed process never leaves
half a checkpoint where the last good one was (Lightning's own write goes through the system's temporary
directory, which may be another filesystem, and then copies).

A periodic checkpoint that falls on an evaluation step is written after that evaluation: Lightning does not repeat
the evaluation of the checkpoint's step on resume, so a checkpoint written before it (as ModelCheckpoint's
`every_n_train_steps` does) would lose it. Then every checkpoint holds all that happened up to its step, and a
resumed run repeats and loses nothing.

With `checkpoint.at_learn_steps=true`, the weights are also kept as each skill is learned:
`checkpoints/learned-<skill>.ckpt`, written at the first step at which the learn step is known (the run's logging
or evaluation boundary at or after it: at most `trainer.log_every_n_steps` later for a training-split metric), so
that `analyze … ckpt=learned-<skill>` shows the representations at the time a skill was learned.

A run stopped by SIGTERM (or a first Ctrl-C) stops at a step boundary and writes its checkpoint there. A diverged
run writes none: the divergence guard is consulted before every write, so the last one stays the last good state.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from skilltrain.callbacks.run.divergence_guard import DivergenceGuard
from skilltrain.callbacks.run.heartbeat import made_progress
from skilltrain.rundir import LAST, checkpoint_file, publish


class RunCheckpoints(L.Callback):
    def __init__(self, dirpath: Path, every_n_steps: int | None, val_every: int, guard: DivergenceGuard,
                 progress=None):
        self.dirpath = Path(dirpath)
        self.path = self.dirpath / checkpoint_file(LAST)
        self.guard = guard
        self.every_n_steps, self.val_every = every_n_steps, val_every
        self._deferred = False
        self.progress = progress  # the run's SkillProgress (checkpoint.at_learn_steps), else None
        self._kept: set[str] = set()

    def on_train_start(self, trainer, pl_module) -> None:
        if self.progress is not None:  # a resume: skills learned before it have their file, or never get one (the
            self._kept = {s for s, step in self.progress.learned.items() if step is not None}  # weights are gone)

    def keep_learned(self, trainer: L.Trainer) -> None:
        """The weights as each newly learned skill's learn step becomes known, once per skill. Every rank decides
        alike (the learn steps come from all-reduced statistics) and calls save_checkpoint, which synchronises."""
        for skill, step in self.progress.learned.items():
            if step is not None and skill not in self._kept:
                self._kept.add(skill)
                target = self.dirpath / checkpoint_file(f"learned-{skill}")
                partial = target.with_name(target.name + ".partial")
                trainer.save_checkpoint(str(partial), weights_only=True)
                if trainer.is_global_zero:
                    publish(partial, target)  # never a half-written file under the final name

    def save(self, trainer: L.Trainer) -> None:
        self.guard.check()  # raises instead of saving a diverged state
        for logger in trainer.loggers:  # the metrics on disk must cover what the checkpoint covers (a resume
            logger.save()  # keeps its rows up to the checkpoint and re-logs the rest)
        partial = self.path.with_name(self.path.name + ".partial")
        trainer.save_checkpoint(str(partial), weights_only=False)  # the full state; every rank calls, rank 0 writes
        if trainer.is_global_zero:
            publish(partial, self.path)  # same directory: atomic, whatever filesystem /tmp is on
        made_progress()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.progress is not None:
            self.keep_learned(trainer)
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0:
            if step % self.val_every == 0:
                self._deferred = True  # this step's evaluation comes next; save after it
            else:
                self.save(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.progress is not None and not trainer.sanity_checking:
            self.keep_learned(trainer)
        if self._deferred and not trainer.sanity_checking:
            self._deferred = False
            self.save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        if isinstance(exception, SIGTERMException):  # raised by Lightning at a step boundary, on every rank
            self.save(trainer)
