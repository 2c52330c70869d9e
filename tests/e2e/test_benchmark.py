"""The skill-learning benchmark end to end: a suite's tasks × arms through compare, and a leaderboard whose numbers
can be recomputed from the runs themselves."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from helpers import run_cli

SUITE = """
arms:
  baseline: {}
  inverse_frequency: {interventions: {skill_reweighting: {mode: inverse_frequency}}}
  balanced_sampling: {interventions: {skill_reweighting: {mode: balanced_sampling}}}
seeds: 2
tasks:
  domino: {recipe: domino_2task, overrides: {data.n_samples: 2000, trainer.max_steps: 600}}
  regression: {recipe: modularity_regression, overrides: {trainer.max_steps: 600}}
"""


@pytest.mark.slow
def test_a_suite_gives_a_leaderboard_that_the_runs_reproduce(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SUITE)
    args = ["benchmark", f"suite={tmp_path}/tiny.yaml", "compare.workers=2", f"out_dir={tmp_path}/b"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"benchmark_dir: {tmp_path}/b"
    board = json.loads((tmp_path / "b/leaderboard.json").read_text())
    assert set(board["arms"]) == {"inverse_frequency", "balanced_sampling"}
    skipped = board["tasks"]["regression"]["balanced_sampling"]
    assert not skipped["applies"] and "full-batch pool" in skipped["why"]  # left out, with the reason
    assert board["overall"]["balanced_sampling"]["tasks"] == 1 and board["overall"]["inverse_frequency"]["tasks"] == 2

    def steps(task, arm, seed):  # steps to learn every skill, from the run itself
        summary = json.loads((tmp_path / "b" / task / arm / f"seed{seed}" / "summary.json").read_text())
        return summary["all_learned_step"] or summary["max_steps"]

    # per task the median paired speedup (2 seeds: the mean of the two), as the per-task table shows it
    medians = [statistics.median(steps(t, "baseline", s) / steps(t, "inverse_frequency", s) for s in (1, 2))
               for t in ("domino", "regression")]
    overall = board["overall"]["inverse_frequency"]
    assert [board["tasks"][t]["inverse_frequency"]["speedup"]["median"] for t in ("domino", "regression")] == \
        pytest.approx(medians)
    assert overall["geomean_speedup"] == pytest.approx(math.exp(sum(map(math.log, medians)) / 2))
    assert overall["ci"] is None and "too few seeds" in overall["ci_note"]  # 2 seeds a task: no interval has 85%
    assert "| inverse_frequency | 2 |" in (tmp_path / "b/leaderboard.md").read_text()
    assert (tmp_path / "b/leaderboard.png").stat().st_size > 10_000
    again = run_cli(*args)
    assert again.returncode == 0 and again.stderr.count("runs finished earlier (kept), 0 to run") == 2
    assert json.loads((tmp_path / "b/leaderboard.json").read_text())["overall"] == board["overall"]
