"""Run configuration: a dataclass schema, filled in layers.

    conf/defaults.yaml  ←  recipes/<recipe>.yaml  ←  conf/presets/<preset>.yaml …  ←  key=value on the command line

The run-level sections below are types only (`MISSING`): their defaults live in `conf/defaults.yaml`. The `data`,
`model` and `interventions.<name>` sections take the schema of the task, model or intervention they name, with that
plug-in's own defaults. Every mistake (unknown key, wrong type, unknown name, invalid value) becomes a one-line
`UserError` that names the key and, where there is one, the closest valid name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from skilltrain.errors import UserError, closest, unknown
from skilltrain.plugins import load_plugins
from skilltrain.registry import INTERVENTIONS, MODELS, OPTIMIZERS, TASKS
from skilltrain.seeds import check_seed


def require(ok: Any, key: str, message: str) -> None:
    """Raise a one-line `key: message` UserError unless `ok`."""
    if not ok:
        raise UserError(f"{key}: {message}")


# --------------------------------------------------------------------------------------------------------------
# Run-level schema (values in conf/defaults.yaml)


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


DEFAULT_ANALYSIS = {"theory": None, "representations": False}


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
    interventions: dict[str, Any] = field(default_factory=dict)  # registered name → its parameters


METRICS = {"acc": "accuracy; learned when ≥ threshold", "loss": "loss (MSE for regression); learned when ≤ threshold"}
SCHEDULERS = ("constant", "cosine", "linear", "step", "exponential")
BUDGET_SCHEDULERS = ("cosine", "linear")  # shaped by trainer.max_steps
SPLITS = ("train", "val")
WANDB_MODES = ("auto", "online", "offline", "disabled")


# --------------------------------------------------------------------------------------------------------------
# Layers


def recipe_stem(recipe: str) -> str:
    """A recipe's name, also for a recipe given as a file path (for directory names)."""
    return Path(recipe).stem if recipe.endswith((".yaml", ".yml")) else recipe


def recipe_names(folder: str = "") -> list[str]:
    """The shipped recipes (`folder="theory"`: the toy models' recipes)."""
    path = resources.files("skilltrain.recipes").joinpath(folder) if folder else resources.files("skilltrain.recipes")
    return sorted(p.name[: -len(".yaml")] for p in path.iterdir() if p.name.endswith(".yaml"))


def preset_names() -> list[str]:
    folder = resources.files("skilltrain.conf").joinpath("presets")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_description(name: str, folder: str = "") -> str:
    """The first comment line of a recipe file."""
    text = resources.files("skilltrain.recipes").joinpath(*([folder] if folder else []), f"{name}.yaml").read_text()
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _load_yaml(text: str, source: str) -> DictConfig:
    try:
        loaded = OmegaConf.create(text)
    except Exception as e:  # yaml.YAMLError and friends
        raise UserError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(loaded, DictConfig):
        raise UserError(f"{source}: expected a mapping of config keys at the top level")
    return loaded


COMPARE_SECTIONS = ("arms", "compare")  # recipe sections that only `compare` reads


def _recipe_file(recipe: str) -> tuple[str, DictConfig]:
    if recipe.endswith((".yaml", ".yml")) or "/" in recipe:
        path = Path(recipe)
        require(path.is_file(), "recipe", f"no recipe file at '{recipe}'")
        layer = _load_yaml(path.read_text(), f"recipe file {recipe}")
        if isinstance(layer.get("plugins"), ListConfig):  # a plugin file named by a recipe file: next to the recipe
            layer.plugins = [str(path.parent / p) if str(p).endswith(".py") and not Path(str(p)).is_absolute()
                             else str(p) for p in layer.plugins]
        return f"recipe file {recipe}", layer
    if recipe not in recipe_names():
        raise unknown("recipe", recipe, recipe_names(), key="recipe")
    text = resources.files("skilltrain.recipes").joinpath(f"{recipe}.yaml").read_text()
    return f"recipe '{recipe}'", _load_yaml(text, f"recipe '{recipe}'")


