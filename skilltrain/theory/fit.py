"""Fit the Resource model to a run's per-skill loss curves: `python -m skilltrain fit-theory run_dir=<dir>`.

What is fitted. The Resource model (skilltrain.theory.resource) with two free parameters, the budget per step η_eff
and the wasted resources N0. Everything else comes from the run: the skills' frequencies p (normalised to sum to 1,
so that N0 is comparable across runs), the overlap C = I, and the prerequisite gates of a task that declares a
dependency structure (compositional parity: the composite needs both parts; dependency chains and graphs;
compositional sparse parity), with a step-like gate exponent a = 0.01.

What is compared. Each skill's unlearned fraction u_i(t), read off its training loss ℓ_i(t) and its loss before
learning ℓ_ref,i (the largest loss after the first logged step; a toy model's run: its loss at step 0):
    MSE skills: u = √(ℓ / ℓ_ref)   (the Resource model's MSE loss is u²),
    CE skills:  u = 1 − exp(−ℓ · log 2 / ℓ_ref)   (its CE loss −log(1 − u) starts at log 2),
clipped to [0, 1]. Least squares over every logged step after 0 and every skill, in log η and log N0: a coarse grid,
two finer grids around the best point, over log10 η in [−5, 0] and log10 N0 in [−6, 2] (the paper's code searches N0
over [−4, 2]); an edge the best point sits on moves out by 2 decades until it does not (or reaches 10^−12…10^6 for
N0, 10^−9…10^2 for η), and a parameter still on an edge is a bound, printed as one, never as a measurement.
Each parameter's interval is its profile: the values for which the best
fit over the other parameter stays within 10% of the best squared error. (Neighbouring points of a learning curve
are not independent measurements, and misfit, not noise, dominates the residuals, so a noise model's confidence
interval would claim too much.) A parameter whose interval spans more than a decade, or is open on one side, is
not determined by this run: N0 in the Domino regime, where it is much smaller than the demand Σ c p u, is only
bounded above. Across seeds, `compare` reports each arm's median and quartiles of the fitted values.

Output: <run_dir>/theory_fit.json (parameters with their intervals, R² per skill, predicted and
measured learn steps: the first step with u ≤ 0.1) and theory_fit.png (measured curves solid, the fitted model
dashed); with collapse=true also theory_collapse.png, u_i^(1/p_i) against step: the paper's collapse, one curve for
every skill when N0 dominates.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from skilltrain.config import parse_overrides, require
from skilltrain.errors import UserError
from skilltrain.files import save_figure
from skilltrain.theory import resource

FIT_FILE = "theory_fit.json"
GATE_EXPONENT = 0.01
PROFILE_TOLERANCE = 0.1  # a parameter's interval: the values whose best fit is within 10% of the best squared error
LEARNED_U = resource.LEARNED_U  # a skill counts as learned once u ≤ 0.1 (skill level s ≥ 0.9)
LOG_ETA = (-5.0, 0.0)  # grid ranges (log10) of the first search
LOG_N0 = (-6.0, 2.0)  # (the paper's code searches N0 over 10^−4…10^2)
WIDEN = 2.0  # decades an edge moves out while the best fit sits on it …
LOG_ETA_LIMIT = (-9.0, 2.0)  # … up to these
LOG_N0_LIMIT = (-12.0, 6.0)


@dataclass
class Measured:
    skills: list[str]
    p: list[float]  # normalised
    loss: str  # mse | ce
    gates: list
    gate_exponent: float
    steps: list[int]  # logged steps after 0
    u: np.ndarray  # [T, K]; NaN where a skill was not measured
    every: int  # unused (kept for callers that build a Measured by hand)
    learned_step: dict  # the run's own learn steps (its metric)
    sampled: bool = False  # a data-sampling intervention changed the mixture (the fit assumes the natural one)


def read_run(run_dir: Path, plugins=(), trust_plugins: bool = False) -> Measured:
    """A run's per-skill training losses as unlearned fractions, with what the model needs to know of its task.
    Nothing the run names is executed: its plugins are imported only as `plugins` / `trust_plugins` say."""
    from skilltrain.rundir import RunDir

    run = RunDir(run_dir)
    run.require("metrics", "summary", "config")
    try:
        summary = run.read_summary()
        summary["skills"][next(iter(summary["skills"]))]["frequency"]
    except (KeyError, StopIteration, TypeError):
        raise UserError(f"run_dir: the summary of '{run_dir}' is not a run's summary (no skills with frequencies)") from None
    require("scaling" not in summary, "run_dir", f"'{run_dir}' is a scaling sweep, not a run")
    saved = run.read_config()
    skills = list(summary["skills"])
    p = np.array([summary["skills"][s]["frequency"] for s in skills], dtype=float)
    theory = isinstance(saved.get("model"), str)
    a = GATE_EXPONENT
    if theory:  # a toy model's run (skilltrain.theory.run): a Resource model run keeps its own gates
        loss = {"geometry": str(saved.geometry.loss), "domino": "mse"}.get(str(saved.model), str(saved.resource.loss))
        gates = [None] * len(skills)
        if saved.model == "resource":
            gates = resource.gates_from(OmegaConf.to_container(saved.resource.prerequisites), skills)
            a = float(saved.resource.gate_exponent)
    else:
        loss, prerequisites = _task_structure(run, plugins, trust_plugins)
        gates = [None] * len(skills)
        for i, (op, parts) in prerequisites.items():
            gates[i] = (op, list(parts))
    steps, losses = [], []
    header, rows = run.read_metrics_table()
    for row in rows:
        if not row.get("train/loss"):
            continue
        values = [row.get(f"skill/{s}/loss") for s in skills]
        if any(v in (None, "") for v in values):
            continue
        steps.append(int(row["step"]))
        losses.append([float(v) for v in values])
    require(len(steps) >= 5, "run_dir", f"'{run_dir}' logged {len(steps)} rows of per-skill training losses; a fit needs ≥ 5")
    losses = np.array(losses)  # NaN: a skill absent from a logged batch (its cell is left out of the fit)
    with warnings.catch_warnings():  # a skill never measured: all-NaN, refused below
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = losses[0] if theory else np.nanmax(losses[1:], axis=0)
    require(np.isfinite(ref).all(), "run_dir", f"'{run_dir}' logged no training loss for some skill; nothing to fit")
    u = unlearned_fraction(losses, ref, loss)
    keep = np.array(steps) > 0
    steps_kept = [s for s, k in zip(steps, keep) if k]
    return Measured(skills, list(p / p.sum()), loss, gates, a, steps_kept, u[keep], 1,
                    {s: summary["skills"][s]["learned_step"] for s in skills},
                    sampled=any(c.startswith("intervention/") and "/rate/" in c for c in header))


def unlearned_fraction(losses: np.ndarray, reference: np.ndarray, loss: str) -> np.ndarray:
    """u from a skill's loss and its loss before learning: √(ℓ/ℓ_ref) (MSE), 1 − exp(−ℓ·log 2/ℓ_ref) (CE); in [0, 1]."""
    ratio = np.clip(losses / np.maximum(reference, 1e-300), 0, None)
    return np.clip(np.sqrt(ratio) if loss == "mse" else 1 - np.exp(-ratio * math.log(2)), 0, 1)


