"""One training run: the run directory, the Trainer and what the run leaves behind.

    <run_dir>/config.yaml     the resolved config
    <run_dir>/metrics.csv     per-skill curves (CSVLogger)
    <run_dir>/summary.json    machine-readable results (skilltrain.report)
    <run_dir>/curves.png      per-skill loss and accuracy, learn steps marked
    <run_dir>/checkpoints/    last.ckpt (+ periodic ones with checkpoint.every_n_steps)
    <run_dir>/wandb/          the W&B run folder, when W&B is on

The directory is decided once, by the launching process, before the Trainer exists, and handed to the processes
Lightning's DDP launcher starts through the environment, so every rank writes into one run; only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import warnings
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from skilltrain.allocator import tune_cpu_allocator
from skilltrain.config import require, to_container, to_yaml

RUN_DIR_ENV = "SKILLTRAIN_RUN_DIR"


def recipe_stem(recipe: str) -> str:
    return Path(recipe).stem if recipe.endswith((".yaml", ".yml")) else recipe


def _external_rank() -> int:
    """The global rank when an external launcher (torchrun, SLURM) started this process, else 0."""
    return int(os.environ.get("RANK", "0") or 0)


def choose_run_dir(cfg: DictConfig) -> tuple[Path, bool]:
    """(run directory, whether this process creates it). Never returns a directory that holds another run."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        return Path(inherited), False
    if _external_rank() > 0:
        require(cfg.out_dir, "out_dir", "must be set when an external launcher starts several ranks (torchrun, SLURM), "
                "so that they all write into one run directory")
        return Path(cfg.out_dir), False
    if cfg.out_dir:
        path = Path(cfg.out_dir)
        require(not path.exists() or not any(path.iterdir()), "out_dir",
                f"'{path}' already exists and is not empty; choose another out_dir (a finished run is never overwritten)")
        return path, True
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / recipe_stem(cfg.recipe) / stamp
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{stamp}-{n}"), n + 1
    return path, True


def run_id_for(run_dir: Path) -> str:
    """A stable id for the run (the W&B run id): the same directory always gives the same id."""
    return hashlib.blake2b(str(run_dir.resolve()).encode(), digest_size=6).hexdigest()


# Lightning messages that are noise for skilltrain runs, each for a reason:
_NOISE = [
    ".*does not have many workers.*",  # batches are made on the training device, not in loader workers
    ".*Experiment logs directory .* exists and is not empty.*",  # the run directory holds config.yaml already
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",  # Lightning internals on torch ≥ 2.10
]


class _DropTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)  # Lightning's advertisement for its cloud logger, on every fit


@contextlib.contextmanager
def _quiet_lightning():
    tip = _DropTip()
    handlers = logging.getLogger("lightning.pytorch").handlers  # child loggers' records pass these handlers too
    with warnings.catch_warnings():
        for pattern in _NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        for handler in handlers:
            handler.addFilter(tip)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(tip)


def build_interventions(cfg: DictConfig, task) -> list:
    """The configured interventions as callbacks, checked to work here and with each other (one-line errors)."""
    from skilltrain.callbacks.intervention import check_composition
    from skilltrain.registry import INTERVENTIONS

    interventions = [INTERVENTIONS.get(name).obj(OmegaConf.to_object(params), task)
                     for name, params in cfg.interventions.items()]
    check_composition(interventions, cfg)
    return interventions


def fit(cfg: DictConfig) -> Path | None:
    """Train one run as configured; returns its directory on rank 0 (None on the other ranks)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import WandbLogger

    from skilltrain.callbacks.skill_progress import SkillProgress
    from skilltrain.data.datamodule import SkillDataModule
    from skilltrain.loggers import WandbSetup, build_loggers
    from skilltrain.module import SkillModule
    from skilltrain.progress import StepProgressBar
    from skilltrain.report import build_summary, plot_curves, print_table, write_json

    tune_cpu_allocator()
    run_dir, creates = choose_run_dir(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # before the model exists: its initial weights follow seed
    module = SkillModule(to_container(cfg))
    task = module.task
    data_seed = cfg.data.seed if cfg.data.seed is not None else cfg.seed
    datamodule = SkillDataModule(task, cfg.data.n_samples, cfg.data.batch_size, cfg.data.eval_samples, cfg.seed, data_seed)
    interventions = build_interventions(cfg, task)
    if creates:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    run_id = run_id_for(run_dir)

    progress = SkillProgress(task.skills, cfg.metric.name, cfg.metric.threshold, cfg.metric.split, cfg.trainer.log_every_n_steps)
    callbacks = [
        *interventions,
        progress,
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step{step}", auto_insert_metric_name=False,
                        every_n_train_steps=cfg.checkpoint.every_n_steps, save_last=True,
                        save_top_k=1 if cfg.checkpoint.every_n_steps else 0),
    ]
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    if trainer_kwargs["strategy"] == "ddp" and any(iv.find_unused_parameters for iv in interventions):
        trainer_kwargs["strategy"] = "ddp_find_unused_parameters_true"  # an intervention leaves parameters unused
    if trainer_kwargs["enable_progress_bar"]:
        callbacks.append(StepProgressBar(cfg.trainer.max_steps))
    loggers = build_loggers(cfg, run_dir, run_id)
    if any(isinstance(lg, WandbLogger) for lg in loggers):
        callbacks.append(WandbSetup(task.skills, to_container(cfg)))
    os.environ[RUN_DIR_ENV] = str(run_dir)  # read by the processes the DDP launcher starts
    try:
        with _quiet_lightning():
            trainer = L.Trainer(
                **trainer_kwargs,
                logger=loggers or False,
                callbacks=callbacks,
                default_root_dir=str(run_dir),
                check_val_every_n_epoch=None,  # evaluate every trainer.val_check_interval steps of the endless stream
                use_distributed_sampler=False,  # the datamodule shards the eval set itself
            )
            trainer.fit(module, datamodule=datamodule)
    finally:
        os.environ.pop(RUN_DIR_ENV, None)

    if trainer.is_global_zero:
        steps = trainer.global_step
        status = "completed" if steps >= cfg.trainer.max_steps else "stopped"
        summary = build_summary(cfg, task.frequencies, progress, steps, status, run_id)
        write_json(run_dir / "summary.json", summary)
        plot_curves(run_dir / "curves.png", progress, f"{cfg.recipe} · seed {cfg.seed}", cfg.metric.name,
                    cfg.metric.threshold, cfg.metric.split)
        print_table(summary)
        return run_dir
    return None
