"""A theory run's curves.png, read off the figure before it is saved: it names the optimizer, and a curve that
oscillates step to step once learned (SignGD) is drawn as its running mean over faint steps, not as a band."""

from __future__ import annotations

import math

import torch

from skilltrain.theory import run as theory_run


def _figure(monkeypatch, losses, optimizer="signgd, lr 0.0003"):
    drawn = []
    monkeypatch.setattr(theory_run, "save_figure", lambda fig, path: drawn.append(fig))
    steps = list(range(len(losses)))
    curves = theory_run.Curves(steps, torch.tensor(losses).unsqueeze(1), 1 - torch.tensor(losses).unsqueeze(1),
                               [40], len(losses) - 1)
    summary = {"recipe": "two_task", "theory": {"model": "geometry"}, "seed": 1, "metric": {"threshold": 0.9}}
    theory_run.plot_curves("curves.png", ["rare"], curves, summary, optimizer)
    return drawn[0]


def test_a_curve_that_oscillates_once_learned_is_drawn_as_its_running_mean(monkeypatch):
    smooth = [math.exp(-t / 10) for t in range(40)]
    losses = smooth + [1e-6 if t % 2 else 1e-8 for t in range(160)]  # SignGD: jumps across the minimum
    fig = _figure(monkeypatch, losses)
    assert "signgd, lr 0.0003" in fig._suptitle.get_text() and "running mean" in fig._suptitle.get_text()
    loss_axis = fig.axes[0]
    faint = [line for line in loss_axis.get_lines() if (line.get_alpha() or 1) < 1]
    drawn = [line for line in loss_axis.get_lines() if (line.get_alpha() or 1) == 1 and len(line.get_ydata()) > 2]
    assert len(faint) == 1 and len(drawn) == 1
    after = [y for x, y in zip(drawn[0].get_xdata(), drawn[0].get_ydata()) if 60 <= x <= 180]
    assert max(after) / min(after) < 1.01  # the geometric mean of 1e-6 and 1e-8: 1e-7, flat


def test_a_smooth_curve_is_drawn_as_it_is(monkeypatch):
    fig = _figure(monkeypatch, [math.exp(-t / 50) for t in range(200)], optimizer=None)
    assert "running mean" not in fig._suptitle.get_text()
    assert all((line.get_alpha() or 1) == 1 for line in fig.axes[0].get_lines())


def test_the_fit_overlay_keeps_skills_of_one_p_apart_and_says_which_learned_it_uses(monkeypatch):
    """Two skills of one p have one fitted curve: each skill's curves carry its own markers, so neither hides the
    other; the title says that 'learned' means u ≤ 0.1 here."""
    import numpy as np

    from skilltrain.theory import fit

    drawn = []
    monkeypatch.setattr(fit, "save_figure", lambda fig, path: drawn.append(fig))
    steps = list(range(1, 101))
    u = np.exp(-np.outer(steps, [0.05, 0.05]) / 2)
    m = fit.Measured(["x1x2", "x3x4"], [0.5, 0.5], "ce", [], 1.0, steps, u, 1, {"x1x2": 40, "x3x4": 41})
    parameter = {"value": 1.0, "interval": [0.5, 2.0], "determined": True}
    fit._plot_fit("theory_fit.png", m, u.copy(), {"r2": {"x1x2": 0.99, "x3x4": 0.98}, "eta": parameter, "n0": parameter})
    fig = drawn[0]
    assert "learned here means u ≤ 0.1" in fig._suptitle.get_text()
    curves = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) == len(steps)]
    by_skill = {}
    for line in curves:
        by_skill.setdefault(line.get_color() if isinstance(line.get_color(), str) else tuple(line.get_color()),
                            set()).add((line.get_marker(), str(line.get_markevery())))
    assert len(by_skill) == 2
    first, second = by_skill.values()
    assert first.isdisjoint(second)  # other markers, at other points
