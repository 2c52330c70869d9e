"""Loggers: CSV (the run directory's metrics file, skilltrain.rundir) and Weights & Biases through Lightning's WandbLogger.

W&B mode `auto` (the default) is online when an API key is configured (WANDB_API_KEY or `wandb login`), else
offline (the run folder can be synced later with `wandb sync`); a WANDB_MODE environment variable wins over
`auto`; `disabled` creates no W&B logger at all.
"""

from __future__ import annotations

import contextlib
import netrc
import os
import sys
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from skilltrain.callbacks.run.wandb_setup import WandbSetup  # noqa: F401  (its old import path)
from skilltrain.errors import UserError
from skilltrain.plugins import instantiate
from skilltrain.rundir import METRICS, RunDir


def resolve_wandb_mode(mode: str) -> str:
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env:
        return {"dryrun": "offline", "run": "online"}.get(env, env)
    return "online" if _has_wandb_key() else "offline"


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class _ResumableCSVWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing file and rewrites it in place when new columns appear; here a
    resumed run keeps the rows its checkpoint covers (training rows before the checkpoint's step, evaluation rows
    up to its last evaluation; later rows were written after the checkpoint and will be written again), and every
    rewrite replaces the file atomically (RunDir), so that a kill or a full disk never loses the history."""

    NAME_METRICS_FILE = METRICS

    def __init__(self, log_dir: str, resume_at: dict | None):
        self.resume_at = resume_at
        self.run = RunDir(log_dir)
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        if self.resume_at is None or not self.run.metrics_path.is_file():
            return
        self.metrics_keys = self.run.keep_metrics(self.resume_at["step"], self.resume_at["val_step"])

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        self.run.rewrite_metrics(fieldnames)


class RunCSVLogger(CSVLogger):
    """The metrics file directly in the run directory, continued (not replaced) when the run is resumed."""

    def __init__(self, run_dir: Path, resume_at: dict | None = None):
        super().__init__(save_dir=str(run_dir), name="", version="")
        self.resume_at = resume_at
        self._flushed_at: int | None = None

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        """As CSVLogger, but written to disk once rows span `flush_logs_every_n_steps` steps, whatever steps they
        fall on (CSVLogger writes at a step s with (s + 1) % n == 0, which rows at 0, 10, 20, … never meet)."""
        step = len(self.experiment.metrics) if step is None else step
        self.experiment.log_metrics(metrics, step)
        if self._flushed_at is None:
            self._flushed_at = step
        elif step - self._flushed_at >= self._flush_logs_every_n_steps:
            self.save()
            self._flushed_at = step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumableCSVWriter(self.log_dir, self.resume_at)
        return self._experiment


def build_loggers(cfg, run_dir: Path, run_id: str | None, resume_at: dict | None = None, wandb: bool = True) -> list[Logger]:
    """CSV, TensorBoard and any other Lightning logger the config names (one-line errors), then W&B (unless
    `wandb=False`: `fit` starts it with `start_wandb` once the run directory is made)."""
    loggers: list[Logger] = []
    if cfg.logger.csv:
        loggers.append(RunCSVLogger(run_dir, resume_at))
    if cfg.logger.tensorboard:
        loggers.append(_tensorboard(run_dir))
    loggers += [instantiate(spec, f"logger.extra[{i}]", Logger) for i, spec in enumerate(cfg.logger.extra)]
    if wandb:
        wandb_logger = start_wandb(cfg, run_dir, run_id)
        if wandb_logger is not None:
            loggers.append(wandb_logger)
    return loggers


def start_wandb(cfg, run_dir: Path, run_id: str | None) -> Logger | None:
    """The W&B logger, its run started (None when W&B is disabled or could not start: a warning, never a crash)."""
    mode = resolve_wandb_mode(cfg.logger.wandb.mode)
    return None if mode == "disabled" else _start_wandb(cfg.logger.wandb, run_dir, run_id or RunDir(run_dir).run_id, mode)


def _tensorboard(run_dir: Path) -> Logger:
    """Event files in <run_dir>/tensorboard (`tensorboard --logdir <run_dir>/tensorboard`)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    try:
        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False)
    except ModuleNotFoundError:
        raise UserError("logger.tensorboard: needs the tensorboard package (pip install 'skilltrain[tensorboard]')") from None


def _start_wandb(w, run_dir: Path, run_id: str, mode: str) -> Logger | None:
    """A WandbLogger whose run has started: W&B problems surface here, before training, as a warning.

    Online but unreachable or misconfigured (no network, a bad key or entity): warn and log offline instead
    (`wandb sync` uploads it later); if even that fails, warn and go on with CSV only. Never a crash.
    """
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    if rank_zero_only.rank != 0:
        return WandbLogger(save_dir=str(run_dir))  # a placeholder: only rank 0 logs
    sweep = bool(os.environ.get("WANDB_SWEEP_ID"))  # started by `wandb agent`: the run and its id are the agent's
    for attempt in [mode, "offline"] if mode == "online" else [mode]:
        try:
            # the run is started here, not by WandbLogger (which would pass wandb.init settings it no longer takes)
            run = wandb.init(project=w.project, entity=w.entity, name=w.name or run_dir.name, group=w.group,
                             job_type=w.job_type, tags=list(w.tags), dir=str(run_dir), mode=attempt, resume="allow",
                             reinit="create_new",  # a run of its own, beside any other in this process (stacked seeds)
                             **({} if sweep else {"id": run_id}),
                             settings=wandb.Settings(init_timeout=w.init_timeout, silent=True))
            return WandbLogger(experiment=run, save_dir=str(run_dir))
        except Exception as e:  # wandb raises many kinds (CommError, UsageError, timeouts, …)
            with contextlib.suppress(Exception):
                wandb.teardown()  # release the failed run (its id) before the next attempt
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            then = "logging offline instead" if attempt == "online" else "going on with the CSV metrics only"
            print(f"warning: W&B {attempt} did not start ({type(e).__name__}: {first}); {then}", file=sys.stderr)
    return None

