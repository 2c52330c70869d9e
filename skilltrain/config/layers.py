"""The config's layers, and merging them with readable errors:

    conf/defaults.yaml  ←  recipes/<recipe>.yaml  ←  conf/presets/<preset>.yaml …  ←  key=value on the command line

`fit` and `theory` (recipes/theory/) read their recipe files, dotlists and errors through the same functions here.
Every OmegaConf error of a merge becomes a one-line `UserError` that names the key and, where there is one, the
closest valid name (`translate`).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from skilltrain.errors import UserError, closest, require, unknown
from skilltrain.plugins import load_plugins
from skilltrain.registry import MODELS, TASKS

Layers = list[tuple[str, DictConfig]]  # (where a layer comes from, for error messages; the layer)

COMPARE_SECTIONS = ("arms", "compare")  # recipe sections that only `compare` reads


# --------------------------------------------------------------------------------------------------------------
# Files: recipes, presets, defaults


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


def load_yaml(text: str, source: str) -> DictConfig:
    """A YAML mapping of config keys; anything else is one line naming `source`."""
    try:
        loaded = OmegaConf.create(text)
    except Exception as e:  # yaml.YAMLError and friends
        raise UserError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(loaded, DictConfig):
        raise UserError(f"{source}: expected a mapping of config keys at the top level")
    return loaded


def load_defaults() -> DictConfig:
    """conf/defaults.yaml: every run-level key's default."""
    return load_yaml(resources.files("skilltrain.conf").joinpath("defaults.yaml").read_text(), "conf/defaults.yaml")


def recipe_file(recipe: str, folder: str = "") -> tuple[str, DictConfig]:
    """(source, layer) of a recipe: a shipped recipe's name (under recipes/<folder>) or a path to a YAML file, all
    its sections. A plugin file a recipe file names is found next to the recipe."""
    kind = f"{folder} recipe" if folder else "recipe"
    if recipe.endswith((".yaml", ".yml")) or "/" in recipe:
        path = Path(recipe)
        require(path.is_file(), "recipe", f"no {kind} file at '{recipe}'")
        layer = load_yaml(path.read_text(), f"recipe file {recipe}")
        if isinstance(layer.get("plugins"), ListConfig):
            layer.plugins = [str(path.parent / p) if str(p).endswith(".py") and not Path(str(p)).is_absolute()
                             else str(p) for p in layer.plugins]
        return f"recipe file {recipe}", layer
    if recipe not in recipe_names(folder):
        raise unknown(kind, recipe, recipe_names(folder), key="recipe")
    text = resources.files("skilltrain.recipes").joinpath(*([folder] if folder else []), f"{recipe}.yaml").read_text()
    return f"{kind} '{recipe}'", load_yaml(text, f"{kind} '{recipe}'")


def recipe_layer(recipe: str, folder: str = "") -> tuple[str, DictConfig]:
    """A recipe as a config layer: without the sections only `compare` reads."""
    source, layer = recipe_file(recipe, folder)
    return source, OmegaConf.masked_copy(layer, [k for k in layer if k not in COMPARE_SECTIONS])


def recipe_sections(recipe: str, folder: str = "") -> tuple[dict, dict]:
    """A recipe's `arms:` and `compare:` sections (for `compare`), as plain containers."""
    _, layer = recipe_file(recipe, folder)
    return tuple(OmegaConf.to_container(layer.get(k) or OmegaConf.create({})) for k in COMPARE_SECTIONS)


def preset_layer(name: str) -> tuple[str, DictConfig]:
    if name not in preset_names():
        raise unknown("preset", name, preset_names(), key="presets")
    text = resources.files("skilltrain.conf").joinpath("presets", f"{name}.yaml").read_text()
    return f"preset '{name}'", load_yaml(text, f"preset '{name}'")


def run_layers(cli: DictConfig) -> tuple[str, Layers]:
    """(recipe, the config layers of a fit in order: defaults, recipe, presets, command line), untyped."""
    defaults = load_defaults()
    recipe = OmegaConf.select(OmegaConf.merge(defaults, cli), "recipe")
    require(isinstance(recipe, str) and recipe, "recipe", f"is required (one of: {', '.join(recipe_names())})")
    layers = [("conf/defaults.yaml", defaults), recipe_layer(recipe)]
    presets = OmegaConf.select(OmegaConf.merge(*[layer for _, layer in layers], cli), "presets") or []
    require(isinstance(presets, (list, ListConfig)), "presets", "expected a list such as [debug]")
    layers += [preset_layer(str(p)) for p in presets]
    layers.append(("the command line", cli))
    return recipe, layers


