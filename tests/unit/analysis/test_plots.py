"""What the plots draw, read off the matplotlib figure before it is saved (a newcomer must read them right)."""

from __future__ import annotations

import pytest

from skilltrain.analysis import plots


@pytest.fixture
def drawn(monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    return figures


def test_learn_steps_join_each_seeds_points_across_the_arms(drawn, tmp_path):
    """Seeds are paired: each seed's learn step under the baseline is joined to its learn step under the arm, so a
    falling line reads as a seed the arm sped up (a seed the arm does not have is not joined)."""
    result = {"skills": {"rare": {}}, "arms": ["baseline", "reweighted"],
              "seeds": {"baseline": [1, 2, 3], "reweighted": [3, 1]},
              "learn_steps": {"rare": {"baseline": [[400, False], [500, False], [1000, True]],
                                       "reweighted": [[300, False], [200, False]]}}}
    plots.learn_step_distributions(tmp_path / "learn_steps.png", result)
    ax = drawn[0].axes[0]
    joined = sorted(tuple(line.get_ydata()) for line in ax.get_lines() if len(line.get_ydata()) == 2)
    assert joined == [(400, 200), (1000, 300)]  # seed 1: 400 → 200, seed 3: 1000 (censored) → 300; seed 2 alone