def _recipe_layer(recipe: str) -> tuple[str, DictConfig]:
    source, layer = _recipe_file(recipe)
    return source, OmegaConf.masked_copy(layer, [k for k in layer if k not in COMPARE_SECTIONS])


def recipe_sections(recipe: str) -> tuple[dict, dict]:
    """A recipe's `arms:` and `compare:` sections (for `compare`), as plain containers."""
    _, layer = _recipe_file(recipe)
    return tuple(OmegaConf.to_container(layer.get(k) or OmegaConf.create({})) for k in COMPARE_SECTIONS)


def _preset_layer(name: str) -> tuple[str, DictConfig]:
    if name not in preset_names():
        raise unknown("preset", name, preset_names(), key="presets")
    text = resources.files("skilltrain.conf").joinpath("presets", f"{name}.yaml").read_text()
    return f"preset '{name}'", _load_yaml(text, f"preset '{name}'")


_OVERRIDE = re.compile(r"^[A-Za-z_][\w\-]*(\.[A-Za-z_][\w\-]*|\[\d+\])*=")


def parse_overrides(args: list[str]) -> DictConfig:
    """`key=value` arguments → a config layer (OmegaConf dotlist grammar: lists as [a,b], mappings as {k: v})."""
    for arg in args:
        if not _OVERRIDE.match(arg):
            raise UserError(f"unexpected argument '{arg}': overrides are key=value (for example seed=3 or data.batch_size=256)")
    try:
        return OmegaConf.from_dotlist(list(args))
    except OmegaConfBaseException as e:
        raise UserError(f"could not parse the overrides ({str(e).splitlines()[0]})") from None
    except Exception as e:  # yaml parser errors on malformed values such as [1,2
        key, _, value = next((a for a in args if _value_fails(a)), args[-1] if args else "=").partition("=")
        raise UserError(f"{key}: could not parse the value '{value}' ({type(e).__name__})") from None


def _value_fails(arg: str) -> bool:
    try:
        OmegaConf.from_dotlist([arg])
        return False
    except Exception:
        return True


# --------------------------------------------------------------------------------------------------------------
# Merging with readable errors


def _node_keys(schema: DictConfig, dotted: str) -> list[str]:
    node: Any = schema
    for part in dotted.split(".") if dotted else []:
        if not isinstance(node, DictConfig) or part not in node:
            return []
        node = node._get_node(part)
    return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []


def _translate(e: OmegaConfBaseException, schema: DictConfig, source: str) -> UserError:
    key = str(getattr(e, "full_key", "") or "")
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    where = f" (from {source})" if source != "the command line" else ""
    if isinstance(e, ConfigKeyError) or "not in" in first:
        parent, _, leaf = key.rpartition(".")
        options = _node_keys(schema, parent)
        guess = closest(leaf, options)
        prefix = f"{parent}." if parent else ""
        elsewhere = _owners(parent, leaf)
        if elsewhere:
            hint = f"{key} is a parameter of {elsewhere}; " + (f"did you mean {prefix}{guess}?" if guess else
                                                                 f"valid keys here: {', '.join(options)}")
        elif guess:
            hint = f"did you mean {prefix}{guess}?"
        elif options:
            hint = f"valid keys under {parent or 'the top level'}: {', '.join(options)}"
        else:
            hint = f"{parent or 'this key'} takes no sub-keys"
        return UserError(f"{key}: unknown key{where} ({hint})")
    if isinstance(e, ValidationError):
        m = re.match(r"Value '(.*)' of type '(\w+)' could not be converted to (\w+)", first)
        if m:
            want = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}
            return UserError(f"{key}: expected {want.get(m.group(3), m.group(3))}, got '{m.group(1)}'{where}")
        if "is not a ListConfig" in first or "Invalid value assigned" in first:
            return UserError(f"{key}: expected a list such as [1.0,0.1]{where}")
        if "is not a DictConfig" in first or "Cannot assign" in first:
            return UserError(f"{key}: expected a mapping such as {{key: value}}{where}")
    return UserError(f"{key or 'config'}: {first}{where}")


