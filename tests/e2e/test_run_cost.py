"""bench/run_cost.py: a run's phases cover its wall time, each wrapped phase is seen, and its JSON is strict."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "bench" / "run_cost.py"
# what every run of a comparison passes through, whatever the recipe (W&B disabled: its phases stay at about zero)
SEEN = ["config", "build", "set-up: Trainer", "set-up: callbacks, loggers, run dir",
        "set-up: Lightning (setup hooks, optimizers)", "training steps", "evaluation", "checkpoints", "CSV flush",
        "summary + Domino", "teardown"]


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_phases_add_up_to_each_run(tmp_path):
    out = tmp_path / "cost.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "1", "--wandb", "disabled", "--out", str(out),
                           "trainer.max_steps=40", "trainer.val_check_interval=20"],
                          env={**os.environ, "TMPDIR": str(tmp_path), "WANDB_MODE": "disabled"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| total |" in done.stdout and "load average" in done.stdout
    result = _strict(out.read_text())
    mode = result["modes"]["disabled"]
    runs = [mode["first_run"], *mode["warm_runs"]["each"]]
    assert len(runs) == 2
    for run in runs:
        phases = run["phases"]
        assert all(seconds >= 0 for seconds in phases.values()), phases
        assert abs(sum(phases.values()) - run["total"]) <= 0.05 * run["total"], (sum(phases.values()), run["total"])
        assert phases["other"] <= 0.05 * run["total"], phases  # what no phase claims (the run's checks before the build)
        assert all(phases[p] > 0 for p in SEEN), {p: phases[p] for p in SEEN}
        assert phases["plots (curves.png)"] == 0  # a comparison's runs draw no figure of their own
        assert phases["W&B log"] == phases["W&B finish"] == 0 and phases["W&B start"] < 0.05  # only the mode is read
        assert run["steps"] == 40
    assert mode["first_run"]["phases"]["imports"] > 0 and mode["warm_runs"]["phases"]["imports"] == 0
    comparison = mode["comparison"]
    for phase in ("planning (make_plan)", "worker start-up", "worker shutdown (idle)", "worker shutdown (after a fit)",
                  "statistics + tables", "plots (curves, learn steps, timeline)"):
        assert comparison[phase]["median"] > 0, phase
    assert result["worker_imports"]["all imports"] > 0
