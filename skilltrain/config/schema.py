"""The run config's schema: dataclasses whose fields are the config keys (`print-config` shows them all).

The run-level sections are types only (`MISSING`): their defaults live in `conf/defaults.yaml`. The `data`, `model`,
`optim` and `interventions.<name>` sections take the schema of the task, model, optimizer or intervention they name
(`typed_schema`), with that plug-in's own defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from skilltrain.errors import require
from skilltrain.registry import INTERVENTIONS, MODELS, OPTIMIZERS, TASKS


@dataclass
class TrainerConfig:
    """Lightning `Trainer` flags, passed through as they are (https://lightning.ai/docs/pytorch/stable/common/trainer.html).

    skilltrain sets `logger`, `callbacks` and `default_root_dir` itself, from `logger.*`, the interventions and `out_dir`.
    """

    max_steps: int = MISSING
    accelerator: str = MISSING
    devices: Any = MISSING
    strategy: Any = MISSING
    num_nodes: int = MISSING
    precision: Any = MISSING
    log_every_n_steps: int = MISSING
    val_check_interval: int = MISSING  # training steps between held-out evaluations
    num_sanity_val_steps: int = MISSING
    enable_progress_bar: bool = MISSING
    enable_model_summary: bool = MISSING
    gradient_clip_val: float | None = MISSING
    gradient_clip_algorithm: str | None = MISSING
    accumulate_grad_batches: int = MISSING
    deterministic: Any = MISSING
    benchmark: bool | None = MISSING
    detect_anomaly: bool = MISSING
    max_time: str | None = MISSING
    profiler: str | None = MISSING
    threads: Any = MISSING  # skilltrain's, not Lightning's: torch CPU threads, "auto" (by work size and free cores) or N


@dataclass
class StopConfig:
    """Ending a run before trainer.max_steps (comparisons and the benchmark turn it on: compare.stop_early)."""

    when_all_learned: bool = MISSING  # end once every skill is learned, after `patience` more steps
    patience: int = MISSING  # steps kept after the last skill is learned (the curves' tail)


@dataclass
class AnalysisConfig:
    """What a run analyses once it has trained."""

    theory: str | None = MISSING  # resource: fit the Resource model to the run's curves (skilltrain.theory.fit)
    representations: bool = MISSING  # CKA, probes, effective dimension (skilltrain.analysis.representations)
    plots: str = MISSING  # per_run: the run draws its curves.png; none: it draws none (a comparison draws its own)


@dataclass
class DiscoverConfig:
    """Recording what `python -m skilltrain discover` needs to find skills without labels (skilltrain.analysis.discovery)."""

    record: bool = MISSING  # keep a fixed probe set of training samples and record their losses at every logged step
    n_samples: int = MISSING  # probe samples (drawn once from the training distribution, seeded by the run seed)
    params: list[str] | None = MISSING  # the parameters (names or prefixes) whose per-sample gradients discover
    #                                    compares; null: every parameter


PLOTS = ("per_run", "none")
DEFAULT_ANALYSIS = {"theory": None, "representations": False, "plots": "per_run"}
DEFAULT_DISCOVER = {"record": False, "n_samples": 2000, "params": None}


@dataclass
class OptimConfig:
    """`optim.*`: what every optimizer takes; a registered optimizer may extend it with its own keys."""

    name: str = MISSING  # adam | adamw | sgd | signgd | a registered optimizer
    lr: float = MISSING
    weight_decay: float = MISSING
    betas: list[float] | None = MISSING  # null = the optimizer's default; signgd fixes (0, 0)
    eps: float = MISSING
    momentum: float = MISSING  # sgd only
    scheduler: str = MISSING  # constant | cosine | linear | step | exponential (torch.optim.lr_scheduler), per step
    warmup_steps: int = MISSING  # linear warm-up from lr · warmup_start_factor to lr, then the scheduler
    warmup_start_factor: float = MISSING
    min_lr_ratio: float = MISSING  # cosine and linear: the last step's lr is lr · min_lr_ratio
    step_size: int = MISSING  # step: multiply lr by gamma every step_size steps
    gamma: float = MISSING  # step and exponential: the decay factor


@dataclass
class MetricConfig:
    """What "learned" means: the first step at which a skill's metric crosses the threshold."""

    name: str = MISSING  # acc (learned when ≥ threshold) | loss (learned when ≤ threshold)
    threshold: float = MISSING
    split: str = MISSING  # train (the paper's full-batch runs) | val (held-out: generalisation tasks)
    min_samples: int = MISSING  # minibatches: a train-split decision pools each skill's recent samples up to this many


@dataclass
class WandbConfig:
    mode: str = MISSING  # auto (online with an API key, else offline) | online | offline | disabled
    project: str = MISSING
    entity: str | None = MISSING
    name: str | None = MISSING
    group: str | None = MISSING
    job_type: str | None = MISSING
    tags: list[str] = MISSING
    init_timeout: float = MISSING  # seconds to wait for W&B to start before falling back (offline, then CSV only)


@dataclass
class LoggerConfig:
    csv: bool = MISSING  # metrics.csv in the run directory
    wandb: WandbConfig = field(default_factory=WandbConfig)
    tensorboard: bool = MISSING  # TensorBoard event files in <run_dir>/tensorboard
    extra: list[Any] = MISSING  # any other Lightning loggers: [{class_path: …, init_args: {…}}]


@dataclass
class CheckpointConfig:
    every_n_steps: int | None = MISSING  # periodic checkpoints; null = only at the end
    at_learn_steps: bool = MISSING  # also keep the weights as each skill is learned: checkpoints/learned-<skill>.ckpt


@dataclass
class RunConfig:
    recipe: str = MISSING  # a name from recipes/ or a path to a YAML file
    seed: int = MISSING
    out_dir: str | None = MISSING  # null = runs/<recipe>/<timestamp>
    ckpt_path: str | None = MISSING  # resume: "last" (out_dir's last checkpoint) or a checkpoint file
    overwrite: bool = MISSING  # start a new run in an existing, non-empty out_dir (deletes the old one)
    diverge_factor: float | None = MISSING  # diverged: a skill's loss above factor × its first loss (or non-finite)
    presets: list[str] = MISSING  # conf/presets/<name>.yaml, merged after the recipe
    plugins: list[str] = MISSING  # modules or .py files imported first: users' tasks, models, optimizers, interventions
    callbacks: list[Any] = MISSING  # users' Lightning callbacks: [{class_path: my.module.MyCallback, init_args: {…}}]
    data: Any = MISSING  # the task's schema (see skilltrain.data.base.DataConfig)
    model: Any = MISSING  # the model's schema
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    metric: MetricConfig = field(default_factory=MetricConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    discover: DiscoverConfig = field(default_factory=DiscoverConfig)
    interventions: dict[str, Any] = field(default_factory=dict)  # registered name → its parameters


METRICS = {"acc": "accuracy; learned when ≥ threshold", "loss": "loss (MSE for regression); learned when ≤ threshold"}
SCHEDULERS = ("constant", "cosine", "linear", "step", "exponential")
BUDGET_SCHEDULERS = ("cosine", "linear")  # shaped by trainer.max_steps
SPLITS = ("train", "val")
WANDB_MODES = ("auto", "online", "offline", "disabled")


# --------------------------------------------------------------------------------------------------------------
# The sections typed by what they name


def typed_schema(raw: DictConfig) -> DictConfig:
    """RunConfig with `data`, `model`, `optim` and `interventions.<name>` typed by the entries `raw` names."""
    schema = OmegaConf.structured(RunConfig)
    schema.data = plugin_schema(TASKS, raw, "data")
    schema.model = plugin_schema(MODELS, raw, "model")
    schema.optim = optim_schema(raw)
    schema.interventions = intervention_schemas(raw)
    return schema


def plugin_schema(registry: Any, raw: DictConfig, section: str) -> DictConfig:
    name = OmegaConf.select(raw, f"{section}.name")
    require(name is not None, f"{section}.name", f"is required (one of: {', '.join(registry.names())})")
    entry = registry.get(str(name))
    return OmegaConf.structured(entry.schema)


def optim_schema(raw: DictConfig) -> DictConfig:
    """`optim` takes the schema of the optimizer it names (OptimConfig, or a registered optimizer's extension)."""
    name = OmegaConf.select(raw, "optim.name")
    entry = OPTIMIZERS.get(str(name)) if name is not None else None
    return OmegaConf.structured(entry.schema if entry and entry.schema else OptimConfig)


def intervention_schemas(raw: DictConfig) -> dict[str, DictConfig]:
    """`interventions.<name>` takes the schema of the intervention it names (`{}` enables it with its defaults)."""
    given = raw.get("interventions") or {}
    require(isinstance(given, (dict, DictConfig)), "interventions", "expected a mapping such as {gradient_rescaling: {}}")
    schemas = {}
    for name, params in given.items():
        entry = INTERVENTIONS.get(str(name))
        require(isinstance(params, (dict, DictConfig)), f"interventions.{name}",
                "expected a mapping of parameters, {} for the defaults, or null to turn it off")
        schemas[str(name)] = OmegaConf.structured(entry.schema)
    return schemas