def _owners(section: str, key: str) -> str:
    """Which other tasks/models take `key` ("task multitask_parity"), for a key given to the wrong one."""
    registry = {"data": TASKS, "model": MODELS}.get(section)
    if registry is None:
        return ""
    names = [e.name for e in registry.entries() if e.schema and key in OmegaConf.structured(e.schema)]
    return f"{registry.kind} {' / '.join(names)}" if names else ""


def _merge(schema: DictConfig, layers: list[tuple[str, DictConfig]]) -> DictConfig:
    cfg = schema
    for source, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as e:
            raise _translate(e, cfg, source) from None
    return cfg


def _check_sections(layers: list[tuple[str, DictConfig]], schema: DictConfig) -> None:
    """A section given as a scalar (`trainer=5`) is one clear line, not an OmegaConf merge error."""
    for source, layer in layers:
        for key, value in layer.items():
            section = key in ("data", "model") or isinstance(schema._get_node(key) if key in schema else None, DictConfig)
            if section and not isinstance(value, (dict, DictConfig)) and value is not None:
                where = f" (from {source})" if source != "the command line" else ""
                raise UserError(f"{key}: expected a mapping of {key}.* keys, got '{value}'{where}")


def _plugin_schema(registry: Any, raw: DictConfig, section: str) -> DictConfig:
    name = OmegaConf.select(raw, f"{section}.name")
    require(name is not None, f"{section}.name", f"is required (one of: {', '.join(registry.names())})")
    entry = registry.get(str(name))
    return OmegaConf.structured(entry.schema)


# --------------------------------------------------------------------------------------------------------------
# Public API


def load_config(args: list[str] | None = None) -> DictConfig:
    """Compose and validate a run config from `key=value` arguments.

    >>> cfg = load_config(["recipe=compositional", "seed=3", "trainer.max_steps=200"])
    """
    cli = parse_overrides(list(args or []))
    if cli.get("ckpt_path"):
        return _resume_config(cli)
    recipe, layers = _layers(cli)
    cfg = _typed(layers)
    cfg.recipe = recipe
    return cfg


def _layers(cli: DictConfig) -> tuple[str, list[tuple[str, DictConfig]]]:
    """(recipe, the config layers in order: defaults, recipe, presets, command line), untyped."""
    defaults = _load_yaml(resources.files("skilltrain.conf").joinpath("defaults.yaml").read_text(), "conf/defaults.yaml")
    recipe = OmegaConf.select(OmegaConf.merge(defaults, cli), "recipe")
    require(isinstance(recipe, str) and recipe, "recipe", f"is required (one of: {', '.join(recipe_names())})")
    layers = [("conf/defaults.yaml", defaults), _recipe_layer(recipe)]
    presets = OmegaConf.select(OmegaConf.merge(*[layer for _, layer in layers], cli), "presets") or []
    require(isinstance(presets, (list, ListConfig)), "presets", "expected a list such as [debug]")
    layers += [_preset_layer(str(p)) for p in presets]
    layers.append(("the command line", cli))
    return recipe, layers


def load_config_plugins(args: list[str]) -> list[str]:
    """Import the plugins that `key=value` arguments (and the recipe and presets they name) ask for, before
    anything else reads the registries (compare resolves its arms' names first)."""
    _, layers = _layers(parse_overrides(list(args)))
    return _load_plugins_of(OmegaConf.merge(*[layer for _, layer in layers]))


def _load_plugins_of(raw: DictConfig) -> list[str]:
    plugins = raw.get("plugins") or []
    require(isinstance(plugins, (list, ListConfig)), "plugins", "expected a list such as [my_plugin.py]")
    return load_plugins(list(plugins))


# What may change when a run is resumed: how long and how it runs, not what it trains.
RESUMABLE_SECTIONS = ("trainer", "logger", "checkpoint", "out_dir", "ckpt_path", "overwrite", "diverge_factor", "plugins",
                      "callbacks", "stop", "analysis")


