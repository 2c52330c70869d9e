"""The skill-learning benchmark: an unknown or bad suite is one line (a suite run end to end: tests/e2e/test_benchmark.py)."""

from __future__ import annotations

import json

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


SUITE = """
arms:
  baseline: {}
  inverse_frequency: {interventions: {skill_reweighting: {mode: inverse_frequency}}}
  balanced_sampling: {interventions: {skill_reweighting: {mode: balanced_sampling}}}
seeds: 2
tasks:
  domino: {recipe: domino_2task}
  regression: {recipe: modularity_regression}
"""


def test_the_plan_leaves_out_an_arm_that_does_not_apply_and_loads_each_config_once(tmp_path, monkeypatch):
    import skilltrain.config.load
    from skilltrain.benchmark import plan_benchmark

    (tmp_path / "tiny.yaml").write_text(SUITE)
    loaded = []  # every config loaded and typed (load_config's work)
    real = skilltrain.config.load.typed
    monkeypatch.setattr(skilltrain.config.load, "typed", lambda *a, **k: loaded.append(a) or real(*a, **k))
    the_plan = plan_benchmark([f"suite={tmp_path}/tiny.yaml", f"out_dir={tmp_path}/b"])

    # balanced sampling needs a pool to draw from; modularity_regression trains on its full batch
    assert list(the_plan.skipped) == ["regression"] and list(the_plan.skipped["regression"]) == ["balanced_sampling"]
    assert "full-batch pool" in the_plan.skipped["regression"]["balanced_sampling"]
    regression = the_plan.tasks["regression"]
    assert list(regression.arms) == ["baseline", "inverse_frequency"]
    assert sorted({r.arm for r in regression.runs}) == ["baseline", "inverse_frequency"] and len(regression.runs) == 4
    assert sorted(regression.resolved["configs"]) == ["baseline", "inverse_frequency"]
    assert "balanced_sampling" not in regression.identity  # plan.json's identity: the arms that run
    assert len(the_plan.tasks["domino"].runs) == 6
    assert len(loaded) == 6  # one load per task and arm: applying and checking share it (it is the plan's cost)
    assert json.loads(regression.identity) == [  # as the plan before it wrote it, so its directories resume
        "modularity_regression", ["recipe=modularity_regression"], {
            "baseline": {"interventions": {}, "overrides": {}},
            "inverse_frequency": {"interventions": {"skill_reweighting": {"mode": "inverse_frequency"}}, "overrides": {}}},
        [1, 2]]


def test_a_baseline_that_does_not_apply_is_one_line_at_planning(tmp_path, capsys):
    from skilltrain.comparison import Request, make_plan
    from skilltrain.errors import UserError

    arms = {"baseline": {}, "balanced": {"interventions": {"skill_reweighting": {"mode": "balanced_sampling"}}}}
    with pytest.raises(UserError, match="arms.balanced: is the baseline .* does not apply to recipe modularity_regression: "
                                        ".*full-batch pool"):
        make_plan(Request("modularity_regression", arms, 1, [], {"baseline": "balanced"}, str(tmp_path / "c"),
                          skip_refused=True))
    # in a benchmark, the arm named baseline is the baseline: one that does not apply to a task is one line
    (tmp_path / "tiny.yaml").write_text(SUITE.replace("baseline: {}", "baseline: {interventions: {skill_reweighting: "
                                                                       "{mode: balanced_sampling}}}"))
    assert main(["benchmark", f"suite={tmp_path}/tiny.yaml", f"out_dir={tmp_path}/b", "compare.dry_run=true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "arms.baseline: is the baseline (compare.baseline) and does not apply to recipe " \
                                     "modularity_regression" in err, err
    # and another arm cannot be made the baseline there (the leaderboard's speedups are against the arm baseline)
    (tmp_path / "tiny.yaml").write_text(SUITE)
    assert main(["benchmark", f"suite={tmp_path}/tiny.yaml", f"out_dir={tmp_path}/b",
                 "compare.baseline=inverse_frequency", "compare.dry_run=true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compare.baseline: cannot be set in a benchmark" in err, err


def test_a_dry_run_names_every_arm_left_out_and_why(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(SUITE)
    assert main(["benchmark", f"suite={tmp_path}/tiny.yaml", f"out_dir={tmp_path}/b", "compare.dry_run=true",
                 "compare.baseline=baseline"]) == 0  # naming the baseline it has anyway is not refused
    left_out = [line for line in capsys.readouterr().err.splitlines() if "does not apply" in line]
    assert len(left_out) == 1 and left_out[0].startswith("task regression: arm balanced_sampling does not apply, "
                                                         "left out: ") and "full-batch pool" in left_out[0], left_out


def test_skipping_refused_arms_needs_the_comparison_directory_and_the_old_check_still_answers():
    from skilltrain.benchmark import applicable
    from skilltrain.comparison import Request, make_plan
    from skilltrain.errors import UserError

    with pytest.raises(UserError, match="out_dir: is required to leave out the arms that do not apply"):
        make_plan(Request("domino_2task", ["baseline"], 1, [], {}, None, skip_refused=True))
    balanced = {"interventions": {"skill_reweighting": {"mode": "balanced_sampling"}}, "overrides": {}}
    assert "full-batch pool" in applicable(["recipe=modularity_regression"], "balanced_sampling", balanced)
    assert applicable(["recipe=domino_2task"], "balanced_sampling", balanced) is None
