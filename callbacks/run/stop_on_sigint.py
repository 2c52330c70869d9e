"""Stopping a run cleanly on Ctrl-C: at the end of a step, on every rank at the same step.

A first Ctrl-C (SIGINT) asks for a stop: one process stops at the end of the current step; under DDP, every `every`
steps all ranks agree (an all-reduce: does any rank want to stop?) and then all stop together, so that the
checkpoint and summary are written at a step boundary. A rank that stopped alone would leave the others waiting
in a collective. A second Ctrl-C interrupts at once. (SIGTERM is Lightning's: it stops every rank at the next step
boundary and raises SIGTERMException, handled by the caller.)
"""

from __future__ import annotations

import signal
import sys
import threading

import lightning as L


class StopOnSigint(L.Callback):
    def __init__(self, every: int):
        self.every = every
        self.requested = False  # this rank was asked to stop
        self.signum = int(signal.SIGINT)  # by which signal (SIGTERM only when another asks: skilltrain.stacking)
        self.stopped = False  # the run stopped because of it
        self._previous = None

    def request(self, signum: int = signal.SIGINT) -> None:
        """Stop at the end of the current step (another's handler asks, for a run in a thread of its own)."""
        self.signum, self.requested = int(signum), True

    def setup(self, trainer, pl_module, stage: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            self.request(signum)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts at once
            if trainer.is_global_zero:
                print("\nstopping at the end of a step (Ctrl-C again to interrupt at once) …", file=sys.stderr, flush=True)

        signal.signal(signal.SIGINT, handler)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        agree_now = trainer.world_size == 1 or trainer.global_step % self.every == 0  # one process needs no agreement
        if agree_now and trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            trainer.should_stop = self.stopped = True

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
