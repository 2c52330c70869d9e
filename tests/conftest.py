"""Shared fixtures: W&B off, quiet Lightning, small configs, and an in-process fit."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test runs in its own directory (a default run directory lands in tmp_path/runs)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("SKILLTRAIN_RUN_DIR", raising=False)


def load(*args: str):
    from skilltrain.config import load_config

    return load_config(list(args))


def fit_quietly(*args: str, out_dir: Path) -> dict:
    """Run `fit` in this process with the given overrides; return its summary.json."""
    from skilltrain.run import fit

    cfg = load(*args, f"out_dir={out_dir}", "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled")
    with contextlib.redirect_stdout(io.StringIO()):
        fit(cfg)
    return json.loads((out_dir / "summary.json").read_text())


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m skilltrain …` in a subprocess (an `env` value of None removes that variable)."""
    full_env = {k: v for k, v in {**os.environ, "WANDB_MODE": "disabled", **(env or {})}.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "skilltrain", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
