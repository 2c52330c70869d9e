"""A progress bar in optimizer steps out of `trainer.max_steps`.

The training stream is endless, so Lightning's per-epoch bar has no total; this one counts steps, shows the loss
and how many skills are learned so far. It redraws about every 1% of the run (every 10% when the output is not a
terminal, so that logs stay short); a redraw every step costs measurable time on small models. Evaluations are
short and get no bar of their own.
"""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import _update_n

from skilltrain.callbacks.skill_progress import SkillProgress


class StepProgressBar(TQDMProgressBar):
    def __init__(self, max_steps: int):
        every = max_steps // 100 if sys.stdout.isatty() else max_steps // 10
        super().__init__(refresh_rate=max(1, min(50, every) if sys.stdout.isatty() else every))

    def on_train_epoch_start(self, trainer, *_) -> None:
        super().on_train_epoch_start(trainer)
        self.train_progress_bar.total = trainer.max_steps
        self.train_progress_bar.n = trainer.global_step
        self.train_progress_bar.set_description("train")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.train_progress_bar is not None and self._should_update(step, trainer.max_steps):
            _update_n(self.train_progress_bar, step)
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_validation_start(self, trainer, pl_module) -> None:
        pass

    def on_validation_batch_start(self, *args, **kwargs) -> None:
        pass

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        pass

    def on_validation_end(self, trainer, pl_module) -> None:
        pass

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = {}
        loss = getattr(pl_module, "train_loss", None)
        if loss is not None:
            metrics["loss"] = f"{float(loss):.4g}"
        progress = next((c for c in trainer.callbacks if isinstance(c, SkillProgress)), None)
        if progress is not None:
            learned = sum(step is not None for step in progress.learned.values())
            metrics["learned"] = f"{learned}/{len(progress.learned)}"
        return metrics
