"""Progress of a run in optimizer steps out of `trainer.max_steps`, with the loss and how many skills are learned.

In a terminal: one tqdm bar, redrawn about every 1% of the run (a redraw every step costs measurable time on small
models). In a log file or a pipe (a cluster job, a comparison's run): a plain line every 10% of the run, no bar
characters. The loss shown is the one last logged (at a step n, 2n, … with n = `trainer.log_every_n_steps`), read
from the host: the display never reads the device. Lightning's own bars are off (skilltrain passes
`enable_progress_bar=False` to the Trainer and shows this instead when `trainer.enable_progress_bar=true`).
"""

from __future__ import annotations

import sys
import time

import lightning as L

from skilltrain.callbacks.run.skill_progress import SkillProgress


class StepProgress(L.Callback):
    def __init__(self, max_steps: int, stream=None):
        self.max_steps = max_steps
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.every = max(1, max_steps // 100 if self.terminal else max_steps // 10)
        self.bar = None
        self._started = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        self._started = time.perf_counter()
        if self.terminal:
            from tqdm import tqdm

            self.bar = tqdm(total=self.max_steps, initial=trainer.global_step, desc="train", unit="step",
                            file=self.stream, dynamic_ncols=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or (step % self.every and step != self.max_steps):
            return
        status = self._status(trainer, pl_module)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(status, refresh=True)
        else:
            elapsed = time.perf_counter() - self._started
            print(f"step {step}/{self.max_steps} · {status} · {elapsed:.1f} s", file=self.stream, flush=True)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_train_end(trainer, pl_module)

    @staticmethod
    def _status(trainer, pl_module) -> str:
        parts = []
        loss = getattr(pl_module, "logged", {}).get("train/loss")
        if loss is not None:
            parts.append(f"loss {loss:.4g}")
        progress = next((c for c in trainer.callbacks if isinstance(c, SkillProgress)), None)
        if progress is not None:
            learned = sum(step is not None for step in progress.learned.values())
            parts.append(f"learned {learned}/{len(progress.learned)}")
        return " · ".join(parts)
