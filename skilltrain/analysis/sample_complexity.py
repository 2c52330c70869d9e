"""Sample complexity: the training-set size P* at which a network generalises, read off a sweep over data.n_samples.

The held-out error of a run is the mean over skills of 1 − the skill's held-out accuracy at the last evaluation (each
skill has its own held-out set; where skills are classes this is the balanced error, whose chance level is
1 − 1/n_classes whatever the class frequencies). P* is where the median error over seeds falls to a threshold and
stays there at every larger P of the grid, interpolated linearly in log P between the two grid points around the
crossing. The threshold is a tenth of chance's error, (1 − 1/n_classes) / 10 (0.075 for 4 classes). The interval
is for the median over seeds of each seed's own P* (its error curve's crossing; one beyond the grid is a bound), a
distribution-free order-statistic interval (`skilltrain.analysis.stats.median_interval`) with the level it achieves
(nominal 95%; none with fewer than 4 seeds: "too few seeds for an interval"). A crossing outside the grid has no
value, only a bound, and says so: widen the grid. Runs left out (diverged, failed) are listed per P in the note.

For the Random Hierarchy Model (Cagnetta, Petrini, Wyart et al.) deep networks need P* ∝ n_c·m^L samples, far fewer
than the n_c·m^((s^L − 1)/(s − 1)) distinct inputs; `examples/rhm_sample_complexity.py` measures it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from skilltrain.files import save_figure

BOOTSTRAP = 2000  # unused: intervals are order statistics now (skilltrain.analysis.stats); kept for old imports
CHANCE_FRACTION = 0.1  # the threshold, as a fraction of chance's error


def threshold(n_classes: int) -> float:
    """A tenth of the error of guessing among n_classes equally frequent labels."""
    return CHANCE_FRACTION * (1 - 1 / n_classes)


def crossing(sizes: np.ndarray, errors: np.ndarray, limit: float) -> tuple[float | None, str]:
    """(P*, where): P* log-interpolated where `errors` [points] fall to `limit` and stay there at every larger size;
    where = "grid" (inside the grid), "below" (already there at the smallest size: P* ≤ it; value None) or
    "above" (never there: P* > the largest size; value None)."""
    ok = np.isfinite(errors)
    order = np.argsort(sizes[ok])
    p, e = sizes[ok][order], errors[ok][order]
    if len(p) == 0 or e[-1] > limit:
        return None, "above"
    first = len(e) - int(np.argmax((e > limit)[::-1])) if (e > limit).any() else 0  # first index of the good tail
    if first == 0:
        return None, "below"
    lo, hi = first - 1, first
    t = (e[lo] - limit) / (e[lo] - e[hi])
    return float(math.exp(math.log(p[lo]) + t * (math.log(p[hi]) - math.log(p[lo])))), "grid"


def median_over_seeds(errors: np.ndarray) -> np.ndarray:
    """errors [points, seeds] → the median at each point over the runs it has (NaN where it has none)."""
    with warnings.catch_warnings():  # a grid point without a run has no median: NaN, said in the notes
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(errors, axis=1)


def sample_complexity(sizes: list[float], errors: np.ndarray, limit: float | None) -> dict:
    """errors [points, seeds] (NaN: a run left out) → {"P_star", "ci95", "ci_level", "ci_method", "threshold", "where",
    "median_error", "runs", "note"}. ci95's ends are None where they lie beyond the grid (below its smallest P, above
    its largest); ci_level is the coverage it achieves. `limit` is None only when no run finished (no task to take a
    class count from)."""
    from skilltrain.analysis.stats import median_interval

    sizes_ = np.asarray(sizes, dtype=float)
    runs = np.isfinite(errors).sum(axis=1)
    median = median_over_seeds(errors)
    out = {"P_star": None, "ci95": None, "ci_level": None, "ci_method": None, "threshold": limit, "where": "no data",
           "median_error": [None if not np.isfinite(v) else float(v) for v in median], "runs": runs.tolist(),
           "note": "no finished run to measure"}
    if not runs.any():
        return out
    value, where = crossing(sizes_, median, limit)
    seeds = errors.shape[1]
    per_seed = []  # each seed's own P*: below the grid 0, beyond it inf (bounds, which order statistics handle)
    for j in range(seeds):
        if np.isfinite(errors[:, j]).any():
            v, w = crossing(sizes_, errors[:, j], limit)
            per_seed.append(v if w == "grid" else (0.0 if w == "below" else math.inf))
    interval = median_interval(per_seed)
    if value is not None:
        out["ci_method"] = "the median of per-seed P*: " + interval["method"]
        if interval["ci"] is not None:
            lo, hi = interval["ci"]
            out["ci95"] = [lo if lo > 0 else None, hi if math.isfinite(hi) else None]
            out["ci_level"] = interval["level"]
    notes = {"grid": [],
             "below": [f"the median error is ≤ {limit:.3g} already at the smallest P ({sizes_.min():g}): P* ≤ that; "
                       "extend the grid downwards"],
             "above": [f"the median error never stays ≤ {limit:.3g} within the grid: P* > {sizes_.max():g}; "
                       "extend the grid upwards (or train longer)"]}[where]
    short = [f"{p:g} ({n} of {seeds})" for p, n in zip(sizes_, runs) if n < seeds]
    if short:
        notes.append(f"runs at P = {', '.join(short)}: the others diverged, failed or are missing and are left out")
    if value is not None and interval["note"]:
        notes.append(f"interval: {interval['note']}")
    return {**out, "P_star": value, "where": where, "note": "; ".join(notes) or None}


def plot(path, groups: list[dict]) -> None:
    """Held-out error against P, one curve per group (the sweep's other axes), with the threshold and each P*."""
    from matplotlib import ticker

    from skilltrain.analysis.plots import colormap, figure

    fig, axes = figure(1, 1, (6.4, 4.4))
    ax = axes[0][0]
    colors = colormap("viridis")
    for i, group in enumerate(groups):
        color = colors(i / max(1, len(groups) - 1)) if len(groups) > 1 else "black"
        sizes, errors = np.asarray(group["sizes"], dtype=float), np.asarray(group["errors"], dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, mid, hi = np.nanpercentile(errors, [25, 50, 75], axis=1)  # the median: as stats.median
        ok = np.isfinite(mid)
        sc = group["sample_complexity"]
        star = f"P* = {sc['P_star']:.3g}" if sc["P_star"] is not None else {
            "below": "P* ≤ grid", "above": "P* > grid"}.get(sc["where"], "no data")
        ax.errorbar(sizes[ok], mid[ok], yerr=[mid[ok] - lo[ok], hi[ok] - mid[ok]], fmt="o-", color=color, ms=4,
                    capsize=2, lw=1, label=f"{group['label']}: {star}" if group["label"] else star)
        if sc["P_star"] is not None:
            ax.axvline(sc["P_star"], color=color, ls=":", lw=1)
    for limit in sorted({g["sample_complexity"]["threshold"] for g in groups}):
        ax.axhline(limit, color="grey", ls="--", lw=1, label=f"threshold {limit:.3g} (chance / 10)")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))  # 1000, not 10^3
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("training samples P")
    ax.set_ylabel("held-out error (1 − accuracy)")
    ax.set_title("held-out error vs P: medians over seeds (bars: quartiles)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
