"""Tests generated from the registry: every registered intervention mode — the example plugin's included — trains and
logs its `intervention/<name>/…` keys, resumes bit for bit, and holds the same state on two DDP processes (that each
mode has test settings and a method card: tests/unit/interventions/test_every_intervention.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import HELPERS, IDS, SETTINGS, SHORT_RUN, fit_quietly, free_port, load, same_run

BASE = SHORT_RUN


@pytest.mark.parametrize("setting", IDS)
def test_it_trains_and_logs_its_keys(setting, tmp_path, clean_registries):
    name, mode, args = SETTINGS[setting]
    summary = fit_quietly(*BASE, *args, "trainer.max_steps=30", out_dir=tmp_path / "run")
    assert summary["status"] == "completed" and summary["interventions"] == [name]
    header = (tmp_path / "run/metrics.csv").read_text().splitlines()[0].split(",")
    assert any(key.startswith(f"intervention/{name}/") for key in header), header


@pytest.mark.parametrize("setting", IDS)
def test_it_resumes_bit_exactly(setting, tmp_path, clean_registries):
    from skilltrain.run import fit

    args = (*BASE, *SETTINGS[setting][2])
    fit_quietly(*args, "trainer.max_steps=60", out_dir=tmp_path / "whole")
    fit_quietly(*args, "trainer.max_steps=30", out_dir=tmp_path / "parts")  # stops at 30 (an evaluation step)
    fit(load("ckpt_path=last", f"out_dir={tmp_path}/parts", "trainer.max_steps=60", "trainer.enable_progress_bar=false"),
        show=False)
    same_run(tmp_path / "whole", tmp_path / "parts")


PROBE = HELPERS / "ddp_probe.py"


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.parametrize("setting", IDS)
def test_two_ddp_processes_hold_identical_state(setting, tmp_path):
    """Every rank draws its own batches (skills missing from one rank's batch), yet all-reduced statistics make
    every rank's intervention state the same, step by step."""
    import os

    args = (*BASE, *SETTINGS[setting][2], "trainer.max_steps=20", "trainer.accelerator=cpu", "trainer.strategy=ddp",
            "trainer.devices=2", "trainer.enable_progress_bar=false", "data.batch_size=32", f"out_dir={tmp_path}/run")
    env = {**os.environ, "MASTER_PORT": str(free_port()), "WANDB_MODE": "disabled"}
    result = subprocess.run([sys.executable, str(PROBE), str(tmp_path / "probe"), *args], capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)]
    name = SETTINGS[setting][0]
    rows = [[row[f"{name}.state"] for row in rank["rows"]] for rank in ranks]
    assert len(rows[0]) == len(rows[1]) == 20 and rows[0] == rows[1]
    assert ranks[0]["weights"] == ranks[1]["weights"]