def _task_structure(run, plugins=(), trust_plugins: bool = False) -> tuple[str, dict]:
    """(the task's loss, its declared prerequisites) from a fit run's saved config."""
    from skilltrain.data import task_of_run

    task = task_of_run(run, plugins, trust_plugins)
    return task.loss, dict(task.prerequisites)


def predict(m: Measured, log_eta: np.ndarray, log_n0: np.ndarray) -> np.ndarray:
    """The model's u at the measured steps for each parameter pair: [P, T, K]."""
    n_steps = max(m.steps)
    p = torch.tensor(m.p, dtype=torch.float64)
    eta = torch.tensor(10.0 ** np.asarray(log_eta), dtype=torch.float64)
    n0 = torch.tensor(10.0 ** np.asarray(log_n0), dtype=torch.float64)
    u = resource.simulate(p, eta, n0, n_steps, loss=m.loss, gates=m.gates, a=m.gate_exponent, at=sorted(set(m.steps)))
    index = torch.tensor([sorted(set(m.steps)).index(s) for s in m.steps])
    return u[index].permute(1, 0, 2).numpy()  # [P, T, K]


def _sse(m: Measured, log_eta, log_n0) -> np.ndarray:
    return np.nansum((predict(m, log_eta, log_n0) - m.u[None]) ** 2, axis=(1, 2))


