"""The architecture, checked: import-linter's contracts (pyproject.toml, [tool.importlinter]) hold, and no module
reaches into another's private (leading-underscore) names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

# Where each part of the skilltrain namespace lives in the source tree (pyproject's package-dir).
PACKAGES = {"skilltrain": ROOT / "skilltrain", "skilltrain.callbacks": ROOT / "callbacks"}


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "lint-imports not found: install the dev extras (pip install -e '.[dev]')"
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout, done.stdout[-6000:]


def modules() -> dict[str, Path]:
    """Every module of the namespace: its dotted name → its file."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def foreign_private_names(name: str, path: Path, known: set[str]) -> list[str]:
    """`from skilltrain.x import _y` in a module other than skilltrain.x, and `x._y` on an imported skilltrain module."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    found, bound = [], {}  # bound: a local name → the skilltrain module it is
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:  # relative: from the module's own package
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                source = ".".join([*base, *([source] if source else [])])
            if not source.startswith("skilltrain"):
                continue
            for alias in node.names:
                if private(alias.name) and source != name:
                    found.append(f"{where}:{node.lineno}: from {source} import {alias.name}")
                if f"{source}.{alias.name}" in known:
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("skilltrain"):
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound["skilltrain"] = "skilltrain"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                module = ".".join([bound[value.id], *chain])
                if module in known and module != name:
                    found.append(f"{where}:{node.lineno}: {module}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_name():
    known = modules()
    found = [line for name, path in sorted(known.items()) for line in foreign_private_names(name, path, set(known))]
    assert not found, "private names used outside their module (make them public):\n" + "\n".join(found)


def test_the_private_name_check_sees_what_it_must(tmp_path):
    """The scanner itself: a from-import and an attribute access of another module's private name are caught; a
    module's own, a dunder and an aliased public name are not."""
    path = tmp_path / "probe.py"
    path.write_text("from skilltrain.config import _load_yaml\nfrom skilltrain.probe import _mine\n"
                    "from skilltrain import __version__, plugins\nfrom skilltrain.models import build_model as _b\n"
                    "import skilltrain.files as files\nplugins._secret\nfiles._tmp\nplugins.load_plugins\n")
    known = {"skilltrain.config", "skilltrain.probe", "skilltrain.plugins", "skilltrain.files", "skilltrain.models"}
    found = [line.split(": ", 1)[1] for line in foreign_private_names("skilltrain.probe", path, known)]
    assert found == ["from skilltrain.config import _load_yaml", "skilltrain.plugins._secret", "skilltrain.files._tmp"]


# Modules the lead converts after merging (they are being rewritten): empty this set then.
def savefig_calls(path: Path) -> list[int]:
    """The lines of `path` that call `<anything>.savefig(`."""
    return [node.lineno for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "savefig"]


def test_every_figure_is_written_atomically():
    """A figure is written through skilltrain.files.save_figure (a buffer, then an atomic write), never by
    matplotlib straight into its file (a kill mid-write would leave half a PNG under the final name)."""
    found = [f"{path.relative_to(ROOT)}:{line}" for path in modules().values()
             if path.relative_to(ROOT).as_posix() not in {"skilltrain/files.py"}
             for line in savefig_calls(path)]
    assert not found, f"call skilltrain.files.save_figure instead of .savefig: {found}"
    assert savefig_calls(ROOT / "skilltrain/files.py")  # the check sees a call where there is one


_HOOKS = {"setup", "prepare_data", "configure_optimizers", "configure_model"}


def test_nothing_under_skilltrain_calls_a_lightning_hook_by_hand():
    """A run's parts are built by skilltrain.build (build_run, build_model) and its hooks called by Lightning's
    Trainer only: a reader that rebuilds a model calls no `setup` or `on_*` hook itself."""
    found = [f"{path.relative_to(ROOT)}:{node.lineno}: .{node.func.attr}(" for path in (ROOT / "skilltrain").rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text(), str(path)))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and (node.func.attr in _HOOKS or node.func.attr.startswith("on_"))]
    assert not found, found
