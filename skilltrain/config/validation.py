"""Value checks that a schema cannot express, made once per config (by `load_config`), each failure one line naming
its key: ranges, names, an intervention's parameters for its mode, and the limits of this machine (nodes a launcher
provides, cores)."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

from skilltrain.config.schema import METRICS, PLOTS, SCHEDULERS, SPLITS, WANDB_MODES
from skilltrain.errors import UserError, require, unknown
from skilltrain.registry import INTERVENTIONS, TASKS
from skilltrain.seeds import check_seed

ABSURD_PER_CORE = 4  # CPU processes or threads beyond 4 per core: refused (each would get a quarter of a core or less)


def validate(cfg: DictConfig) -> None:
    """Check a typed run config's values. Each failure names its key."""
    check_seed(cfg.seed, "seed")
    if cfg.data.seed is not None:
        check_seed(cfg.data.seed, "data.seed")
    require(cfg.diverge_factor is None or cfg.diverge_factor > 1, "diverge_factor",
            f"must be > 1 or null (non-finite loss only), got {cfg.diverge_factor}")
    t = cfg.trainer
    require(t.max_steps >= 1, "trainer.max_steps", f"must be ≥ 1, got {t.max_steps}")
    require(t.log_every_n_steps >= 1, "trainer.log_every_n_steps", f"must be ≥ 1, got {t.log_every_n_steps}")
    require(t.val_check_interval >= 1, "trainer.val_check_interval", f"must be ≥ 1 (steps), got {t.val_check_interval}")
    require(t.threads == "auto" or (isinstance(t.threads, int) and not isinstance(t.threads, bool) and t.threads >= 1),
            "trainer.threads", f"must be auto or a number of threads ≥ 1, got {t.threads}")
    require(cfg.stop.patience >= 0, "stop.patience", f"must be ≥ 0, got {cfg.stop.patience}")
    require(t.accumulate_grad_batches == 1, "trainer.accumulate_grad_batches",
            f"must be 1: skilltrain measures, checkpoints and intervenes per optimizer step (use a larger "
            f"data.batch_size, or more processes), got {t.accumulate_grad_batches}")
    o = cfg.optim
    require(o.lr > 0, "optim.lr", f"must be > 0, got {o.lr}")
    require(o.weight_decay >= 0, "optim.weight_decay", f"must be ≥ 0, got {o.weight_decay}")
    require(o.eps > 0, "optim.eps", f"must be > 0, got {o.eps}")
    require(o.momentum >= 0, "optim.momentum", f"must be ≥ 0, got {o.momentum}")
    if o.betas is not None:
        require(o.name != "signgd", "optim.betas", "cannot be set with optim.name=signgd (SignGD is Adam with betas (0, 0))")
        require(len(o.betas) == 2, "optim.betas", f"expected two numbers such as [0.9,0.999], got {list(o.betas)}")
        require(all(0 <= b < 1 for b in o.betas), "optim.betas", f"each must be in [0, 1), got {list(o.betas)}")
    if o.scheduler not in SCHEDULERS:
        raise unknown("scheduler", o.scheduler, SCHEDULERS, key="optim.scheduler")
    require(0 <= o.warmup_steps < t.max_steps, "optim.warmup_steps",
            f"must be in [0, trainer.max_steps={t.max_steps}), got {o.warmup_steps}")
    require(0 < o.warmup_start_factor <= 1, "optim.warmup_start_factor", f"must be in (0, 1], got {o.warmup_start_factor}")
    require(0 <= o.min_lr_ratio <= 1, "optim.min_lr_ratio", f"must be in [0, 1], got {o.min_lr_ratio}")
    require(o.step_size >= 1, "optim.step_size", f"must be ≥ 1, got {o.step_size}")
    require(0 < o.gamma <= 1, "optim.gamma", f"must be in (0, 1], got {o.gamma}")
    m = cfg.metric
    if m.name not in METRICS:
        raise unknown("metric", m.name, METRICS, key="metric.name")
    if m.split not in SPLITS:
        raise unknown("split", m.split, SPLITS, key="metric.split")
    require(m.min_samples >= 1, "metric.min_samples", f"must be ≥ 1, got {m.min_samples}")
    if m.name == "acc":
        require(0 < m.threshold <= 1, "metric.threshold", f"an accuracy threshold must be in (0, 1], got {m.threshold}")
    else:
        require(m.threshold > 0, "metric.threshold", f"a loss threshold must be > 0, got {m.threshold}")
    require(cfg.analysis.theory in (None, "resource"), "analysis.theory",
            f"must be resource (fit the Resource model to the run) or null, got '{cfg.analysis.theory}'")
    if cfg.analysis.plots not in PLOTS:
        raise unknown("plots setting", cfg.analysis.plots, PLOTS, key="analysis.plots")
    if cfg.logger.wandb.mode not in WANDB_MODES:
        raise unknown("W&B mode", cfg.logger.wandb.mode, WANDB_MODES, key="logger.wandb.mode")
    check_discover(cfg)
    every = cfg.checkpoint.every_n_steps
    require(every is None or every >= 1, "checkpoint.every_n_steps", f"must be ≥ 1 or null, got {every}")
    data = OmegaConf.to_object(cfg.data)
    if m.name == "acc" and not getattr(data, "accuracy", TASKS.get(cfg.data.name).obj.accuracy):  # a config may decide
        raise UserError(f"metric.name: task {cfg.data.name} has regression skills without accuracy; use metric.name=loss")
    sections = [("data", data), ("model", OmegaConf.to_object(cfg.model)), ("optim", OmegaConf.to_object(cfg.optim))]
    for key, section in sections:
        validate_section(key, section)
    for name, params in cfg.interventions.items():
        check_intervention_params(name, OmegaConf.to_object(params))
    check_limits(t)