def run_dir_of_checkpoint(ckpt_path: str, out_dir: str | None) -> Path:
    """The run a checkpoint belongs to: out_dir, or the directory above a checkpoint's `checkpoints/` folder."""
    if out_dir:
        return Path(out_dir)
    require(ckpt_path != "last", "ckpt_path", "ckpt_path=last needs out_dir=<run directory> to know which run to resume")
    path = Path(ckpt_path)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def identity(container: dict) -> dict:
    """The parts of a config that define what is trained (they must match to resume)."""
    return {k: v for k, v in container.items() if k not in RESUMABLE_SECTIONS}


def _resume_config(cli: DictConfig) -> DictConfig:
    """Resuming continues a run as it was configured: its config.yaml, with command-line changes to how it runs."""
    run_dir = run_dir_of_checkpoint(str(cli.ckpt_path), cli.get("out_dir"))
    saved_path = run_dir / "config.yaml"
    require(saved_path.is_file(), "ckpt_path", f"'{run_dir}' has no config.yaml: not a skilltrain run directory")
    saved = _load_yaml(saved_path.read_text(), str(saved_path))
    defaults = _load_yaml(resources.files("skilltrain.conf").joinpath("defaults.yaml").read_text(), "conf/defaults.yaml")
    # a run made before these keys existed
    saved = OmegaConf.merge({"analysis": defaults.analysis, "checkpoint": {"at_learn_steps": False}}, saved)
    lacking = sorted(_dotted_keys(defaults) - _dotted_keys(saved))
    require(not lacking, "ckpt_path", f"'{run_dir}' was written by an older skilltrain (its config.yaml has no "
            f"{', '.join(lacking[:3])}{', …' if len(lacking) > 3 else ''}); resume it with the version that made it, "
            "or start a new run")
    cli = OmegaConf.merge(cli, {"out_dir": str(run_dir)})
    cfg = _typed([(str(saved_path), saved), ("the command line", cli)])
    before, after = identity(OmegaConf.to_container(saved)), identity(to_container(cfg))
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            raise UserError(f"{key}: cannot change when resuming a run (this run was trained with its config.yaml); "
                            "change only trainer.*, logger.* or checkpoint.*, or start a new run")
    if cfg.optim.scheduler in BUDGET_SCHEDULERS and cfg.trainer.max_steps != saved.trainer.max_steps:
        raise UserError(f"trainer.max_steps: cannot change when resuming a run whose optim.scheduler="
                        f"{cfg.optim.scheduler} decays over its {saved.trainer.max_steps} steps (the rest of the run "
                        "would follow another schedule); resume with the same budget, or start a new run")
    return cfg


def _dotted_keys(node: DictConfig, prefix: str = "") -> set[str]:
    """Every key of a config, dotted (`metric.min_samples`); plugins' sections (data, model, …) are not walked."""
    keys = set()
    for key in node:
        dotted = f"{prefix}{key}"
        keys.add(dotted)
        value = node._get_node(key)
        if isinstance(value, DictConfig) and key not in ("data", "model", "interventions"):
            keys |= _dotted_keys(value, dotted + ".")
    return keys


def from_container(container: dict, source: str = "a saved config") -> DictConfig:
    """Re-apply the schema to a saved config (a checkpoint's hyper-parameters, a run's config.yaml)."""
    # a run made before these keys existed
    container = {**container, "analysis": {**DEFAULT_ANALYSIS, **(container.get("analysis") or {})},
                 "checkpoint": {"at_learn_steps": False, **(container.get("checkpoint") or {})}}
    return _typed([(source, OmegaConf.create(container))])


def _typed(layers: list[tuple[str, DictConfig]]) -> DictConfig:
    """Load the plugins the layers name, then merge the layers into the schema, with `data`/`model`/`optim`/
    `interventions` typed by what they name; validate."""
    schema = OmegaConf.structured(RunConfig)
    _check_sections(layers, schema)
    layers = _without_disabled_interventions(layers)
    raw = OmegaConf.merge(*[layer for _, layer in layers])
    resolved = _load_plugins_of(raw)
    schema.data = _plugin_schema(TASKS, raw, "data")
    schema.model = _plugin_schema(MODELS, raw, "model")
    schema.optim = _optim_schema(raw)
    schema.interventions = _intervention_schemas(raw)
    layers = _forget_other_plugins_keys(layers, schema)
    cfg = _merge(schema, layers)
    missing = sorted(OmegaConf.missing_keys(cfg))
    require(not missing, missing[0] if missing else "", "is required but has no value")
    cfg.plugins = resolved  # as imported: files by absolute path, so that a resume finds them from anywhere
    validate(cfg)
    return cfg


