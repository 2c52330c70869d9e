"""The skill-learning benchmark: an unknown or bad suite is one line (a suite run end to end: tests/e2e/test_benchmark.py)."""

from __future__ import annotations

import pytest

from skilltrain.cli import main


def test_an_unknown_suite_is_one_line(capsys):
    assert main(["benchmark", "suite=quik"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "suite: no suite 'quik' (shipped: paper, quick" in err


@pytest.mark.parametrize("suite, message", [
    ("seeds: [1, 2]\ntasks:\n  d: {recipe: domino_2task}\n", "suite.seeds: must be a number of seeds ≥ 1, got [1, 2]"),
    ("tasks:\n  d: {recipe: domino_2task, overrides: [a]}\n", "suite.tasks.d.overrides: expected a mapping {key: value}"),
    # a typo in an arm is a mistake to report, not an arm that "does not apply" and silently leaves the leaderboard
    ("arms:\n  baseline: {}\n  typo: {interventions: {skill_reweighting: {mdoe: self}}}\ntasks:\n  d: {recipe: domino_2task}\n",
     "interventions.skill_reweighting.mdoe: unknown key (did you mean interventions.skill_reweighting.mode?)"),
])
def test_a_bad_suite_is_one_line(suite, message, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text(suite)
    assert main(["benchmark", f"suite={tmp_path}/bad.yaml", f"out_dir={tmp_path}/b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