def _search(m: Measured, ranges: list[list[float]], grid: int, eta: float | None) -> tuple[float, float, float]:
    """The least-squares (log10 η, log10 N0, SSE) within `ranges`: a coarse grid, then two finer ones around the best
    point, each clipped to the ranges (so that a best point on an edge is on the range's edge, not beyond it)."""
    (lo_e, hi_e), (lo_n, hi_n) = ranges
    best = None
    for size in (grid, 15, 15):
        e, n = np.meshgrid(np.linspace(lo_e, hi_e, 1 if eta else size), np.linspace(lo_n, hi_n, size), indexing="ij")
        sse = _sse(m, e.ravel(), n.ravel())
        i = int(np.nanargmin(sse))
        best = (float(e.ravel()[i]), float(n.ravel()[i]), float(sse[i]))
        step_e, step_n = (0.0 if eta else (hi_e - lo_e) / (size - 1)), (hi_n - lo_n) / (size - 1)
        lo_e, hi_e = max(best[0] - step_e, ranges[0][0]), min(best[0] + step_e, ranges[0][1])
        lo_n, hi_n = max(best[1] - step_n, ranges[1][0]), min(best[1] + step_n, ranges[1][1])
    return best


def _edges(value: float, span: list[float]) -> list[int]:
    """Which ends of `span` (0: low, 1: high) `value` sits on."""
    return [side for side, end in enumerate(span) if abs(value - end) < 1e-9]


