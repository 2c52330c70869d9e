"""Name → implementation registries for tasks, models, optimizers and interventions.

Each entry carries a one-line description (shown by `python -m skilltrain list`) and, where it takes
parameters, a dataclass that is its config schema (merged into the run config under `data`, `model` or
`interventions.<name>`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skilltrain.errors import unknown


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    description: str
    schema: type | None = None


class Registry:
    def __init__(self, kind: str, key: str, builtins: str):
        self.kind = kind  # "task", "model", ...
        self.key = key  # config key that names an entry, for error messages: "data.name"
        self.builtins = builtins  # module whose import registers the built-in entries (imported lazily)
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, description: str, schema: type | None = None) -> Callable[[Any], Any]:
        def add(obj: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = Entry(name, obj, description, schema)
            return obj

        return add

    def get(self, name: str) -> Entry:
        importlib.import_module(self.builtins)
        if name not in self._entries:
            raise unknown(self.kind, name, self._entries, key=self.key)
        return self._entries[name]

    def entries(self) -> list[Entry]:
        importlib.import_module(self.builtins)
        return sorted(self._entries.values(), key=lambda e: e.name)

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]


# Built-ins register on first use, so that validating a data key never imports Lightning.
TASKS = Registry("task", "data.name", "skilltrain.data")
MODELS = Registry("model", "model.name", "skilltrain.models")
OPTIMIZERS = Registry("optimizer", "optim.name", "skilltrain.optim")
INTERVENTIONS = Registry("intervention", "interventions", "skilltrain.callbacks")
