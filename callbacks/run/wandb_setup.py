"""W&B set-up at the start of a fit: the resolved config, and the per-skill keys declared with their summaries."""

from __future__ import annotations

import lightning as L


class WandbSetup(L.Callback):
    """Gives W&B the resolved config and declares the per-skill keys (accuracy summarised by max, loss by min)."""

    def __init__(self, skills: list[str], config: dict):
        self.skills = skills
        self.config = config

    def on_fit_start(self, trainer, pl_module) -> None:
        from lightning.pytorch.loggers import WandbLogger

        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_hyperparams(self.config)
                run = logger.experiment
                for skill in self.skills:
                    for part, summary in (("loss", "min"), ("acc", "max"), ("val_loss", "min"), ("val_acc", "max")):
                        run.define_metric(f"skill/{skill}/{part}", step_metric="trainer/global_step", summary=summary)
