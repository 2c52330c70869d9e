"""One training run: the run directory, the Trainer and what the run leaves behind.

`fit` reads top to bottom: the run directory is chosen and checked (skilltrain.rundir owns its format), the model,
data and callbacks are built, then the Trainer and loggers; only when all of it is checked is the directory made
(or, with overwrite=true, the old run there replaced); then the Trainer fits and the run's results are written.

The directory is decided once, by the launching process, before the Trainer exists, and handed to the processes
Lightning's DDP launcher starts through the environment, so every rank writes into one run; only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf

from skilltrain.allocator import tune_cpu_allocator
from skilltrain.build import build_interventions, build_run  # noqa: F401  (build_interventions: its old import path)
from skilltrain.config import recipe_stem, require, to_container, to_yaml, val_every
from skilltrain.errors import UserError
from skilltrain.plugins import instantiate
from skilltrain.rundir import MARKER, RunDir

RUN_DIR_ENV = "SKILLTRAIN_RUN_DIR"


def _external_rank() -> int:
    """The global rank when an external launcher started this process (torchrun: RANK; SLURM srun with several
    tasks: SLURM_PROCID), else 0."""
    if os.environ.get("RANK"):
        return int(os.environ["RANK"])
    if _external_world_size() > 1:
        return int(os.environ.get("SLURM_PROCID", "0") or 0)
    return 0


def _external_world_size() -> int:
    """How many ranks an external launcher started (torchrun: WORLD_SIZE; SLURM srun: SLURM_NTASKS), else 1."""
    return int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or 1)


def choose_run_dir(cfg: DictConfig) -> tuple[Path, bool]:
    """(run directory, whether this process creates it), checked but not made: RunDir.create makes it once the whole
    command is built. A default directory (`runs/<recipe>/<stamp>`) that another process takes first gets a suffix
    then; an out_dir that may not be used (another run there without overwrite=true, or a folder that is not a
    run) is refused here, before anything is built."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        return Path(inherited), False
    if _external_world_size() > 1:  # every rank, rank 0 too: a lone rank 0 would wait for the others in DDP setup
        require(cfg.out_dir, "out_dir", "must be set when an external launcher starts several ranks (torchrun, SLURM), "
                "so that they all write into one run directory")
        if _external_rank() > 0:
            return Path(cfg.out_dir), False
    if cfg.ckpt_path:  # a resume continues in its own directory (set by the resume config)
        return Path(cfg.out_dir), False
    if cfg.out_dir:
        RunDir.check_target(cfg.out_dir, cfg.overwrite)
        return Path(cfg.out_dir), True
    return Path("runs") / recipe_stem(cfg.recipe) / dt.datetime.now().strftime("%Y%m%d-%H%M%S"), True


def resolve_checkpoint(cfg: DictConfig, run_dir: Path) -> tuple[str, dict]:
    """(checkpoint file, where it stands: {"step", "val_step"}) for a resume, after checking it is readable and
    from this run. `val_step` is the last evaluation the checkpoint has seen (or -1)."""
    import torch

    from skilltrain.config import identity

    path = RunDir(run_dir).last_checkpoint if cfg.ckpt_path == "last" else Path(cfg.ckpt_path)
    require(path.is_file(), "ckpt_path", f"no checkpoint at '{path}'")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        saved = ckpt["hyper_parameters"]["config"]
        val_curve = ckpt["callbacks"]["SkillProgress"]["val_curve"]
        position = {"step": int(ckpt["global_step"]), "val_step": int(val_curve[-1][0]) if val_curve else -1}
    except Exception as e:  # truncated, corrupt, or not a skilltrain checkpoint
        raise UserError(f"ckpt_path: cannot read '{path}' as a skilltrain checkpoint ({type(e).__name__})") from None
    if identity(saved) != identity(to_container(cfg)):
        raise UserError(f"ckpt_path: '{path}' is from another run (recipe {saved.get('recipe')}, seed {saved.get('seed')}) "
                        f"than '{run_dir}'; resume a run with its own checkpoint")
    return str(path), position


RUN_ID_FILE = MARKER


def run_id_of(run_dir: Path) -> str:
    """The run's id (its W&B run id): RunDir.run_id."""
    return RunDir(run_dir).run_id