def _optim_schema(raw: DictConfig) -> DictConfig:
    """`optim` takes the schema of the optimizer it names (OptimConfig, or a registered optimizer's extension)."""
    name = OmegaConf.select(raw, "optim.name")
    entry = OPTIMIZERS.get(str(name)) if name is not None else None
    return OmegaConf.structured(entry.schema if entry and entry.schema else OptimConfig)


def _forget_other_plugins_keys(layers: list[tuple[str, DictConfig]], schema: DictConfig) -> list[tuple[str, DictConfig]]:
    """A later layer that names another task or model (`model.name=transformer` on the command line) replaces
    the earlier layers' choice: their keys for the old one (`model.widths`) are dropped, not reported as unknown.
    Keys from the naming layer on must all be valid."""
    layers = [(source, layer.copy()) for source, layer in layers]
    for section in ("data", "model"):
        naming = [i for i, (_, layer) in enumerate(layers) if OmegaConf.select(layer, f"{section}.name") is not None]
        known = set(schema[section].keys())
        for _, layer in layers[: naming[-1]] if naming else []:
            if isinstance(layer.get(section), DictConfig):
                for key in [k for k in layer[section] if k not in known]:
                    del layer[section][key]
    return layers


def _without_disabled_interventions(layers: list[tuple[str, DictConfig]]) -> list[tuple[str, DictConfig]]:
    """`interventions.<name>=null` turns off an intervention that an earlier layer (a recipe) enabled."""
    given = OmegaConf.merge(*[layer for _, layer in layers]).get("interventions")
    off = [name for name, params in given.items() if params is None] if isinstance(given, DictConfig) else []
    if not off:
        return layers
    layers = [(source, layer.copy()) for source, layer in layers]
    for _, layer in layers:
        for name in off:
            if isinstance(layer.get("interventions"), DictConfig) and name in layer.interventions:
                del layer.interventions[name]
    return layers


def _intervention_schemas(raw: DictConfig) -> dict[str, DictConfig]:
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


def validate(cfg: DictConfig) -> None:
    """Value checks that a schema cannot express. Each failure names its key."""
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
    if cfg.logger.wandb.mode not in WANDB_MODES:
        raise unknown("W&B mode", cfg.logger.wandb.mode, WANDB_MODES, key="logger.wandb.mode")
    every = cfg.checkpoint.every_n_steps
    require(every is None or every >= 1, "checkpoint.every_n_steps", f"must be ≥ 1 or null, got {every}")
    data = OmegaConf.to_object(cfg.data)
    if m.name == "acc" and not getattr(data, "accuracy", TASKS.get(cfg.data.name).obj.accuracy):  # a config may decide
        raise UserError(f"metric.name: task {cfg.data.name} has regression skills without accuracy; use metric.name=loss")
    sections = [("data", data), ("model", OmegaConf.to_object(cfg.model)), ("optim", OmegaConf.to_object(cfg.optim))]
    for key, section in sections:
        _validate_section(key, section)
    for name, params in cfg.interventions.items():
        check_intervention_params(name, OmegaConf.to_object(params))


def check_intervention_params(name: str, params: Any) -> None:
    """An intervention's parameters: its mode is registered (one line with the closest one), its validate() passes."""
    entry = INTERVENTIONS.get(name)
    if entry.modes:
        entry.target(params.mode)
    _validate_section(f"interventions.{name}", params)


def _validate_section(key: str, section: Any) -> None:
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


def val_every(cfg: DictConfig) -> int:
    """Training steps between held-out evaluations."""
    return cfg.trainer.val_check_interval


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def to_container(cfg: DictConfig) -> dict:
    """Plain Python containers (what checkpoints store: torch ≥ 2.6 loads with weights_only=True)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
