"""Shared fixtures: W&B off, every test in its own directory and from the same torch CPU RNG state, registries
restored (helpers: tests/helpers). Every test under tests/e2e/ is marked `slow`, so `-m "not slow"` runs the unit
tests only (tests/README.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items):
    """Every end-to-end test is slow, whether or not its own file says so."""
    for item in items:
        if item.path.resolve().is_relative_to(E2E):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test runs in its own directory (a default run directory lands in tmp_path/runs)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("SKILLTRAIN_RUN_DIR", raising=False)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from torch's global CPU RNG seeded with 0, and leaves it as it found it: a model built outside
    `fit` (which seeds itself) gets the same weights whichever tests ran before it on the worker (under `-n 2` the
    order varies), so a test whose premise holds for some draws only cannot pass or fail by the order."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@pytest.fixture
def clean_registries(monkeypatch):
    """Registrations and plugins made by the test are forgotten afterwards (the registries are process-global)."""
    import dataclasses

    from skilltrain import plugins
    from skilltrain.registry import INTERVENTIONS, MODELS, OPTIMIZERS, TASKS

    for registry in (TASKS, MODELS, OPTIMIZERS, INTERVENTIONS):
        registry._load()
        entries = {k: dataclasses.replace(e, modes=dict(e.modes), mode_sources=dict(e.mode_sources),
                                         mode_params=dict(e.mode_params))
                   for k, e in registry._entries.items()}
        monkeypatch.setattr(registry, "_entries", entries)
    monkeypatch.setattr(plugins, "_loaded", {})


@pytest.fixture
def plugin(tmp_path) -> Path:
    """A user's plugin file (helpers.fixtures.PLUGIN) outside the repository."""
    path = tmp_path / "elsewhere" / "my_plugin.py"  # not in the repository, not importable by name
    path.parent.mkdir()
    from helpers.fixtures import PLUGIN

    path.write_text(PLUGIN)
    return path
