"""Comparison plots: per-skill learning curves per arm, learn-step distributions, a skill timeline, and each arm's trade-off.

Inputs are plain data read from the runs (curves from each run's metrics.csv, summary.json dicts), so the plots can
be redrawn from a comparison directory alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from skilltrain.files import save_figure


def figure(rows: int, cols: int, figsize: tuple[float, float], **kwargs):
    """(figure, axes[rows][cols]) drawn on a figure's own Agg canvas: no pyplot and no global backend change in the
    process that imports skilltrain (a user's notebook keeps its backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False, **kwargs)


def colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def skill_colors(k: int) -> list:
    """One colour per skill of k: tab10's distinct colours up to 10 skills, a viridis gradient beyond."""
    if k <= 10:
        return [colormap("tab10")(i) for i in range(k)]
    return [colormap("viridis")(i / max(1, k - 1)) for i in range(k)]


def read_curves(run_dir: Path, skills: Sequence[str], metric: str, split: str) -> tuple[list[int], list[list[float]]]:
    """(steps, one curve per skill) of the learn metric from a run's metrics."""
    from skilltrain.rundir import RunDir

    suffix = metric if split == "train" else f"val_{metric}"
    marker = "train/loss" if split == "train" else "val/loss"
    steps, curves = [], [[] for _ in skills]
    for row in RunDir(run_dir).read_metrics():
        if not row.get(marker):
            continue
        steps.append(int(row["step"]))
        for i, skill in enumerate(skills):
            value = row.get(f"skill/{skill}/{suffix}")
            curves[i].append(float(value) if value else math.nan)
    return steps, curves


def curves_by_arm(path: Path, curves: Mapping[str, list[tuple[list[int], list[list[float]]]]], skills: Sequence[str],
                  metric: str, threshold: float) -> None:
    """One panel per skill: per arm, the median curve across seeds and the band between its quartiles. A run that
    ended early (every skill learned: stop.when_all_learned) holds its last value to the longest run's end."""
    cols = min(4, len(skills))
    rows = math.ceil(len(skills) / cols)
    fig, axes = figure(rows, cols, (4 * cols, 3 * rows))
    colors = colormap("tab10")
    for i, skill in enumerate(skills):
        ax = axes[i // cols][i % cols]
        for j, (arm, runs) in enumerate(curves.items()):
            runs = [(s, c) for s, c in runs if s]  # a run with no evaluation within its budget has no curve to draw
            if not runs:
                continue
            steps = max((s for s, _ in runs), key=len)
            values = np.array([c[i] + c[i][-1:] * (len(steps) - len(c[i])) for _, c in runs], dtype=float)
            with np.errstate(all="ignore"):
                lo, mid, hi = np.nanpercentile(values, [25, 50, 75], axis=0)
            ax.plot(steps, mid, color=colors(j % 10), lw=1.5, label=f"{arm} (n={len(runs)})")
            ax.fill_between(steps, lo, hi, color=colors(j % 10), alpha=0.2, lw=0)
        ax.axhline(threshold, color="grey", lw=0.8, ls=":")
        if metric == "loss":
            ax.set_yscale("log")
        ax.set_title(skill, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
    for k in range(len(skills), rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("per-skill learning curves: median across seeds, band = quartiles (a run that ended early holds its "
                 "last value)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def learn_step_distributions(path: Path, result: Mapping) -> None:
    """Per skill, every seed's learn step per arm, each seed's points joined across the arms (seeds are paired: a line
    that falls is a seed the arm sped up); never-learned runs drawn at the budget as ×, the median as a bar."""
    skills, arms = list(result["skills"]), list(result["arms"])
    seeds_by_arm = result.get("seeds") or {}
    seeds = sorted({seed for arm in arms for seed in seeds_by_arm.get(arm, [])})
    fig, axes = figure(1, 1, (max(6, 1.2 * len(skills) * len(arms)), 4))
    ax = axes[0][0]
    colors = colormap("tab10")
    width = 0.8 / len(arms)
    offsets = dict(zip(seeds, np.linspace(-width / 4, width / 4, max(len(seeds), 1))))
    for i, skill in enumerate(skills):
        placed: dict[object, list[tuple[float, float]]] = {}  # seed → its points, arm by arm
        for j, arm in enumerate(arms):
            x = i + (j - (len(arms) - 1) / 2) * width
            points = result["learn_steps"][skill][arm]
            arm_seeds = seeds_by_arm.get(arm) or list(range(len(points)))  # (older results: no seeds recorded)
            for seed, (t, censored) in zip(arm_seeds, points):
                xs = x + offsets.get(seed, 0.0)
                ax.scatter([xs], [t], color=colors(j % 10), marker="x" if censored else "o", s=30 if censored else 18,
                           label=arm if i == 0 and seed == arm_seeds[0] else None, zorder=3)
                placed.setdefault(seed, []).append((xs, t))
            if any(not c for _, c in points):
                ax.hlines(np.median([t for t, _ in points]), x - width / 2.5, x + width / 2.5, color=colors(j % 10),
                          zorder=4)
        for line in placed.values():
            if len(line) > 1:
                ax.plot(*zip(*line), color="0.6", lw=0.7, zorder=2)
    ax.set_xticks(range(len(skills)), skills, rotation=30 if len(skills) > 6 else 0, fontsize=8)
    ax.set_ylabel("learn step")
    ax.set_title("learn steps per seed, each seed's arms joined (bar: median; ×: not learned, drawn at the budget)",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def skill_timeline(path: Path, windows: Mapping[str, Mapping[str, tuple[float | None, float | None]]],
                   skills: Sequence[str]) -> None:
    """Per arm, per skill: a bar from the median onset to the median completion (the Domino picture)."""
    arms = list(windows)
    fig, axes = figure(len(arms), 1, (8, 0.45 * len(skills) * len(arms) + 1), sharex=True)
    colors = skill_colors(len(skills))
    for a, arm in enumerate(arms):
        ax = axes[a][0]
        for i, skill in enumerate(skills):
            onset, done = windows[arm].get(skill, (None, None))
            color = colors[i]
            if onset is not None and done is not None:
                ax.barh(i, max(done - onset, 1), left=onset, color=color, height=0.6)
            elif onset is not None:
                ax.plot([onset], [i], marker=">", color=color)
        ax.set_yticks(range(len(skills)), skills, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(arm, fontsize=9, loc="left")
    axes[-1][0].set_xlabel("step")
    axes[-1][0].set_xlim(left=0)
    fig.suptitle("skill timeline: median onset → median completion across seeds", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def tradeoff(path: Path, trades: Mapping[str, Mapping], baseline: str) -> None:
    """Per arm (`skilltrain.analysis.stats.tradeoffs`): its speedup until every skill is learned (bar: the interval)
    against the slowdown of its most-slowed skill; the Pareto front joined by a line."""
    from matplotlib.ticker import FuncFormatter

    fig, axes = figure(1, 1, (6.5, 4.5))
    ax = axes[0][0]
    labels: dict[tuple[float, float], list[str]] = {}  # arms at the same point share one label
    for arm, t in trades.items():
        x, y = t["all"]["median"], t["slowdown"]
        if t["all"]["ci"]:
            ax.plot(t["all"]["ci"], [y, y], color="grey", lw=1.5)
        ax.plot([x], [y], "o", color="black" if t["pareto"] else "grey")
        censored = t["all"]["censored"] or t["slowdown_censored"]
        labels.setdefault((round(x, 3), round(y, 3)), []).append(arm + ("†" if censored else ""))
    for (x, y), arms in labels.items():
        ax.annotate(", ".join(arms), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = sorted((t["all"]["median"], t["slowdown"]) for t in trades.values() if t["pareto"])
    if len(front) > 1:
        ax.plot(*zip(*front), color="black", lw=0.8, ls="--")
    ax.axvline(1, color="grey", lw=0.8, ls=":")
    ax.axhline(1, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.set_xlabel(f"speedup until every skill is learned (× {baseline}; bar: CI)")
    ax.set_ylabel(f"slowdown of the most-slowed skill (× {baseline})")
    ax.set_title("trade-off per arm (black, dashed: the Pareto front; †: censored runs, the true value further from 1)",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
