"""A comparison's runs pay for nothing the comparison does not use: no per-run figure (`analysis.plots`)."""

from __future__ import annotations

import pytest
from helpers import ROOT, load

from skilltrain.comparison import plan
from skilltrain.errors import UserError


def _plots_of(the_plan) -> set[str]:
    return {a for run in the_plan.runs for a in run.args if a.startswith("analysis.plots=")}


def test_a_comparisons_runs_draw_no_figure_of_their_own_unless_asked():
    assert _plots_of(plan(["recipe=domino_2task", "seeds=2", "arms=[baseline,gradient_rescaling]"])) == {
        "analysis.plots=none"}
    kept = plan(["recipe=domino_2task", "seeds=2", "arms=[baseline,gradient_rescaling]", "analysis.plots=per_run"])
    assert _plots_of(kept) == {"analysis.plots=per_run"}
    assert all(load(*run.args).analysis.plots == "per_run" for run in kept.runs)  # the user's value wins


def test_an_unknown_plots_setting_is_one_line():
    with pytest.raises(UserError, match=r"analysis.plots: unknown plots setting 'per-run' \(did you mean 'per_run'"):
        load("analysis.plots=per-run")


def test_a_users_plots_setting_wins_however_it_is_given(tmp_path):
    nested = plan(["recipe=domino_2task", "seeds=1", "arms=[baseline]", "analysis={plots: per_run}"])
    assert {load(*run.args).analysis.plots for run in nested.runs} == {"per_run"}
    recipe = tmp_path / "mine.yaml"
    recipe.write_text((ROOT / "recipes" / "domino_2task.yaml").read_text() + "\nanalysis: {plots: per_run}\n")
    from_recipe = plan([f"recipe={recipe}", "seeds=1", "arms=[baseline]"])
    assert {load(*run.args).analysis.plots for run in from_recipe.runs} == {"per_run"}


def test_a_comparison_made_before_plots_existed_continues(tmp_path):
    import json

    from skilltrain.comparison import check_directory

    args = ["recipe=domino_2task", "seeds=1", "arms=[baseline]", f"out_dir={tmp_path / 'c'}"]
    the_plan = plan(args)
    record = the_plan.record()
    for config in record["configs"].values():
        del config["analysis"]["plots"]  # as plan.json was written before analysis.plots
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "plan.json").write_text(json.dumps(record))
    check_directory(plan(args))  # no "holds runs of another config"


def test_a_comparison_made_before_discover_and_learn_step_checkpoints_continues(tmp_path):
    import json

    from skilltrain.comparison import check_directory

    args = ["recipe=domino_2task", "seeds=1", "arms=[baseline]", f"out_dir={tmp_path / 'c'}"]
    record = plan(args).record()
    for config in record["configs"].values():  # as plan.json was written before discover.* and at_learn_steps
        del config["discover"]
        del config["checkpoint"]["at_learn_steps"]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "plan.json").write_text(json.dumps(record))
    check_directory(plan(args))  # no "holds runs of another config"
    for config in record["configs"].values():  # a saved value other than the old default is still a change
        config["checkpoint"]["at_learn_steps"] = True
    (tmp_path / "c" / "plan.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match="checkpoint.at_learn_steps true → false"):
        check_directory(plan(args))