def check_discover(cfg: DictConfig) -> None:
    """`discover.*`: a probe of at least two samples; recording only for a task whose samples each carry one skill."""
    d = cfg.discover
    require(d.n_samples >= 2, "discover.n_samples", f"must be ≥ 2 (samples to cluster), got {d.n_samples}")
    if d.params is not None:
        require(len(d.params) > 0, "discover.params", "expected parameter names such as [model.layers.0] or null (all)")
    form = TASKS.get(cfg.data.name).obj.form
    require(not d.record or form == "control", "discover.record",
            f"task {cfg.data.name} is of the outputs form (every sample carries every skill): its samples cannot be "
            "clustered into skills; discovery needs a control-form task (one skill per sample)")


def check_intervention_params(name: str, params: Any) -> None:
    """An intervention's parameters: its mode is registered (one line with the closest one), its validate() passes,
    and every parameter set away from its default is one the mode uses (when its registration says which)."""
    entry = INTERVENTIONS.get(name)
    if entry.modes:
        entry.target(params.mode)
    validate_section(f"interventions.{name}", params)
    uses = entry.mode_params.get(params.mode) if entry.modes else None
    for f in dataclasses.fields(params) if uses is not None else ():
        if f.name != "mode" and f.name not in uses and getattr(params, f.name) != _default(f):
            users = [mode for mode, used in entry.mode_params.items() if used and f.name in used]
            raise UserError(f"interventions.{name}.{f.name}: not used by mode={params.mode}, which would ignore it "
                            f"({f.name} is for mode {' / '.join(users) or 'none'}; mode {params.mode} takes "
                            f"{', '.join(uses) or 'no parameters'})")


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def validate_section(key: str, section: Any) -> None:
    """A section's own `validate()` (optional for users' config classes). A ValueError it raises is one line naming
    the key: `interventions.mine.strength: must be > 0`, when the message starts with a field's name."""
    check = getattr(section, "validate", None)
    if check is None:
        return
    try:
        check()
    except ValueError as e:
        text = " ".join(str(e).split()) or "invalid value"
        field_name = next((f for f in getattr(section, "__dataclass_fields__", {}) if re.match(rf"{f}\b", text)), None)
        if field_name:
            text = text[len(field_name):].lstrip(" :")
        raise UserError(f"{key}.{field_name}: {text}" if field_name else f"{key}: {text}") from None


# --------------------------------------------------------------------------------------------------------------
# This machine's limits


def check_limits(t: DictConfig) -> None:
    """Nodes without a launcher that provides them, CPU processes or threads beyond the cores: refused where they
    would hang or swamp the machine, a warning where they are only slow."""
    if t.num_nodes > 1:
        provided, launcher = launcher_nodes()
        require(launcher is not None, "trainer.num_nodes",
                f"{t.num_nodes} nodes, but no launcher started this process (srun, torchrun, mpirun, or NODE_RANK and "
                "MASTER_ADDR set on each node); without one it would wait ~30 minutes for nodes that never come")
        require(provided is None or provided >= t.num_nodes, "trainer.num_nodes",
                f"{t.num_nodes} nodes, but {launcher} provides {provided}")
    from skilltrain.threads import usable_cores

    cores = usable_cores()
    devices = _count(t.devices)
    if devices is not None and _on_cpu(str(t.accelerator)):
        _at_most_cores("trainer.devices", devices, cores, "CPU processes")
    if t.threads != "auto":
        _at_most_cores("trainer.threads", t.threads, cores, "threads")


def launcher_nodes() -> tuple[int | None, str | None]:
    """(nodes it provides, or None when it does not say; the launcher that started this process, or None)."""
    env = os.environ
    if "SLURM_NTASKS" in env:  # srun
        nodes = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES")
        return (int(nodes) if nodes and nodes.isdigit() else None), "SLURM"
    if "TORCHELASTIC_RUN_ID" in env:  # torchrun
        world, local = env.get("WORLD_SIZE", ""), env.get("LOCAL_WORLD_SIZE", "")
        return (int(world) // int(local) if world.isdigit() and local.isdigit() and int(local) else None), "torchrun"
    for variable, launcher in (("OMPI_COMM_WORLD_SIZE", "mpirun"), ("PMI_SIZE", "mpirun"),
                               ("JSM_NAMESPACE_SIZE", "jsrun"), ("NODE_RANK", "NODE_RANK")):
        if variable in env:
            return None, launcher
    return 1, None


def _count(devices: Any) -> int | None:
    """A number of devices (`4`, `"4"`), or None for a list, `auto` or -1 (Lightning decides or refuses those)."""
    if isinstance(devices, bool):
        return None
    if isinstance(devices, int):
        return devices if devices > 0 else None
    return int(devices) if isinstance(devices, str) and devices.strip().isdigit() else None


def _on_cpu(accelerator: str) -> bool:
    if accelerator == "cpu":
        return True
    if accelerator != "auto":
        return False
    import torch

    return not (torch.cuda.is_available() or torch.backends.mps.is_available())


_warned: set[str] = set()


def _at_most_cores(key: str, n: int, cores: int, what: str) -> None:
    require(n <= ABSURD_PER_CORE * cores, key,
            f"{n} {what} on {cores} cores is more than {ABSURD_PER_CORE} per core (refused above {ABSURD_PER_CORE * cores}); "
            f"{cores} or fewer use the cores without waiting")
    warning = f"warning: {key}={n}: more {what} than the {cores} cores this process may use; they will wait for each other"
    if n > cores and os.environ.get("LOCAL_RANK", "0") == "0" and warning not in _warned:  # once: not per run of a
        _warned.add(warning)  # comparison's plan, nor in the processes DDP starts
        print(warning, file=sys.stderr)