def _trainer(kwargs: dict, callbacks: list, run_dir: Path) -> L.Trainer:
    """Lightning's Trainer; a flag value Lightning refuses becomes a one-line error naming the flag."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return L.Trainer(
            **kwargs,
            logger=False,  # set right after: W&B starts only once the Trainer's flags are known to be valid
            callbacks=callbacks,
            default_root_dir=str(run_dir),
            check_val_every_n_epoch=None,  # evaluate every trainer.val_check_interval steps of the endless stream
            enable_progress_bar=False,  # skilltrain.progress shows steps, not Lightning's per-epoch bars
            enable_checkpointing=False,  # skilltrain.checkpointing writes the run's checkpoints
            use_distributed_sampler=False,  # the datamodule shards the eval set itself
        )
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as e:
        text = " ".join(str(e).split())
        named = [k for k in kwargs if k in text]  # the flag the message names, else the one whose value it quotes
        quoted = [k for k, v in kwargs.items() if isinstance(v, str) and len(v) > 1 and v in text]
        key = (named or quoted or [None])[0]
        raise UserError(f"trainer{'.' + key if key else ''}: {text[:300]}") from None


# Lightning messages that are noise for skilltrain runs, each for a reason:
_NOISE = [
    ".*does not have many workers.*",  # batches are made on the training device, not in loader workers
    ".*Experiment logs directory .* exists and is not empty.*",  # the run directory holds the saved config already
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",  # Lightning internals on torch ≥ 2.10
    ".*The `srun` command is available on your system but is not used.*",  # SLURM installed, a run started outside it
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


def _warn_if_skills_cannot_be_told_apart(module) -> None:
    task = module.task
    if (task.form == "control" and task.n_skills > 1 and not task.skill_in_inputs and not module.per_skill_head
            and not getattr(module.model, "routes_by_skill", False) and _external_rank() == 0
            and not os.environ.get(RUN_DIR_ENV)):  # once: not again in the processes the DDP launcher starts
        print(f"warning: the inputs do not carry the skill ({task.n_skills} skills) and the output head is shared: "
              "the model cannot tell the skills apart, and skills that map one input to different labels cannot be "
              "learned; use model.head=per_skill (one output block per skill), or put the skill among the inputs",
              file=sys.stderr)


def fit(cfg: DictConfig, callbacks: Sequence[L.Callback] = (), show: bool = True) -> RunResult | None:
    """Train one run as configured (plus any extra Lightning `callbacks`). On rank 0: its directory and how it
    ended (None on the other ranks).

    A run ends completed, stopped (SIGTERM, Ctrl-C; checkpoint written, resumable with ckpt_path=last) or diverged
    (non-finite or exploded loss; the last good checkpoint is kept); its summary says which, in every case.
    """
    tune_cpu_allocator()
    # One writer per run directory: the launching process (rank 0) holds it from the moment it makes the directory
    # (or, resuming, before it reads it) until the fit ends; the ranks Lightning's DDP launcher or torchrun start
    # write into the directory rank 0 holds.
    owner = not os.environ.get(RUN_DIR_ENV) and _external_rank() == 0
    run_dir, creates = choose_run_dir(cfg)  # checked, not made yet
    resuming = owner and not creates and Path(run_dir).is_dir()
    if resuming:
        RunDir.check_free(run_dir)  # before anything is built
    module, datamodule, interventions = build_run(cfg)
    _warn_if_skills_cannot_be_told_apart(module)
    callbacks = [*callbacks, *(instantiate(spec, f"callbacks[{i}]", L.Callback) for i, spec in enumerate(cfg.callbacks))]
    ckpt_path, resume_at = resolve_checkpoint(cfg, run_dir) if cfg.ckpt_path else (None, None)
    # A default directory is made now: unique (another process that took the same name leaves this one a suffix),
    # and nothing in it to lose. An out_dir is made, or the run there replaced, only once the Trainer and the loggers
    # are built too (in _train).
    run = RunDir.create(None, run_dir) if creates and not cfg.out_dir else RunDir(run_dir)
    try:
        if resuming:
            run.hold()
        return _train(cfg, callbacks, run, creates, module, datamodule, interventions, ckpt_path, resume_at, show)
    except UserError:
        # A mistake found while setting up (a data shard too small for the processes): a run directory made for it
        # is removed again, so that the same command, corrected, can use it; one that holds a checkpoint is kept.
        if run.made:
            run.remove_if_unfinished()
        raise
    finally:
        run.release()  # completed, stopped, diverged or failed: another command may write the run now


@dataclasses.dataclass
class _RunCallbacks:
    """The callbacks every fit adds (skilltrain.callbacks.run), and the ones `_train` asks how the run ended."""

    progress: L.Callback
    stopper: L.Callback
    early: L.Callback | None
    all: list


def _run_callbacks(cfg: DictConfig, module, datamodule, run: RunDir, callbacks: list, interventions: list) -> _RunCallbacks:
    from skilltrain.callbacks.run import (
        DiscoverRecording,
        DivergenceGuard,
        RunCheckpoints,
        SkillProgress,
        StepProgress,
        StopOnSigint,
        StopWhenAllLearned,
    )

    task = module.task
    every = cfg.trainer.log_every_n_steps
    progress = SkillProgress(task.skills, cfg.metric.name, cfg.metric.threshold, cfg.metric.split, every,
                             cfg.metric.min_samples, full_batch=datamodule.full_batch)
    guard = DivergenceGuard(task.skills, cfg.diverge_factor, every)
    stopper = StopOnSigint(every)
    early = StopWhenAllLearned(progress, cfg.stop.patience) if cfg.stop.when_all_learned else None
    checkpoints = RunCheckpoints(run.checkpoints, cfg.checkpoint.every_n_steps, val_every(cfg), guard,
                                 progress if cfg.checkpoint.at_learn_steps else None)
    bar = [StepProgress(cfg.trainer.max_steps)] if cfg.trainer.enable_progress_bar else []
    record = [DiscoverRecording(run, cfg.discover.n_samples, cfg.seed, every)] if cfg.discover.record else []
    return _RunCallbacks(progress, stopper, early, [*callbacks, *interventions, progress, *([early] if early else []),
                                                    guard, stopper, *record, checkpoints, *bar])


def _trainer_flags(cfg: DictConfig, module, datamodule, interventions: list) -> tuple[dict, int | None]:
    """(Lightning Trainer flags, CPU threads) from `trainer.*`, adjusted to what runs here."""
    from skilltrain.threads import choose_threads

    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    threads = choose_threads(kwargs.pop("threads"), sum(p.numel() for p in module.parameters()),
                             datamodule.rows_per_step() * (module.task.seq_len or 1))
    if kwargs["strategy"] == "ddp" and any(iv.find_unused_parameters for iv in interventions):
        kwargs["strategy"] = "ddp_find_unused_parameters_true"  # an intervention leaves parameters unused
    if str(kwargs["precision"]).startswith("bf16") and not _bf16_available(kwargs["accelerator"]):
        print(f"warning: trainer.precision={kwargs['precision']}: this GPU has no bfloat16; training in 32-true",
              file=sys.stderr)
        kwargs["precision"] = "32-true"
    kwargs.pop("enable_progress_bar")  # skilltrain's own bar (StepProgress), not Lightning's
    return kwargs, threads


def _train(cfg, callbacks, run: RunDir, create: bool, module, datamodule, interventions, ckpt_path, resume_at,
           show) -> RunResult | None:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from skilltrain.callbacks.run import TrainingDiverged, WandbSetup
    from skilltrain.loggers import build_loggers, start_wandb
    from skilltrain.threads import using_threads

    run_dir = run.path
    parts = _run_callbacks(cfg, module, datamodule, run, callbacks, interventions)
    trainer_kwargs, threads = _trainer_flags(cfg, module, datamodule, interventions)
    status, message, signum = "completed", None, None
    try:
        with _quiet_lightning(), using_threads(threads):
            trainer = _trainer(trainer_kwargs, parts.all, run_dir)  # its flags are checked before W&B starts
            if trainer.world_size > 1:
                os.environ[RUN_DIR_ENV] = str(run_dir)  # read by the processes the DDP launcher starts
            loggers = build_loggers(cfg, run_dir, None, resume_at, wandb=False)  # a logger's settings checked too
            # Everything is checked: only now may files change.
            if create and not run.made:
                run.make(cfg.overwrite)  # replaces the run there with overwrite=true
            if run.made:
                run.write_config(to_yaml(cfg))
            wandb_logger = start_wandb(cfg, run_dir, run.run_id)
            trainer.loggers = [*loggers, *([wandb_logger] if wandb_logger is not None else [])]
            if wandb_logger is not None:
                trainer.callbacks.append(WandbSetup(module.task.skills, to_container(cfg)))
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            if parts.stopper.stopped:
                signum = parts.stopper.signum
                by = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
                status, message = "stopped", f"stopped by {by} at step {trainer.global_step}"
    except TrainingDiverged as e:
        status, message = "diverged", str(e)
    except SIGTERMException:
        status, message, signum = "stopped", f"stopped by SIGTERM at step {trainer.global_step}", 15
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
        _finish_wandb(locals().get("trainer"))
    run.forget_replaced()  # the new run has trained: the one it replaced (overwrite=true) goes now
    if not trainer.is_global_zero:
        return None
    return _finish(cfg, run, module, parts, trainer.global_step, status, message, signum, show)


def _finish(cfg, run: RunDir, module, parts: _RunCallbacks, steps: int, status: str, message: str | None,
            signum: int | None, show: bool) -> RunResult:
    """What the run leaves (on rank 0): its summary and curves, the table, and the analyses it asks for."""
    from skilltrain.report import build_summary, plot_curves, print_table

    progress, early = parts.progress, parts.early
    if status == "completed" and early is not None and early.fired_at is not None:
        message = (f"every skill learned by step {max(progress.learned.values())}; ended at step {steps} "
                   f"(stop.when_all_learned, stop.patience={cfg.stop.patience})")
    elif status == "completed" and steps < cfg.trainer.max_steps:
        status, message = "stopped", f"stopped at step {steps} (trainer.max_time or a callback)"
    summary = build_summary(cfg, module.task.frequencies, progress, steps, status, run.run_id, message)
    run.write_summary(summary)
    if cfg.analysis.plots == "per_run":  # (a comparison's runs draw none: it plots them all together)
        plot_curves(run.curves_path, progress, f"{cfg.recipe} · seed {cfg.seed}", cfg.metric.name,
                    cfg.metric.threshold, cfg.metric.split)
    if show:
        print_table(summary)
    if cfg.analysis.theory and status != "diverged":
        _fit_theory(run.path, show)
    if cfg.analysis.representations and status != "diverged":
        from skilltrain.analysis.representations import analyze_run

        analyze_run(run.path)  # representations.json, cka.png, probes.png
    return RunResult(run.path, status, summary, message, signum)


def _fit_theory(run_dir: Path, show: bool) -> None:
    """analysis.theory=resource: the Resource model fitted to the run's curves (theory_fit.json, theory_fit.png)."""
    from skilltrain.theory.fit import fit_resource, format_parameter

    try:
        result = fit_resource(run_dir)
    except Exception as e:  # a fit that fails leaves the finished run as it is, and says why
        why = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
        print(f"note: analysis.theory: no fit ({why})", file=sys.stderr)
        return
    if show:
        r2 = ", ".join(f"{s} {v:.2f}" for s, v in result["r2"].items() if v is not None)
        print(f"Resource model fit: η_eff = {format_parameter(result['eta'])}, N0 = {format_parameter(result['n0'])}; "
              f"R² {r2} ({run_dir / 'theory_fit.png'})")
        for note in result["notes"]:
            print(f"note: {note}", file=sys.stderr)