def fit(m: Measured, grid: int = 25, eta: float | None = None) -> dict:
    """Least-squares (log10 η, log10 N0) with profile intervals; JSON-ready. `eta` given: only N0 is fitted (as
    arXiv 2501.12391 does for the Geometry model, with η = 2·lr·√N).

    The search starts on LOG_ETA × LOG_N0 (N0 over 10^−6…10^2, wider than the paper's 10^−4…10^2); while the best
    point sits on an edge of the range, that edge moves out by WIDEN decades, up to LOG_ETA_LIMIT and LOG_N0_LIMIT. A
    parameter still on an edge is reported in `at_search_edge`, its value a bound, never a measurement."""
    ranges = [[math.log10(eta)] * 2 if eta is not None else list(LOG_ETA), list(LOG_N0)]
    limits = [list(LOG_ETA_LIMIT), list(LOG_N0_LIMIT)]
    while True:
        best = _search(m, ranges, grid, eta)
        widened = False
        for axis in (1,) if eta is not None else (0, 1):
            for side in _edges(best[axis], ranges[axis]):
                step = -WIDEN if side == 0 else WIDEN
                moved = min(max(ranges[axis][side] + step, limits[axis][0]), limits[axis][1])
                widened |= moved != ranges[axis][side]
                ranges[axis][side] = moved
        if not widened:
            break
    log_eta, log_n0, sse = best
    # Profiles: for each value of one parameter, the best squared error over the other; the interval holds the
    # values within PROFILE_TOLERANCE of the best fit's (misfit, not noise, dominates a learning curve's residuals,
    # so a noise model's confidence interval would claim a precision the model does not have).
    e_axis = np.array([log_eta]) if eta else np.linspace(log_eta - 1, log_eta + 1, 41)  # 0.05 decades apart
    n_axis = np.linspace(log_n0 - 3, log_n0 + 3, 41)  # 0.15 decades apart
    e, n = np.meshgrid(e_axis, n_axis, indexing="ij")
    table = _sse(m, e.ravel(), n.ravel()).reshape(len(e_axis), len(n_axis))
    limit = min(sse, float(np.nanmin(table))) * (1 + PROFILE_TOLERANCE)
    u_fit = predict(m, [log_eta], [log_n0])[0]
    r2 = {}
    for k, skill in enumerate(m.skills):
        seen = np.isfinite(m.u[:, k])
        total = float(((m.u[seen, k] - m.u[seen, k].mean()) ** 2).sum())
        r2[skill] = None if total == 0 else round(1 - float(((u_fit[seen, k] - m.u[seen, k]) ** 2).sum()) / total, 4)
    edges = {"eta": [] if eta else _edges(log_eta, ranges[0]), "n0": _edges(log_n0, ranges[1])}
    fixed = {"value": float(eta), "log10": round(log_eta, 4), "interval": [float(eta), float(eta)], "determined": True,
             "fixed": True} if eta else None
    result = {"eta": fixed or _parameter(log_eta, e_axis, np.nanmin(table, 1), limit),
              "n0": _parameter(log_n0, n_axis, np.nanmin(table, 0), limit)}
    for name, sides in edges.items():
        if sides:  # the best fit may lie beyond: the value is a bound, not a measurement
            result[name].update(determined=False, bound="upper" if sides == [0] else "lower")
    return {**result, "sse": sse, "r2": r2, "rows": len(m.steps),
            "search_range": {"eta": [round(v, 4) for v in ranges[0]], "n0": [round(v, 4) for v in ranges[1]]},
            "at_search_edge": [name for name, sides in edges.items() if sides], "_u_fit": u_fit}


def _parameter(log_value: float, axis: np.ndarray, profile: np.ndarray, limit: float) -> dict:
    """The value and its profile interval, to the first grid points outside it (conservative at the grid's
    resolution); a side where the profile never rises past the limit is open (null)."""
    inside = profile <= limit
    centre = int(np.argmin(np.abs(axis - log_value)))
    lo = hi = centre
    while lo > 0 and inside[lo - 1]:
        lo -= 1
    while hi < len(axis) - 1 and inside[hi + 1]:
        hi += 1
    low = None if lo == 0 else float(10 ** axis[lo - 1])
    high = None if hi == len(axis) - 1 else float(10 ** axis[hi + 1])
    return {"value": float(10**log_value), "log10": round(log_value, 4), "interval": [low, high],
            "determined": low is not None and high is not None and high / low <= 10}


def _first_below(steps: list[int], u: np.ndarray) -> int | None:
    below = np.flatnonzero(u <= LEARNED_U)
    return int(steps[below[0]]) if below.size else None


