"""Every JSON file a run, a comparison, a sweep and a benchmark write is strict JSON."""

from __future__ import annotations

import json

import pytest


def strict(text: str):
    """json.loads that refuses NaN and ±Infinity (what other languages' parsers do)."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_every_json_file_a_run_comparison_sweep_and_benchmark_writes_is_strict(tmp_path):
    """A fit, a sweep (2 points, 1 seed) and a benchmark (1 task, 2 arms, 1 seed, a baseline that diverges: the
    case that wrote NaN) on tiny budgets; every *.json they leave parses with a parser that refuses NaN/Infinity."""
    from helpers import fit_quietly, run_cli

    fit_quietly("recipe=compositional", "trainer.max_steps=20", out_dir=tmp_path / "fit")
    tiny = ["trainer.max_steps=20", "trainer.val_check_interval=10", "compare.workers=1"]
    swept = run_cli("sweep", "recipe=compositional", "sweep.optim.lr=[0.001,0.01]", "seeds=1", *tiny,
                    f"out_dir={tmp_path}/sweep")
    assert swept.returncode == 0, swept.stderr[-2000:]
    (tmp_path / "suite.yaml").write_text(
        "arms:\n  baseline: {overrides: {optim.lr: 1.0e+6}}\n  inverse_frequency: {interventions: {skill_reweighting: "
        "{mode: inverse_frequency}}}\nseeds: 1\ntasks:\n  c: {recipe: compositional, overrides: {trainer.max_steps: 20}}\n")
    bench = run_cli("benchmark", f"suite={tmp_path}/suite.yaml", "compare.workers=1", f"out_dir={tmp_path}/bench")
    assert bench.returncode == 0, bench.stderr[-2000:]
    files = sorted(tmp_path.rglob("*.json"))
    names = {f.name for f in files}
    assert {"summary.json", "comparison.json", "sweep.json", "leaderboard.json"} <= names, names
    for path in files:
        strict(path.read_text())
