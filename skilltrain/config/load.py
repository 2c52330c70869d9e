"""Loading a run config: the layers merged into the schema, typed by what they name, and validated once.

`load_config` (from `key=value` arguments) and `from_container` (a whole config someone passes) return a validated
config; `restore` re-types a config that skilltrain saved (a checkpoint's hyper-parameters, a run's config.yaml)
without checking it again: it was checked when it was loaded.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from skilltrain.config.layers import (
    Layers,
    check_sections,
    forget_other_plugins_keys,
    load_plugins_of,
    merge,
    parse_overrides,
    run_layers,
    without_disabled_interventions,
)
from skilltrain.config.resume import check_unchanged, migrate, resume_layers
from skilltrain.config.schema import RunConfig, typed_schema
from skilltrain.config.validation import validate
from skilltrain.errors import require


def load_config(args: list[str] | None = None) -> DictConfig:
    """Compose and validate a run config from `key=value` arguments.

    >>> cfg = load_config(["recipe=compositional", "seed=3", "trainer.max_steps=200"])
    """
    cli = parse_overrides(list(args or []))
    if cli.get("ckpt_path"):
        saved, layers = resume_layers(cli)
        cfg = typed(layers)
        check_unchanged(saved, to_container(cfg))
        return cfg
    recipe, layers = run_layers(cli)
    cfg = typed(layers)
    cfg.recipe = recipe
    return cfg


def load_config_plugins(args: list[str]) -> list[str]:
    """Import the plugins that `key=value` arguments (and the recipe and presets they name) ask for, before
    anything else reads the registries (compare resolves its arms' names first)."""
    _, layers = run_layers(parse_overrides(list(args)))
    return load_plugins_of(OmegaConf.merge(*[layer for _, layer in layers]))


def from_container(container: dict, source: str = "a saved config") -> DictConfig:
    """A whole config given as plain containers (`skilltrain.fit(config=…)`), typed and validated."""
    return typed([(source, OmegaConf.create(migrate(container)))])


def restore(container: dict, source: str = "a saved config") -> DictConfig:
    """A config that skilltrain saved and checked (a checkpoint's hyper-parameters, a run's config.yaml), typed again,
    not validated again."""
    return typed([(source, OmegaConf.create(migrate(container)))], check=False)


def typed(layers: Layers, check: bool = True) -> DictConfig:
    """Load the plugins the layers name, then merge the layers into the schema, with `data`/`model`/`optim`/
    `interventions` typed by what they name; validate (`check`)."""
    check_sections(layers, OmegaConf.structured(RunConfig))
    layers = without_disabled_interventions(layers)
    raw = OmegaConf.merge(*[layer for _, layer in layers])
    resolved = load_plugins_of(raw)
    schema = typed_schema(raw)
    cfg = merge(schema, forget_other_plugins_keys(layers, schema))
    missing = sorted(OmegaConf.missing_keys(cfg))
    require(not missing, missing[0] if missing else "", "is required but has no value")
    cfg.plugins = resolved  # as imported: files by absolute path, so that a resume finds them from anywhere
    if check:
        validate(cfg)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def to_container(cfg: DictConfig) -> dict:
    """Plain Python containers (what checkpoints store: torch ≥ 2.6 loads with weights_only=True)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def val_every(cfg: DictConfig) -> int:
    """Training steps between held-out evaluations."""
    return cfg.trainer.val_check_interval