def _bf16_available(accelerator: str) -> bool:
    """Whether bfloat16 mixed precision can run: on a CUDA GPU only if it has bfloat16 (Ampere and later)."""
    import torch

    if str(accelerator) in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return True


def _finish_wandb(trainer) -> None:
    """End the run's W&B run with the fit: the next fit in this process (a comparison's worker, a user's loop)
    starts its own."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in getattr(trainer, "loggers", None) or []:
        if isinstance(logger, WandbLogger) and trainer.is_global_zero:
            with contextlib.suppress(Exception):
                logger.experiment.finish()


@dataclasses.dataclass
class RunResult:
    """What a run left: its directory, its summary.json content and how it ended."""

    run_dir: Path
    status: str  # completed | stopped | diverged (as in summary.json)
    summary: dict = dataclasses.field(default_factory=dict)
    message: str | None = None
    signal: int | None = None  # the signal that stopped the run

    @property
    def exit_code(self) -> int:
        """0 completed; 3 diverged; 128 + signal when stopped by one (130 Ctrl-C, 143 SIGTERM), as shells report;
        4 stopped otherwise (trainer.max_time)."""
        if self.status == "completed":
            return 0
        if self.status == "diverged":
            return 3
        return 128 + self.signal if self.signal else 4




def fit_command(args: list[str]) -> int:
    """`skilltrain fit <args>`: load the config, fit, say how it ended; the exit code (RunResult.exit_code). The last
    line it prints is `run_dir: <path>`. The command line, a comparison's workers and its cluster jobs all run this."""
    from skilltrain.config import load_config

    result = fit(load_config(args))
    if result is None:  # a DDP rank other than 0
        return 0
    if result.message:
        print(f"{'error' if result.status == 'diverged' else 'note'}: {result.message}", file=sys.stderr, flush=True)
    if result.status == "stopped":
        print(f"resume with: python -m skilltrain fit ckpt_path=last out_dir={result.run_dir}", file=sys.stderr)
    print(f"run_dir: {result.run_dir}", flush=True)
    return result.exit_code