def load_plugins_of(raw: DictConfig) -> list[str]:
    """Import the plugins a (merged, untyped) config names; their resolved specs."""
    plugins = raw.get("plugins") or []
    require(isinstance(plugins, (list, ListConfig)), "plugins", "expected a list such as [my_plugin.py]")
    return load_plugins(list(plugins))


# --------------------------------------------------------------------------------------------------------------
# The command line

_OVERRIDE = re.compile(r"^[A-Za-z_][\w\-]*(\.[A-Za-z_][\w\-]*|\[\d+\])*=")


def parse_overrides(args: list[str]) -> DictConfig:
    """`key=value` arguments → a config layer (OmegaConf dotlist grammar: lists as [a,b], mappings as {k: v})."""
    for arg in args:
        if not _OVERRIDE.match(arg):
            raise UserError(f"unexpected argument '{arg}': overrides are key=value (for example seed=3 or data.batch_size=256)")
    try:
        layer = OmegaConf.from_dotlist(list(args))
    except OmegaConfBaseException as e:
        raise UserError(f"could not parse the overrides ({str(e).splitlines()[0]})") from None
    except Exception as e:  # yaml parser errors on malformed values such as [1,2
        key, _, value = next((a for a in args if _value_fails(a)), args[-1] if args else "=").partition("=")
        raise UserError(f"{key}: could not parse the value '{value}' ({type(e).__name__})") from None
    _refuse_colon_keys(OmegaConf.to_container(layer), "")
    return layer


def _refuse_colon_keys(node, where: str) -> None:
    """`{qos:high}` is YAML for the key 'qos:high' without a value, never what was meant: refused, with the fix."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if value is None and ":" in str(key):
                name, _, meant = str(key).partition(":")
                raise UserError(f"{where or here}: {{{key}}} reads as the key '{key}' without a value; YAML needs a "
                                f"space after the colon: {{{name}: {meant}}} (with the argument in quotes for the shell)")
            _refuse_colon_keys(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_colon_keys(value, f"{where}[{i}]")


def _value_fails(arg: str) -> bool:
    try:
        OmegaConf.from_dotlist([arg])
        return False
    except Exception:
        return True


# --------------------------------------------------------------------------------------------------------------
# Merging with readable errors


def merge(schema: DictConfig, layers: Layers) -> DictConfig:
    """The layers merged, in order, into `schema`; an OmegaConf error is one line naming the key and the layer."""
    cfg = schema
    for source, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as e:
            raise translate(e, cfg, source) from None
    return cfg


def translate(e: OmegaConfBaseException, schema: DictConfig, source: str) -> UserError:
    """An OmegaConf error as one line: `key: unknown key (did you mean …?)`, `key: expected an integer, got 'x'`."""
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


def _node_keys(schema: DictConfig, dotted: str) -> list[str]:
    node: Any = schema
    for part in dotted.split(".") if dotted else []:
        if not isinstance(node, DictConfig) or part not in node:
            return []
        node = node._get_node(part)
    return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []


def _owners(section: str, key: str) -> str:
    """Which other tasks/models take `key` ("task multitask_parity"), for a key given to the wrong one."""
    registry = {"data": TASKS, "model": MODELS}.get(section)
    if registry is None:
        return ""
    names = [e.name for e in registry.entries() if e.schema and key in OmegaConf.structured(e.schema)]
    return f"{registry.kind} {' / '.join(names)}" if names else ""


def check_sections(layers: Layers, schema: DictConfig) -> None:
    """A section given as a scalar (`trainer=5`) is one clear line, not an OmegaConf merge error."""
    for source, layer in layers:
        for key, value in layer.items():
            section = key in ("data", "model") or isinstance(schema._get_node(key) if key in schema else None, DictConfig)
            if section and not isinstance(value, (dict, DictConfig)) and value is not None:
                where = f" (from {source})" if source != "the command line" else ""
                raise UserError(f"{key}: expected a mapping of {key}.* keys, got '{value}'{where}")


def without_disabled_interventions(layers: Layers) -> Layers:
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


def forget_other_plugins_keys(layers: Layers, schema: DictConfig) -> Layers:
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