def fit_resource(run_dir: Path, collapse: bool = False, eta: float | None = None, plugins=(),
                 trust_plugins: bool = False) -> dict:
    """Fit, write theory_fit.json and theory_fit.png (and theory_collapse.png); the JSON's content. `eta`: fix
    η_eff at this value and fit N0 alone. The run's plugins are imported only as `plugins` / `trust_plugins` say."""
    from skilltrain.files import write_json

    m = read_run(run_dir, plugins, trust_plugins)
    result = fit(m, eta=eta)
    u_fit = result.pop("_u_fit")
    result = {
        "model": "resource",
        "fitted": ["n0"] if eta else ["eta", "n0"],
        "units": "p normalised to sum to 1: a Resource model with frequencies p and waste N0 fits here as N0 / Σp",
        "fixed": {"p": dict(zip(m.skills, m.p)), "overlap": "identity", "loss": m.loss, "gate_exponent": m.gate_exponent,
                  "prerequisites": {m.skills[i]: {"op": g[0], "of": [m.skills[j] for j in g[1]]}
                                    for i, g in enumerate(m.gates) if g}},
        **result,
        "learn_steps": {s: {"run": m.learned_step[s], "measured_u_0.1": _first_below(m.steps, m.u[:, k]),
                            "predicted_u_0.1": _first_below(m.steps, u_fit[:, k])} for k, s in enumerate(m.skills)},
    }
    notes = []
    if result["at_search_edge"]:
        notes.append(f"{' and '.join(result['at_search_edge'])} at the edge of the search range, widened to its limit "
                     "(log10 N0 in [-12, 6], log10 η in [-9, 2]): the best fit may lie outside it, and the value is a bound, "
                     "not a measurement")
    for name in ("eta", "n0"):
        if not result[name]["determined"]:
            notes.append(f"{name} is not determined by this run (its interval spans more than a decade, or is open)")
    if m.sampled:
        notes.append("a data-sampling intervention changed the skill mixture during this run; the fit assumes the "
                     "natural frequencies, so η_eff and N0 also absorb the change of mixture")
    poor = [s for s, r in result["r2"].items() if r is not None and r < 0.8]
    if poor:
        notes.append(f"the model fits {', '.join(poor)} poorly (R² < 0.8)")
    result["notes"] = notes
    write_json(run_dir / FIT_FILE, result)
    _plot_fit(run_dir / "theory_fit.png", m, u_fit, result)
    if collapse:
        _plot_collapse(run_dir / "theory_collapse.png", m, u_fit)
    return result


