"""A comparison's runs pay for nothing the comparison does not use: no per-run figure (`analysis.plots`)."""

from __future__ import annotations

import pytest
from helpers import load

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
