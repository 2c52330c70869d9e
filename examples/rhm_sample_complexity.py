"""How many samples make the Random Hierarchy Model learnable? P* against the prediction n_c·m^L.

    python examples/rhm_sample_complexity.py [out_dir=runs/rhm_sample_complexity] [seeds=3] [compare.workers=2]
        [key=value …]

Cagnetta et al. (the RHM: Phys. Rev. X 14, 031001 (2024), arXiv 2307.02129; this project's exp. 6, not an
experiment of arXiv 2501.12391) find that a deep network whose layers mirror
the hierarchy learns the task from P* ∝ n_c·m^L samples, polynomial in the input size, where the task has
n_c·m^((s^L − 1)/(s − 1)) distinct inputs. This script runs recipe `rhm_cnn` in two sweeps over the training-set
size P, one per depth (v = 8, n_c = 4, s = 2; each grid stays within the distinct inputs of its smallest m):

    L = 3, m ∈ {3, 4, 5, 6}: P ∈ {128, …, 6144}        L = 4, m ∈ {2, 3}: P ∈ {64, …, 4096}

reads each sweep's sample complexity (P* where the median held-out error falls to a tenth of chance's, with its
interval over seeds), and fits P* = C·(n_c·m^L)^b in log-log; b's interval is the distribution-free interval of the
median over seeds of each seed's own b (skilltrain.analysis.stats.median_interval: the level it achieves is stated,
and with fewer than 4 seeds there is none).
The theory says b = 1. Writes rhm_sample_complexity.json and .png in out_dir. Other key=value arguments go to both
sweeps (e.g. trainer.max_steps=2000); a rerun resumes, keeping finished runs. Takes ~20 min on 2 CPU cores.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from skilltrain.analysis.sample_complexity import crossing
from skilltrain.analysis.stats import median, median_interval
from skilltrain.cli import main as skilltrain
from skilltrain.files import write_json

FAMILIES = [  # (L, the m axis, the P axis)
    (3, [3, 4, 5, 6], [128, 256, 512, 1024, 2048, 4096, 6144]),
    (4, [2, 3], [64, 128, 256, 512, 1024, 2048, 4096]),
]


def measure(out_dir: Path, extra: list[str]) -> list[dict]:
    """Run (or resume) both sweeps; one row per (L, m): its P*, interval, per-seed errors and the prediction."""
    rows = []
    for depth, ms, sizes in FAMILIES:
        directory = out_dir / f"L{depth}"
        m_axis = f"sweep.data.m={ms}".replace(" ", "") if len(ms) > 1 else f"data.m={ms[0]}"  # an axis needs ≥ 2
        code = skilltrain(["sweep", "recipe=rhm_cnn", f"out_dir={directory}", f"data.L={depth}", m_axis,
                           f"sweep.data.n_samples={sizes}".replace(" ", ""), *extra])
        if code:  # bad input (one line already printed) or a grid point without a finished run
            raise SystemExit(code)
        result = json.loads((directory / "sweep.json").read_text())
        if "sample_complexity" not in result:  # e.g. no run evaluated within its budget
            print(f"error: {directory}: no sample complexity was measured ({'; '.join(result['notes'])})", file=sys.stderr)
            raise SystemExit(2)
        some_run = next(directory.glob("*/seed*/config.yaml"))
        data = OmegaConf.load(some_run).data
        for entry in result["sample_complexity"]:
            m = entry.get("data.m", ms[0])
            rows.append({"L": depth, "m": m, "n_c": data.n_c, "v": data.v, "s": data.s, "prediction": data.n_c * m**depth,
                         "distinct_inputs": data.n_c * m ** ((data.s**depth - 1) // (data.s - 1)), **entry})
    return rows


def fit_exponent(rows: list[dict]) -> dict:
    """log P* = log C + b·log(n_c m^L) over the rows with a P* inside their grid. b's interval: each seed's own b
    (its P* in every row, from its own error curve, fitted alike) and the order-statistic interval of their median;
    a seed whose P* leaves some row's grid has no b over the same rows, and how many did is reported
    (`seeds_outside_grid`): many mean a wider grid."""
    inside = [r for r in rows if r["P_star"] is not None]
    if len(inside) < 2:
        return {"b": None, "ci95": None, "C": None, "rows_fitted": len(inside)}
    x = np.log([r["prediction"] for r in inside])
    b, log_c = np.polyfit(x, np.log([r["P_star"] for r in inside]), 1)
    errors = [np.array([[np.nan if e is None else e for e in seeds] for seeds in r["errors"]], dtype=float)
              for r in inside]
    slopes, outside = [], 0
    for j in range(min(e.shape[1] for e in errors)):
        own = [crossing(np.array(r["P"], dtype=float), e[:, j], r["threshold"])[0] for r, e in zip(inside, errors)]
        if any(v is None for v in own):
            outside += 1
            continue
        slopes.append(float(np.polyfit(x, np.log(own), 1)[0]))
    interval = median_interval(slopes)
    return {"b": float(b), "ci95": interval["ci"], "ci_level": interval["level"], "ci_note": interval["note"],
            "C": float(math.exp(log_c)), "rows_fitted": len(inside), "seeds_outside_grid": outside,
            "ratio_median": median([r["P_star"] / r["prediction"] for r in inside])}


def plot(path: Path, rows: list[dict], fit: dict) -> None:
    """Left: P* against n_c·m^L with the fit and the theory's slope 1. Right: the held-out error against P/(n_c·m^L),
    which collapses onto one curve where the theory holds."""
    from matplotlib import ticker

    from skilltrain.analysis.plots import colormap, figure

    fig, axes = figure(1, 2, (12, 4.6))
    ax, collapse = axes[0][0], axes[0][1]
    colors = colormap("viridis")
    for depth, marker in ((3, "o"), (4, "s")):
        mine = [r for r in rows if r["L"] == depth and r["P_star"] is not None]
        if not mine:
            continue
        x = np.array([r["prediction"] for r in mine], dtype=float)
        y = np.array([r["P_star"] for r in mine])
        # an interval end beyond the grid is drawn to the grid's end, with an arrow-like open cap
        lo = np.array([(r["ci95"][0] or min(r["P"])) if r["ci95"] else v for r, v in zip(mine, y)])
        hi = np.array([(r["ci95"][1] or max(r["P"])) if r["ci95"] else v for r, v in zip(mine, y)])
        open_hi = [bool(r["ci95"]) and r["ci95"][1] is None for r in mine]
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt=marker, ms=6, capsize=3, label=f"L = {depth}", uplims=open_hi)
        for r in mine:
            ax.annotate(f"m={r['m']}", (r["prediction"], r["P_star"]), textcoords="offset points", xytext=(5, -10),
                        fontsize=7)
    span = np.array([min(r["prediction"] for r in rows) / 1.5, max(r["prediction"] for r in rows) * 1.5])
    if fit["b"] is not None:
        ci = f" [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]" if fit["ci95"] else ""
        ax.plot(span, fit["C"] * span ** fit["b"], "k--", lw=1, label=f"fit: P* ∝ (n_c m^L)^{fit['b']:.2f}{ci}")
        ax.plot(span, fit["ratio_median"] * span, color="grey", ls=":", lw=1,
                label=f"theory: P* = {fit['ratio_median']:.1f}·n_c m^L (slope 1)")
    for i, r in enumerate(rows):
        errors = np.array([np.nan if e is None else e for e in r["median_error"]], dtype=float)
        collapse.plot(np.array(r["P"]) / r["prediction"], errors, "o-" if r["L"] == 3 else "s--", ms=3, lw=1,
                      color=colors(i / max(1, len(rows) - 1)), label=f"L={r['L']}, m={r['m']}")
    collapse.axhline(rows[0]["threshold"], color="grey", ls="--", lw=1, label="threshold (chance / 10)")
    collapse.set_xlabel("P / (n_c · m^L)")
    collapse.set_ylabel("held-out error (median over seeds)")
    collapse.set_title("held-out error against P in units of the prediction", fontsize=9)
    collapse.legend(fontsize=7)
    for a in (ax, collapse):
        a.set_xscale("log")
        a.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_yscale("log")
    ax.set_xlabel("n_c · m^L")
    ax.set_ylabel("sample complexity P* (held-out error ≤ chance / 10)")
    shape = ", ".join(f"{k}={'/'.join(str(v) for v in sorted({r[k] for r in rows}))}" for k in ("v", "n_c", "s"))
    ax.set_title(f"RHM ({shape}), deep CNN: P* vs n_c·m^L; bars: CI over seeds (order statistics; none < 4 seeds)",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str]) -> int:
    given = {a.split("=", 1)[0]: a.split("=", 1)[-1] for a in argv}
    out_dir = Path(given.get("out_dir", "runs/rhm_sample_complexity"))
    extra = [a for a in argv if not a.startswith("out_dir=")] + ([] if "seeds" in given else ["seeds=3"])
    rows = measure(out_dir, extra)
    fit = fit_exponent(rows)
    write_json(out_dir / "rhm_sample_complexity.json", {"rows": rows, "fit": fit}, indent=1)
    plot(out_dir / "rhm_sample_complexity.png", rows, fit)
    print("\n  L  m  n_c·m^L   P*      CI (level)                P*/(n_c·m^L)")
    for r in rows:
        ci = "— (too few seeds)" if not r["ci95"] else (f"[{r['ci95'][0] or 0:.0f}, {r['ci95'][1] or math.inf:.0f}]"
                                                         f" {r['ci_level']:.1%}")
        star = f"{r['P_star']:.0f}" if r["P_star"] is not None else ("≤grid" if r["where"] == "below" else ">grid")
        ratio = f"{r['P_star'] / r['prediction']:.2f}" if r["P_star"] is not None else "—"
        print(f"  {r['L']}  {r['m']}  {r['prediction']:>7}   {star:>6}  {ci:<24}  {ratio}")
    if fit["b"] is not None:
        ci = (f" [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}] ({fit['ci_level']:.1%})" if fit["ci95"]
              else f" ({fit['ci_note']})")
        print(f"P* ∝ (n_c·m^L)^b: b = {fit['b']:.2f}{ci} over {fit['rows_fitted']} settings (theory: 1)")
        if fit.get("seeds_outside_grid"):
            print(f"note: {fit['seeds_outside_grid']} seed(s) have a P* outside some grid; the interval is over the others")
    print(f"written: {out_dir / 'rhm_sample_complexity.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
