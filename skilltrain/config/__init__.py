"""Run configuration: a dataclass schema, filled in layers, checked once.

    conf/defaults.yaml  ←  recipes/<recipe>.yaml  ←  conf/presets/<preset>.yaml …  ←  key=value on the command line

- `schema`: the dataclasses (the keys and their types); `data`, `model`, `optim` and `interventions.<name>` take the
  schema of the task, model, optimizer or intervention they name, with that plug-in's own defaults.
- `layers`: recipe and preset files, dotlists, merging with readable errors (shared with `theory`'s config).
- `resume`: configs saved by a run, `migrate` for those of older versions, what a resume may change.
- `validation`: value checks a schema cannot express, and this machine's limits.
- `load`: `load_config`, the one entry point: a typed, validated config that nobody checks again.

Every mistake (unknown key, wrong type, unknown name, invalid value) becomes a one-line `UserError` that names the
key and, where there is one, the closest valid name.
"""

from skilltrain.config.layers import (
    COMPARE_SECTIONS,
    load_defaults,
    load_plugins_of,
    load_yaml,
    merge,
    parse_overrides,
    preset_names,
    recipe_description,
    recipe_file,
    recipe_layer,
    recipe_names,
    recipe_sections,
    recipe_stem,
    translate,
)
from skilltrain.config.load import (
    from_container,
    load_config,
    load_config_plugins,
    restore,
    to_container,
    to_yaml,
    typed,
    val_every,
)
from skilltrain.config.resume import RESUMABLE_SECTIONS, identity, migrate, run_dir_of_checkpoint
from skilltrain.config.schema import (
    BUDGET_SCHEDULERS,
    DEFAULT_ANALYSIS,
    DEFAULT_DISCOVER,
    METRICS,
    SCHEDULERS,
    SPLITS,
    WANDB_MODES,
    AnalysisConfig,
    CheckpointConfig,
    DiscoverConfig,
    LoggerConfig,
    MetricConfig,
    OptimConfig,
    RunConfig,
    StopConfig,
    TrainerConfig,
    WandbConfig,
    optim_schema,
)
from skilltrain.config.validation import check_intervention_params, validate, validate_section
from skilltrain.errors import require

__all__ = [
    "BUDGET_SCHEDULERS", "COMPARE_SECTIONS", "DEFAULT_ANALYSIS", "DEFAULT_DISCOVER", "METRICS", "RESUMABLE_SECTIONS",
    "SCHEDULERS", "SPLITS", "WANDB_MODES", "AnalysisConfig", "CheckpointConfig", "DiscoverConfig", "LoggerConfig",
    "MetricConfig", "OptimConfig", "RunConfig", "StopConfig", "TrainerConfig", "WandbConfig",
    "check_intervention_params", "from_container", "identity", "load_config", "load_config_plugins", "load_defaults",
    "load_plugins_of", "load_yaml", "merge", "migrate", "optim_schema", "parse_overrides", "preset_names",
    "recipe_description", "recipe_file", "recipe_layer", "recipe_names", "recipe_sections", "recipe_stem", "require",
    "restore", "run_dir_of_checkpoint", "to_container", "to_yaml", "translate", "typed", "val_every", "validate",
    "validate_section",
]
