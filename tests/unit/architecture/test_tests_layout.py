"""The tests' own layout (tests/README.md): unit tests by area in tests/unit/<area>/, end-to-end tests in tests/e2e/,
what tests share in tests/helpers/, and no test module imports another (a test that needs another's code gets it
from tests/helpers/)."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

TESTS = ROOT / "tests"


def importable_names(tests: Path) -> set[str]:
    """The names a module or package under `tests` (tests/helpers/ left out) can be imported by: dotted, with and
    without the leading `tests.` (pytest puts tests/ on sys.path, so unit/ and e2e/ are top-level packages), and a
    module's bare name (`import test_x` beside test_x.py)."""
    names = {"tests"}
    for path in tests.rglob("*.py"):
        parts = path.relative_to(tests).with_suffix("").parts
        if parts[0] == "helpers":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        else:
            names.add(parts[-1])
        dotted = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        names |= dotted | {f"tests.{name}" for name in dotted}
    return names


def imports_of_test_modules(path: Path, tests: Path) -> list[str]:
    """Every import in `path` (nested ones included) of a module under `tests` other than tests/helpers/: by its
    dotted name, by its bare file name, or relative."""
    names = importable_names(tests)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append(f"{path.relative_to(tests)}:{node.lineno}: from {'.' * node.level}{node.module or ''} import ...")
            continue
        elif isinstance(node, ast.ImportFrom):
            targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        if any(target in names for target in targets):
            found.append(f"{path.relative_to(tests)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_test_module_imports_another():
    found = [hit for path in sorted(TESTS.rglob("*.py")) for hit in imports_of_test_modules(path, TESTS)]
    assert not found, "a test module imports another (put what they share in tests/helpers/):\n" + "\n".join(found)


def test_the_import_check_sees_what_it_must(tmp_path):
    """Every way of importing a test module is caught; helpers, the package and libraries are not."""
    tests = tmp_path / "tests"
    for folder in ("unit", "unit/config", "e2e", "helpers"):
        (tests / folder).mkdir(parents=True)
        (tests / folder / "__init__.py").write_text("")
    (tests / "conftest.py").write_text("")
    (tests / "unit/config/test_config.py").write_text("def shared(): ...\n")
    (tests / "e2e/test_fit.py").write_text(
        "import os\n"
        "from pathlib import Path\n"
        "import pytest\n"
        "from helpers import fit_quietly\n"
        "import helpers\n"
        "from skilltrain.config import load_config\n"
        "from unit.config.test_config import shared\n"
        "import e2e.test_fit\n"
        "from unit.config import test_config\n"
        "from tests.unit.config.test_config import shared\n"
        "from conftest import E2E\n"
        "from test_config import shared\n"
        "def test_it():\n"
        "    from . import test_other\n"
        "    import unit\n")
    assert imports_of_test_modules(tests / "e2e/test_fit.py", tests) == [
        "e2e/test_fit.py:7: from unit.config.test_config import shared",
        "e2e/test_fit.py:8: import e2e.test_fit",
        "e2e/test_fit.py:9: from unit.config import test_config",
        "e2e/test_fit.py:10: from tests.unit.config.test_config import shared",
        "e2e/test_fit.py:11: from conftest import E2E",
        "e2e/test_fit.py:12: from test_config import shared",
        "e2e/test_fit.py:14: from . import ...",
        "e2e/test_fit.py:15: import unit",
    ]


def test_every_test_module_is_a_unit_test_of_an_area_or_an_end_to_end_test():
    assert (ROOT / "pyproject.toml").is_file() and (ROOT / "skilltrain").is_dir()  # helpers.ROOT is the repository
    misplaced = [str(p.relative_to(TESTS)) for p in TESTS.rglob("test_*.py")
                 if len(p.relative_to(TESTS).parts) != {"unit": 3, "e2e": 2}.get(p.relative_to(TESTS).parts[0])]
    assert not misplaced, f"a test module belongs in tests/unit/<area>/ or tests/e2e/: {misplaced}"
    # a package each, so that two test modules of the same name in different folders do not collide
    folders = {p.parent for p in TESTS.rglob("test_*.py")}
    assert folders and all((folder / "__init__.py").is_file() for folder in folders | {TESTS / "unit", TESTS / "e2e"})