def _plot_fit(path: Path, m: Measured, u_fit: np.ndarray, result: dict) -> None:
    from skilltrain.analysis.plots import figure, skill_colors

    fig, axes = figure(1, 2, (11, 4))
    colors = skill_colors(len(m.skills))
    markers = "osD^vP*X<>"
    every = max(1, len(m.steps) // 8)
    for k, skill in enumerate(m.skills):
        color = colors[k]
        r2 = result["r2"][skill]
        label = f"{skill} (p={m.p[k]:.3g}, R²={r2:.2f})" if r2 is not None else skill
        # skills of one p have one fitted curve (and often nearly one measured curve): each skill's own markers, at
        # points shifted per skill, keep every one visible
        style = {"marker": markers[k % len(markers)], "markevery": (k * every // max(len(m.skills), 1), every),
                 "markersize": 4}
        for ax in axes[0]:
            ax.plot(m.steps, m.u[:, k], color=color, lw=1.5, label=label if len(m.skills) <= 12 else None, **style)
            ax.plot(m.steps, u_fit[:, k], color=color, lw=1.2, ls="--", **{**style, "markerfacecolor": "none"})
    for ax in axes[0]:
        ax.axhline(LEARNED_U, color="grey", lw=0.8)
    axes[0][1].set_yscale("log")
    axes[0][1].set_ylim(1e-4, 1.2)
    for ax in axes[0]:
        ax.set_xlabel("step")
        ax.set_ylabel("unlearned fraction u")
    axes[0][0].legend(fontsize=7)
    eta, n0 = result["eta"], result["n0"]
    fig.suptitle(f"Resource model fit (dashed) to the measured curves (solid): η_eff = {format_parameter(eta)}, "
                 f"N0 = {format_parameter(n0)}" + ("" if n0["determined"] else " (N0 poorly determined)")
                 + f"\ngrey line: learned here means u ≤ {LEARNED_U:g}; the run's own learn steps use its metric "
                 "(theory_fit.json and the printed table give both)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def _plot_collapse(path: Path, m: Measured, u_fit: np.ndarray) -> None:
    from skilltrain.analysis.plots import figure, skill_colors

    fig, axes = figure(1, 1, (6, 4))
    ax = axes[0][0]
    colors = skill_colors(len(m.skills))
    for k, skill in enumerate(m.skills):
        color = colors[k]
        exponent = 1 / m.p[k]
        ax.plot(m.steps, np.clip(m.u[:, k], 1e-300, 1) ** exponent, color=color, lw=1.5, label=skill)
        ax.plot(m.steps, np.clip(u_fit[:, k], 1e-300, 1) ** exponent, color=color, lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("u^(1/p)")
    ax.legend(fontsize=7)
    fig.suptitle("collapse: u_i^(1/p_i) is one curve for every skill when wasted resources dominate (N0 ≫ Σ p u)\n"
                 "solid: measured, dashed: fitted Resource model", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def fit_theory_options(args: list[str]) -> dict:
    """`fit-theory`'s arguments, checked: run_dir and fit_resource's keywords."""
    from skilltrain.rundir import reading_options

    cli = parse_overrides(args)
    extra = sorted(set(cli) - {"run_dir", "model", "collapse", "eta", "plugins", "trust_plugins"})
    require(not extra, extra[0] if extra else "",
            "unknown key (fit-theory takes run_dir, model, collapse, eta, plugins and trust_plugins)")
    plugins, trust_plugins = reading_options(cli)
    eta = cli.get("eta")
    require(eta is None or (isinstance(eta, (int, float)) and not isinstance(eta, bool) and eta > 0), "eta",
            f"expected a number > 0 (η_eff held fixed; N0 alone is fitted), got '{eta}'")
    require(cli.get("run_dir"), "run_dir", "is required: the run directory to fit (fit-theory run_dir=runs/…)")
    model = str(cli.get("model", "resource"))
    if model != "resource":
        raise UserError(f"model: only the Resource model is fitted to runs (got '{model}')")
    collapse = cli.get("collapse", False)
    require(isinstance(collapse, bool), "collapse", f"expected true or false, got '{collapse}'")
    return {"run_dir": Path(str(cli.run_dir)), "collapse": collapse, "eta": eta, "plugins": plugins,
            "trust_plugins": trust_plugins}


def fit_theory_command(args: list[str]) -> int:
    """`fit-theory run_dir=<dir> [model=resource] [collapse=true] [eta=<η_eff>] [plugins=[…]] [trust_plugins=true]`."""
    options = fit_theory_options(args)
    run_dir = options["run_dir"]
    result = fit_resource(**options)
    print_fit(result)
    sys.stdout.flush()
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(f"plots: {run_dir / 'theory_fit.png'}" + (f", {run_dir / 'theory_collapse.png'}" if options["collapse"] else
                                                     " (collapse=true adds theory_collapse.png)"), flush=True)
    print(f"theory_fit: {run_dir / FIT_FILE}", flush=True)
    return 0


def format_parameter(p: dict) -> str:
    """`0.0029 [0.002, 0.004]`, an open side as `…`; a value on the search range's edge as the bound it is
    (`≤ 1e-12 (search edge)`)."""
    low, high = p["interval"]
    if p.get("bound") == "lower":
        return f"≥ {p['value']:.3g} (search edge)"
    if p.get("bound") == "upper":
        return f"≤ {p['value']:.3g} (search edge{'' if high is None else f'; within 10% of the best fit up to {high:.2g}'})"
    return f"{p['value']:.3g} [{'…' if low is None else f'{low:.2g}'}, {'…' if high is None else f'{high:.2g}'}]"


def print_fit(result: dict) -> None:
    from rich.table import Table

    from skilltrain.report import console

    table = Table(title=f"Resource model fit: η_eff = {format_parameter(result['eta'])}, N0 = {format_parameter(result['n0'])}")
    for column in ("skill", "p", "R²", "learned (u ≤ 0.1): measured", "predicted", "run's learn step"):
        table.add_column(column, justify="left" if column == "skill" else "right")
    for skill, steps in result["learn_steps"].items():
        r2 = result["r2"][skill]
        table.add_row(skill, f"{result['fixed']['p'][skill]:.3g}", "—" if r2 is None else f"{r2:.3f}",
                      str(steps["measured_u_0.1"]), str(steps["predicted_u_0.1"]), str(steps["run"]))
    console().print(table)
