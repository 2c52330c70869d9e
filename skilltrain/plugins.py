"""Users' own tasks, models, optimizers and interventions, loaded into every process skilltrain starts.

Two ways in:

- `plugins=[my_module, path/to/file.py]` (a config key): each a module name or a path to a `.py` file, imported
  before the config is resolved, by every command (`fit`, `compare` and each run it starts, `list`, `print-config`,
  `export-data`) and recorded in the run's config.yaml, so that a resume imports them again.
- installed packages declare an entry point in the group `skilltrain.plugins` (pyproject.toml:
  `[project.entry-points."skilltrain.plugins"] mine = "my_package.skilltrain_plugin"`); it is loaded whenever a
  registry is first used, with no key. The entry point names a module (imported) or a function (called).

A plugin registers its entries with the public decorators (`skilltrain.register_intervention`, …). One that fails
to import, or registers a name twice, is one `error:` line naming the plugin.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from skilltrain.errors import RegistrationError, UserError

GROUP = "skilltrain.plugins"
BUILTIN = "skilltrain"
THIS_PROCESS = "this process"  # registered by code that is not a plugin: invisible to the processes compare starts

_loading: list[str] = []  # the plugin being imported (innermost last): what its registrations are credited to
_loaded: dict[str, str] = {}  # spec (a module name or an absolute file path) → the module it was imported as
_entry_points_loaded = False
credits: dict[str, str] = {}  # module → the plugin that its registrations are credited to (the registries read it)


def current_source(obj: object) -> str:
    """Where a registration comes from: the plugin being loaded, skilltrain itself, or this process only."""
    module = getattr(obj, "__module__", "") or ""
    if module == "skilltrain" or module.startswith("skilltrain."):
        return BUILTIN  # (also when a plugin's import is what first imports a built-in module)
    return _loading[-1] if _loading else THIS_PROCESS


@contextlib.contextmanager
def _loading_plugin(source: str, shown: str, path: str | None = None) -> Iterator[None]:
    """Credit what is registered inside to `source`; a failure is one UserError line naming the plugin (`shown`)."""
    _loading.append(source)
    try:
        yield
    except RegistrationError as e:
        raise UserError(f"plugins: {shown}: {e}") from None
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"plugins: cannot import '{shown}' ({_where(e, path)})") from None
    finally:
        _loading.pop()


def resolve(spec: str) -> str:
    """A plugin spec as it is recorded: a `.py` path made absolute (a resume may start elsewhere), a module as is."""
    spec = str(spec).strip()
    if spec.endswith(".py") or "/" in spec:
        return str(Path(spec).expanduser().resolve())
    return spec


def load_plugins(specs) -> list[str]:
    """Import each plugin once (per process); the resolved specs, in order. One-line errors name the plugin."""
    resolved = []
    for spec in specs or []:
        if not isinstance(spec, str) or not spec.strip():
            raise UserError(f"plugins: expected module names or paths to .py files, got {spec!r}")
        key = resolve(spec)
        resolved.append(key)
        if key in _loaded:
            continue
        _loaded[key] = _import(spec, key)
    return resolved


def _import(spec: str, key: str) -> str:
    is_file = key.startswith("/")
    label = f"plugin {spec}"
    if is_file:
        path = Path(key)
        if not path.is_file():
            raise UserError(f"plugins: no plugin file '{spec}'")
        main = sys.modules.get("__main__")
        if getattr(main, "__file__", None) and Path(main.__file__).resolve() == path:
            # the running script itself: it has registered its entries already; they are a plugin's now (the
            # processes a comparison starts import this file as one)
            credits["__main__"] = label
            return "__main__"
        name = f"skilltrain_plugin_{path.stem}_{hashlib.blake2b(key.encode(), digest_size=4).hexdigest()}"
    else:
        name = spec
    with _loading_plugin(label, spec, key if is_file else None):
        if not is_file:
            importlib.import_module(spec)
        else:
            module_spec = importlib.util.spec_from_file_location(name, key)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module  # dataclasses and pickling look classes up by module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
    return name


_OWN_FILES = {__file__, importlib.__file__, metadata.__file__}


def _where(e: Exception, path: str | None) -> str:
    """`TypeError: message (file.py:12)`: the error and the line of the plugin that raised it."""
    text = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}".rstrip(": ")
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if (f.filename == path if path else not f.filename.startswith("<") and f.filename not in _OWN_FILES)]
    if frames:
        text += f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}"
    return text


def load_entry_points() -> None:
    """Import (or call) every `skilltrain.plugins` entry point of the installed packages, once per process."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=GROUP):
        label = f"entry point {ep.name} ({ep.value})"
        with _loading_plugin(label, label):
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, type(sys)):
                loaded()


def instantiate(spec, key: str, base: type | None = None):
    """An object from Lightning CLI's form, `{class_path: my.module.MyClass, init_args: {...}}` (`class_path` may be
    `path/to/file.py:MyClass`, imported like a plugin file); one-line errors naming `key`."""
    from omegaconf import DictConfig, OmegaConf

    spec = OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else spec
    if not isinstance(spec, dict) or not isinstance(spec.get("class_path"), str):
        raise UserError(f"{key}: expected {{class_path: my.module.MyClass, init_args: {{...}}}}, got {spec!r}")
    extra = sorted(set(spec) - {"class_path", "init_args"})
    if extra:
        raise UserError(f"{key}.{extra[0]}: unknown key (expected class_path and init_args)")
    path, init_args = spec["class_path"], spec.get("init_args") or {}
    if not isinstance(init_args, dict):
        raise UserError(f"{key}.init_args: expected a mapping of keyword arguments, got {init_args!r}")
    if ".py:" in path:
        file, _, name = path.rpartition(":")
        (resolved,) = load_plugins([file])
        module_name = _loaded[resolved]
    else:
        module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(sys.modules[module_name] if module_name in sys.modules else importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise UserError(f"{key}.class_path: cannot import '{path}' ({type(e).__name__}: {e})") from None
    try:
        obj = cls(**init_args)
    except Exception as e:  # a wrong argument (TypeError) or a value the class refuses (its own exception)
        raise UserError(f"{key}.init_args: {path}: {type(e).__name__}: {' '.join(str(e).split())}") from None
    if base is not None and not isinstance(obj, base):
        raise UserError(f"{key}.class_path: {path} made a {type(obj).__name__}, not a {base.__module__}.{base.__name__}")
    return obj
