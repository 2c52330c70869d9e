"""Name → implementation registries for tasks, models, optimizers and interventions, and the public decorators that
fill them: `register_task`, `register_model`, `register_optimizer`, `register_intervention`.

Built-ins register through the same decorators as users' plugins. Each entry carries a one-line description (shown
by `python -m skilltrain list`), the dataclass that is its config schema (merged into the run config under `data`,
`model`, `optim` or `interventions.<name>`: typed, validated, with did-you-mean on typos), and where it came from
(`source`: skilltrain, a plugin, an entry point, or code that ran in this process only).

An intervention name may have modes (`interventions.skill_reweighting.mode=online`): each mode is registered on its
own, with `mode=…`, and maps to its own class; the name's config class holds the parameters of all its modes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from skilltrain import plugins
from skilltrain.errors import RegistrationError, unknown
from skilltrain.plugins import BUILTIN, THIS_PROCESS


@dataclass
class Entry:
    name: str
    obj: Any  # the class, or a factory; for a name with modes: None (see `modes`)
    description: str
    schema: type | None = None
    source: str = BUILTIN
    modes: dict[str, Any] = field(default_factory=dict)  # mode → class or factory (interventions with modes)
    mode_sources: dict[str, str] = field(default_factory=dict)
    mode_params: dict[str, tuple[str, ...] | None] = field(default_factory=dict)  # mode → the parameters it uses (None: not said)

    def target(self, mode: str | None = None) -> Any:
        """What builds this entry (for `mode`, when the name has modes)."""
        if not self.modes:
            return self.obj
        if mode not in self.modes:
            raise unknown("mode", str(mode), self.modes, key=f"interventions.{self.name}.mode")
        return self.modes[mode]


class Registry:
    def __init__(self, kind: str, key: str, builtins: str):
        self.kind = kind  # "task", "model", ...
        self.key = key  # config key that names an entry, for error messages: "data.name"
        self.builtins = builtins  # module whose import registers the built-in entries (imported lazily)
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, description: str | None = None, schema: type | None = None, *,
                 mode: str | None = None, uses: Iterable[str] | None = None) -> Callable[[Any], Any]:
        """Decorator: register a class (or a factory) under `name` (and `mode`, which uses the config fields `uses`)."""
        if not isinstance(name, str) or not name or "/" in name or "." in name:
            raise RegistrationError(f"a {self.kind} name must be a non-empty string without '.' or '/', got {name!r}")

        def add(obj: Any) -> Any:
            source = plugins.current_source(obj)
            if source != BUILTIN:
                self._load()  # a user's entry meets every built-in name, whatever was imported first
            entry = self._entries.get(name)
            if mode is None:
                if entry is not None:
                    raise RegistrationError(f"{self.kind} '{name}' is already registered (by {entry.source})")
                self._entries[name] = Entry(name, obj, description or "", schema, source)
                return obj
            if entry is None:
                entry = self._entries[name] = Entry(name, None, description or "", schema, source)
            elif entry.obj is not None:
                raise RegistrationError(f"{self.kind} '{name}' is already registered without modes (by {entry.source})")
            if mode in entry.modes:
                raise RegistrationError(f"{self.kind} '{name}' mode '{mode}' is already registered "
                                        f"(by {entry.mode_sources[mode]})")
            if schema is not None and entry.schema is not None and schema is not entry.schema:
                raise RegistrationError(f"{self.kind} '{name}' mode '{mode}': every mode of a name shares its config "
                                        f"class ({entry.schema.__name__}), got {schema.__name__}")
            entry.schema = entry.schema or schema
            entry.description = entry.description or description or ""
            entry.modes[mode] = obj
            entry.mode_sources[mode] = source
            entry.mode_params[mode] = tuple(uses) if uses is not None else None
            return obj

        return add

    def _load(self) -> None:
        importlib.import_module(self.builtins)
        plugins.load_entry_points()
        _credit_plugins()

    def get(self, name: str) -> Entry:
        self._load()
        if name not in self._entries:
            raise unknown(self.kind, name, self._entries, key=self.key)
        return self._entries[name]

    def entries(self) -> list[Entry]:
        self._load()
        return sorted(self._entries.values(), key=lambda e: e.name)

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]


def _credit_plugins() -> None:
    """Credit the entries that code in a module registered in this process to the plugin that module turned out to be
    (`plugins.credits`: a script that a comparison's runs import as a plugin)."""
    for module, source in plugins.credits.items():
        for registry in (TASKS, MODELS, OPTIMIZERS, INTERVENTIONS):
            for entry in registry._entries.values():
                if getattr(entry.obj, "__module__", None) == module and entry.source == THIS_PROCESS:
                    entry.source = source
                for mode, obj in entry.modes.items():
                    if getattr(obj, "__module__", None) == module and entry.mode_sources[mode] == THIS_PROCESS:
                        entry.mode_sources[mode] = source


def lazy(target: str) -> Callable[..., Any]:
    """A stand-in for `"module:Class"` that imports it only when called: registering it instead of the class keeps
    `list`, `print-config` and config validation from importing what the class needs (Lightning, for interventions)."""
    module, _, attr = target.partition(":")

    def build(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    build.__name__ = build.__qualname__ = attr
    build.__module__ = module  # where it comes from, for `Entry.source`
    build.target = target  # type: ignore[attr-defined]
    return build


# Built-ins register on first use, so that validating a data key never imports Lightning.
TASKS = Registry("task", "data.name", "skilltrain.data")
MODELS = Registry("model", "model.name", "skilltrain.models")
OPTIMIZERS = Registry("optimizer", "optim.name", "skilltrain.optim")
INTERVENTIONS = Registry("intervention", "interventions", "skilltrain.callbacks")


def register_task(name: str, description: str, config_class: type) -> Callable[[Any], Any]:
    """Register a `skilltrain.Task` subclass as `data.name=<name>`; `config_class` is a dataclass extending
    `skilltrain.DataConfig` whose fields become `data.*` keys (its `name` field defaults to `name`).

    The class is constructed as `cls(config, data_seed, dtype)` and must call `self.finish(skills, frequencies)`.
    """
    return TASKS.register(name, description, config_class)


def register_model(name: str, description: str, config_class: type) -> Callable[[Any], Any]:
    """Register a model as `model.name=<name>`: a class (or factory) called as `cls(config, task, n_outputs)` that
    returns a `torch.nn.Module` mapping a batch's `x` to `[B, n_outputs]`; `config_class` is a dataclass extending
    `skilltrain.ModelConfig` (its fields become `model.*` keys)."""
    return MODELS.register(name, description, config_class)


def register_optimizer(name: str, description: str, config_class: type | None = None) -> Callable[[Any], Any]:
    """Register an optimizer as `optim.name=<name>`: a callable `(parameters, config) -> torch.optim.Optimizer`.
    `config_class` (optional) is a dataclass extending `skilltrain.OptimConfig` with the optimizer's own keys."""
    return OPTIMIZERS.register(name, description, config_class)


def register_intervention(name: str, description: str | None = None, config_class: type | None = None, *,
                          mode: str | None = None, uses: Iterable[str] | None = None) -> Callable[[Any], Any]:
    """Register an intervention as `interventions.<name>`: a `skilltrain.Intervention` subclass (or a factory)
    constructed as `cls(params, task)`, `params` being an instance of `config_class` (a dataclass whose fields become
    `interventions.<name>.*` keys; its optional `validate()` may raise ValueError for a bad value).

    With `mode=…`, the class is the one for `interventions.<name>.mode=<mode>`; register each mode of a name this
    way (the first registration gives the description and config class, which must have a `mode` field). `uses`
    names the config fields that mode reads: setting another one away from its default under that mode is refused
    (one line naming the mode), rather than silently ignored. Without `uses`, any field is accepted.
    """
    return INTERVENTIONS.register(name, description, config_class, mode=mode, uses=uses)
