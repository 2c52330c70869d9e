"""Scaling sweeps: a grid of any config keys, run over seeds like a comparison, and power laws fitted to it.

    python -m skilltrain sweep recipe=multitask_parity sweep.model.widths=[[16],[32],[64],[128],[256]] seeds=3
        [compare.workers=2] [out_dir=DIR] [key=value …]

Every `sweep.<key>=[v1, v2, …]` is one axis; the grid is their product. Each grid point is an arm of one comparison
(`<sweep>/<point>/seed<s>/`, through `compare`'s runner: resumable, warm workers or SLURM, one W&B group), run to its
full budget (`compare.stop_early=false`: a scaling law needs the loss at a fixed budget).

What is fitted, for a sweep of one key (a grid of several keys is run and tabulated, not fitted):
- x = the number of trainable parameters when the key is a model key (`model.*`): the exponent `alpha_N`;
- x = the training set size for `data.n_samples`: `alpha_D`; x = the steps for `trainer.max_steps`: `alpha_S`;
- any other numeric key: `alpha_<key>`.
The loss is each skill's held-out loss at the run's last evaluation (the training loss at its last logged step, for
every run alike, when some run has no evaluation), and "overall" is their mean weighted by each run's skill
frequencies, the expected loss under the data's skill mixture. For `trainer.max_steps` x is the step that loss was
measured at. Diverged and failed runs are left out (and listed in the notes). A power law L = c · x^(−α) is fitted
by least squares in log-log to the medians over seeds; its 95% interval is a paired bootstrap over seeds (the same
resampled seeds at every grid point). A skill whose loss does not fall with x, or that is already at ~0, fits
badly: every fit reports its R², and the notes say which fits to distrust.

When one axis is `data.n_samples` and the task is a classification, the sweep also measures the sample complexity:
the held-out error (1 − accuracy) against P and the P* at which it falls to a tenth of chance's, for each setting of
the other axes (skilltrain.analysis.sample_complexity): `sample_complexity` in sweep.json, sample_complexity.png.

Output: sweep.json (`exponents`: per fitted quantity its value and 95% CI, overall and per skill; the grid; the
losses), sweep.md (the table), sweep.png (log-log, measured medians with quartiles and the fitted lines).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import ListConfig, OmegaConf

from skilltrain.comparison.plan import Plan
from skilltrain.config import parse_overrides, require

BOOTSTRAP = 2000  # unused: intervals are order statistics now (skilltrain.analysis.stats); kept for old imports
QUANTITIES = {"data.n_samples": "alpha_D", "trainer.max_steps": "alpha_S"}


def _dotted(prefix: str, node) -> list[tuple[str, object]]:
    """`sweep.model.widths=[[16],[32]]` arrives nested: {"model": {"widths": [...]}} → [("model.widths", [...])]."""
    if OmegaConf.is_dict(node):
        return [item for k, v in node.items() for item in _dotted(f"{prefix}.{k}" if prefix else str(k), v)]
    return [(prefix, node)]


def point_name(values: dict[str, object]) -> str:
    """A directory- and dotlist-safe arm name for a grid point: `widths-16` or `n_samples-4096_lr-0p001`."""
    parts = []
    for key, value in values.items():
        text = json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value
        parts.append(f"{key.split('.')[-1]}-{re.sub(r'[^A-Za-z0-9+-]+', '', text.replace('.', 'p'))}")
    return "_".join(parts)


NOT_SWEPT = ("seed", "seeds", "out_dir", "recipe", "plugins", "compare", "arms", "presets")


def parse(args: list[str]) -> tuple[dict[str, list], list[str]]:
    """(axes {key: values}, the other arguments)."""
    cli = parse_overrides(args)
    given = cli.get("sweep")
    require(given is None or OmegaConf.is_dict(given), "sweep",
            "expected axes as sweep.<key>=[v1,v2,...], e.g. sweep.model.widths=[[16],[32],[64]]")
    axes = dict(_dotted("", given)) if given is not None else {}
    axes.pop("floor", None)  # sweep.floor is the power law's L∞ (floor_option), not an axis
    require(axes, "sweep", "needs at least one axis: sweep.<key>=[v1,v2,...], e.g. sweep.model.widths=[[16],[32],[64]]")
    for key, values in axes.items():
        require(key.split(".")[0] not in NOT_SWEPT, f"sweep.{key}",
                "cannot be swept (seeds are the comparison's: seeds=N; a sweep runs one recipe)")
        shown = OmegaConf.to_container(values) if OmegaConf.is_config(values) else values
        require(isinstance(values, ListConfig) and len(values) >= 2, f"sweep.{key}",
                f"expected a list of ≥ 2 values to sweep, got {shown}")
        require(not _not_a_number(shown), f"sweep.{key}", f"NaN or infinity is not a value to sweep: {shown}")
    rest = [a for a in args if not a.split("=", 1)[0].startswith("sweep.") and a.split("=", 1)[0] != "sweep"]
    require(not any(a.split("=", 1)[0].split(".")[0] == "arms" for a in rest), "arms",
            "a sweep's arms are its grid points (sweep.<key>=[...]); run a comparison for named arms")
    axes = {k: list(OmegaConf.to_container(v)) for k, v in axes.items()}
    sizes = axes.get("data.n_samples", [1])  # a sample complexity reads P off this axis, in any grid
    require(all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes), "sweep.data.n_samples",
            f"expected training set sizes (positive integers), got {sizes}")
    if len(axes) == 1:  # fitted: checked before anything runs
        key, values = next(iter(axes.items()))
        require(key.startswith("model.") or all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                                for v in values), f"sweep.{key}",
                "a power law needs positive numbers on the swept axis (for model.* keys the parameter count is used)")
    return axes, rest


def _not_a_number(value) -> bool:
    """A NaN or an infinity, as a number or as the text YAML reads as one ("nan", ".inf"), at any depth of lists."""
    if isinstance(value, (list, tuple)):
        return any(_not_a_number(v) for v in value)
    if isinstance(value, str):
        return value.strip().lower().lstrip("+-.") in ("nan", "inf", "infinity")
    return isinstance(value, float) and not math.isfinite(value)


def floor_option(args: list[str]) -> float | str:
    """`sweep.floor=fit|<number ≥ 0>` (default 0): the irreducible loss L∞ the power law subtracts (fit_power_law)."""
    given = (parse_overrides(args).get("sweep") or {}).get("floor", 0.0)
    if given == "fit":
        return "fit"
    require(isinstance(given, (int, float)) and not isinstance(given, bool) and math.isfinite(given) and given >= 0,
            "sweep.floor", f"expected fit or a loss ≥ 0 (the power law's irreducible L∞), got {given}")
    return float(given)


@dataclass
class SweepPlan:
    """A sweep: its axes and grid, each grid point an arm of one comparison (`comparison`), and the power law's
    floor. What `sweep` runs (through compare's launchers) and then reports (`analyse_sweep`)."""

    axes: dict[str, list]
    grid: list[dict]
    names: list[str]  # each grid point's arm name
    floor: float | str
    comparison: Plan


def plan_sweep(args: list[str]) -> SweepPlan:
    """The `sweep` command's arguments as a plan, every run's config checked (one-line errors before anything runs)."""
    from skilltrain.comparison import Request, make_plan
    from skilltrain.comparison.plan import identity_tag

    axes, rest = parse(args)
    floor = floor_option(args)
    grid = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    names = [point_name(p) for p in grid]
    require(len(set(names)) == len(names), "sweep", "two grid points get the same name; use distinct values")
    request = Request.from_args(rest)
    request.arms = {name: {"overrides": point} for name, point in zip(names, grid)}
    request.settings = {"stop_early": False, "baseline": names[0], **request.settings}  # a scaling law needs the full budget
    if request.out_dir is None and request.settings.get("out_dir") is None:  # named after what defines the sweep
        tag = identity_tag([sorted(a for a in rest if not a.startswith("compare.")), axes])
        request.out_dir = str(Path("runs") / "sweep" / f"{request.recipe or 'run'}-{tag}")
    return SweepPlan(axes, grid, names, floor, make_plan(request))


def sweep(args: list[str]) -> int:
    """The `sweep` command (plan, launch, report): exit 0, or 1 when a grid point has no finished run."""
    from skilltrain.comparison import check_directory, dry_run, execute, hold

    the_sweep = plan_sweep(args)
    comparison = the_sweep.comparison
    check_directory(comparison)
    if comparison.settings.dry_run:
        for line in dry_run(comparison).commands:
            print(line)
        return 0
    with hold(comparison.directory, "sweep"):  # the runs and the analysis: one command at a time
        try:
            result = execute(comparison)
        except KeyboardInterrupt:
            return 130
        if result.error:
            print(f"error: {result.error}", file=sys.stderr)
            return 1
        report = analyse_sweep(result.directory, the_sweep.axes, the_sweep.grid, the_sweep.names, the_sweep.floor)
    print_sweep(report)
    print(f"sweep_dir: {result.directory}", flush=True)
    return 0


# ---- analysis ---------------------------------------------------------------------------------------------------


def _rows(run_dir: Path) -> list[dict]:
    from skilltrain.rundir import RunDir

    return RunDir(run_dir).read_metrics()


def has_evaluation(run_dir: Path, skills: list[str]) -> bool:
    return any(r.get("val/loss") and all(r.get(f"skill/{s}/val_loss") for s in skills) for r in _rows(run_dir))


def _last_logged(run_dir: Path, skills: list[str], marker: str, suffix: str) -> tuple[dict[str, float], int] | None:
    """(each skill's `skill/<s>/<suffix>`, the step) from the last row that logged `marker` and all of them."""
    for row in reversed(_rows(run_dir)):
        values = {s: row.get(f"skill/{s}/{suffix}") for s in skills}
        if row.get(marker) and all(values.values()):
            return {s: float(v) for s, v in values.items()}, int(row["step"])
    return None


def final_losses(run_dir: Path, skills: list[str], split: str) -> tuple[dict[str, float], int] | None:
    """(each skill's loss, the step it was measured at): the last held-out evaluation (split "val") or the last
    logged training row (split "train")."""
    return _last_logged(run_dir, skills, *(("val/loss", "val_loss") if split == "val" else ("train/loss", "loss")))


def final_errors(run_dir: Path, skills: list[str]) -> dict[str, float] | None:
    """Each skill's held-out error (1 − accuracy) at the last evaluation."""
    last = _last_logged(run_dir, skills, "val/loss", "val_acc")
    return None if last is None else {s: 1 - v for s, v in last[0].items()}


def parameter_count(run_dir: Path) -> int:
    """Trainable parameters of the run's model; a masked weight (block-diagonal modules) counts its unmasked entries."""
    from skilltrain.rundir import RunDir

    state = RunDir(run_dir).load_checkpoint()["state_dict"]
    total = 0
    for key, value in state.items():
        if not value.is_floating_point() or key.endswith("mask"):
            continue
        mask = state.get(key.rsplit(".", 1)[0] + ".mask") if key.endswith(".weight") else None
        total += int(mask.sum()) if mask is not None and mask.shape == value.shape else value.numel()
    return total


def _loglog(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of log y against log x, least squares."""
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)


def fit_floor(x: np.ndarray, medians: np.ndarray) -> dict:
    """The irreducible loss L∞ of L = L∞ + c·x^(−α), fitted to the medians: least squares in log L over a grid of
    L∞ from 0 to just below the smallest median. {"value", "at_edge", "note"}; a value at the grid's upper edge
    (the floor runs into the smallest loss) is not a measurement, and None is returned with a note."""
    ok = np.isfinite(medians) & (medians > 0)
    x, m = x[ok], medians[ok]
    if len(set(x.tolist())) < 3:
        return {"value": None, "at_edge": False, "note": "a floor needs three distinct values of the swept quantity"}
    candidates = np.concatenate([[0.0], m.min() * (1 - np.geomspace(1, 1e-4, 400))[1:]])

    def misfit(floor: float) -> float:
        slope, intercept = _loglog(x, m - floor)
        return float(((np.log(floor + np.exp(intercept) * x**slope) - np.log(m)) ** 2).sum())

    errors = [misfit(f) for f in candidates]
    best = int(np.argmin(errors))
    if best == len(candidates) - 1:
        return {"value": None, "at_edge": True,
                "note": "the fitted floor runs into the smallest loss (the edge of its search): not a measurement"}
    return {"value": float(candidates[best]), "at_edge": best == 0, "note": None}


def fit_power_law(x: np.ndarray, losses: np.ndarray, floor: float | str = 0.0, confidence: float = 0.95) -> dict:
    """losses [points, seeds] (NaN: missing): α of L − L∞ = c·x^(−α), fitted to the medians over seeds in log-log.

    `floor` is L∞: a number (0: a pure power law, the default), or "fit" (`fit_floor`, on the medians). The
    interval: each seed's own exponent (its losses − L∞ fitted alike, over the points the medians use; a seed
    missing one is left out), and `skilltrain.analysis.stats.median_interval` of those (distribution-free, with the
    level it achieves; none with fewer than 4 seeds). It is an interval for the median over seeds of the per-seed
    exponent, which equals the fitted exponent when the seeds differ by a factor (the usual case); `ci_level` says
    its coverage.
    """
    from skilltrain.analysis.stats import median_interval

    medians = np.nanmedian(losses, axis=1)  # the mean of the two middle values, as skilltrain.analysis.stats.median
    fitted = fit_floor(x, medians) if floor == "fit" else None
    l_inf = float(floor) if fitted is None else (fitted["value"] or 0.0)
    out: dict = {"value": None, "ci95": None, "r2": None, "floor": l_inf, "floor_method": "given" if fitted is None
                 else "fitted", **({"floor_note": fitted["note"]} if fitted and fitted["note"] else {})}
    ok = np.isfinite(medians) & (medians - l_inf > 0)
    if len(set(x[ok].tolist())) < 2:
        return {**out, "note": "fewer than two distinct values of the swept quantity with a loss above the floor"}
    slope, intercept = _loglog(x[ok], medians[ok] - l_inf)
    lx, ly = np.log(x[ok]), np.log(medians[ok] - l_inf)
    residual = ly - (slope * lx + intercept)
    total = ((ly - ly.mean()) ** 2).sum()
    r2 = float(1 - (residual**2).sum() / total) if total > 0 else None
    per_seed = losses[ok] - l_inf
    complete = np.all(np.isfinite(per_seed) & (per_seed > 0), axis=0)
    alphas = [-_loglog(x[ok], per_seed[:, j])[0] for j in np.flatnonzero(complete)]
    interval = median_interval(alphas, confidence)
    note = interval["note"]
    if (~complete).any():
        note = "; ".join(filter(None, [note, f"{int((~complete).sum())} seed(s) without a loss above the floor at "
                                             "every point: left out of the interval"]))
    return {**out, "value": -slope, "ci95": interval["ci"], "ci_level": interval["level"],
            "ci_method": "the median of per-seed exponents: " + interval["method"], "ci_note": note, "r2": r2,
            "prefactor": float(math.exp(intercept)), "seed_exponents": alphas}


def analyse_sweep(directory: Path, axes: dict[str, list], grid: list[dict], names: list[str],
                  floor: float | str = 0.0) -> dict:
    """sweep.json, sweep.md and the plots from a finished sweep's comparison directory; `floor` is the power law's
    irreducible loss L∞ (a number, or "fit": see `fit_power_law`)."""
    from skilltrain.files import atomic_write_text, read_json, write_json

    comparison = read_json(directory / "comparison.json")
    skills = list(comparison["skills"])
    seeds = comparison["seeds_planned"]
    used = {name: [s for s in comparison["seeds"].get(name, []) if s not in comparison["diverged"].get(name, [])]
            for name in names}  # diverged runs' curves are cut short; failed and missing ones are `excluded`
    left_out = [f"{name}/seed{s}" for name in names for s in seeds if s not in used[name]]
    split = "val" if all(has_evaluation(directory / n / f"seed{s}", skills) for n in names for s in used[n]) else "train"
    losses = np.full((len(grid), len(seeds), len(skills) + 1), np.nan)
    sizes = np.full((len(grid), len(seeds)), np.nan)
    measured_at = np.full((len(grid), len(seeds)), np.nan)
    errors = np.full((len(grid), len(seeds)), np.nan)  # held-out error, for the sample complexity
    frequencies = {}
    for i, name in enumerate(names):
        for j, seed in enumerate(seeds):
            run = directory / name / f"seed{seed}"
            final = final_losses(run, skills, split) if seed in used[name] else None
            if final is None:
                continue
            freq = _frequencies(run, skills)
            frequencies = frequencies or freq
            losses[i, j, :-1] = [final[0][s] for s in skills]
            losses[i, j, -1] = sum(freq[s] * final[0][s] for s in skills) / sum(freq.values())
            measured_at[i, j] = final[1]
            error = final_errors(run, skills) if split == "val" else None
            if error is not None:  # the mean over skills: each has its own held-out set (classes: the balanced error)
                errors[i, j] = sum(error.values()) / len(error)
            if len(axes) == 1 and next(iter(axes)).startswith("model."):
                sizes[i, j] = parameter_count(run)
    result = {"axes": axes, "grid": [{"name": n, **p} for n, p in zip(names, grid)], "skills": skills, "seeds": seeds,
              "frequencies": frequencies, "losses": {n: {"overall": _clean(losses[i, :, -1]),
                                                        **{s: _clean(losses[i, :, k]) for k, s in enumerate(skills)}}
                                                    for i, n in enumerate(names)},
              "exponents": {}, "notes": [],
              "loss": "held-out loss at the last evaluation" if split == "val" else "training loss at the last logged step"}
    if left_out:
        result["notes"].append(f"left out (diverged, failed or missing): {', '.join(left_out)}")
    if split == "train":
        result["notes"].append("some run has no held-out evaluation within its budget: every run's training loss is used")
    if len(axes) == 1:
        key = next(iter(axes))
        if key.startswith("model."):
            quantity, x = "alpha_N", np.nanmedian(sizes, axis=1)
            result["parameters"] = {n: float(v) for n, v in zip(names, x)}
        else:
            quantity = QUANTITIES.get(key, f"alpha_{key}")
            x = np.array(axes[key], dtype=float)
            if key == "trainer.max_steps":  # the step the loss was measured at (an evaluation may come before the end)
                x = np.nanmedian(measured_at, axis=1)
                if not np.allclose(x, np.array(axes[key], dtype=float)):
                    result["notes"].append("alpha_S: losses measured before the budget's end (the last evaluation); "
                                           "x is that step")
        overall = fit_power_law(x, losses[:, :, -1], floor)
        per_skill = {s: fit_power_law(x, losses[:, :, k], floor) for k, s in enumerate(skills)}
        result["exponents"][quantity] = {**overall, "per_skill": per_skill, "x": x.tolist()}
        bad = [s for s, f in per_skill.items() if f["r2"] is None or f["r2"] < 0.8]
        if bad:
            result["notes"].append(f"{quantity}: the power law fits {', '.join(bad)} poorly (R² < 0.8 or undefined): "
                                   "a skill whose loss does not fall steadily with the swept quantity has no exponent")
        if overall["r2"] is not None and overall["r2"] < 0.9:
            result["notes"].append(f"{quantity}: the overall loss is not a clean power law here (R² {overall['r2']:.2f})")
        if overall.get("ci_note"):
            result["notes"].append(f"{quantity} interval: {overall['ci_note']}")
        if overall.get("floor_note"):
            result["notes"].append(f"{quantity} floor: {overall['floor_note']}")
        _plot(directory / "sweep.png", result, quantity, losses)
    else:
        result["notes"].append("a grid of several keys is run and tabulated; exponents are fitted for a single axis")
    if "data.n_samples" in axes:
        _sample_complexity(directory, result, axes, grid, names, used, errors)
    write_json(directory / "sweep.json", result)
    atomic_write_text(directory / "sweep.md", _markdown(result))
    return result


def _sample_complexity(directory: Path, result: dict, axes: dict, grid: list[dict], names: list[str],
                       used: dict, errors: np.ndarray) -> None:
    """P* per setting of the other axes, for a classification task (a regression task has no error rate: nothing)."""
    from skilltrain.analysis import sample_complexity as sc
    from skilltrain.data import task_of_run
    from skilltrain.rundir import RunDir

    others = [k for k in axes if k != "data.n_samples"]
    groups: dict[str, dict] = {}
    for i, point in enumerate(grid):
        setting = {k: point[k] for k in others}
        groups.setdefault(json.dumps(setting), {"setting": setting, "rows": []})["rows"].append(i)
    measured = []
    for group in groups.values():
        rows = group["rows"]
        runs = [directory / names[i] / f"seed{s}" for i in rows for s in used[names[i]]]
        task = task_of_run(RunDir(runs[0])) if runs else None  # its class count, per group
        if task is not None and (task.loss != "ce" or not task.accuracy):
            return
        sizes = [grid[i]["data.n_samples"] for i in rows]  # no finished run (no task): all NaN, "no data"
        found = sc.sample_complexity(sizes, errors[rows], sc.threshold(task.n_classes) if task is not None else None)
        measured.append({**group["setting"], "P": sizes, **found, "errors": [_clean(errors[i]) for i in rows]})
        if found["note"]:
            label = ", ".join(f"{k}={v}" for k, v in group["setting"].items()) or "P*"
            result["notes"].append(f"sample complexity ({label}): {found['note']}")
    result["sample_complexity"] = measured
    sc.plot(directory / "sample_complexity.png",
            [{"label": ", ".join(f"{k.split('.')[-1]}={v}" for k, v in g.items() if k in others),
              "sizes": g["P"], "errors": g["errors"], "sample_complexity": g} for g in measured if g["threshold"]])


def _clean(values: np.ndarray) -> list:
    return [None if not np.isfinite(v) else float(v) for v in values]


def _frequencies(run_dir: Path, skills: list[str]) -> dict[str, float]:
    from skilltrain.rundir import RunDir

    summary = RunDir(run_dir).read_summary()
    return {s: summary["skills"][s]["frequency"] for s in skills}


def _markdown(result: dict) -> str:
    from skilltrain.analysis.stats import interval_text

    lines = [f"# sweep over {', '.join(result['axes'])}", ""]
    for quantity, e in result["exponents"].items():
        def cell(f):
            if f["value"] is None:
                return "—"
            ci = interval_text(f.get("ci95"), f.get("ci_level"), 3)
            return f"{f['value']:.3f}{ci} (R² {f['r2']:.2f})" if f["r2"] is not None else f"{f['value']:.3f}{ci}"
        lines += [f"## {quantity}: L − L∞ ∝ x^(−α), fitted to the medians over seeds", "",
                  f"Floor L∞: {_floor_text(e)}. Interval: the median over seeds of each seed's own exponent, a "
                  "distribution-free order-statistic interval at the level shown (nominal 95%; none with fewer than 4 "
                  "seeds).", "",
                  "| skill | frequency | α [CI] level |", "|---|---|---|", f"| overall (frequency-weighted) | 1 | {cell(e)} |"]
        lines += [f"| {s} | {result['frequencies'][s]:.3g} | {cell(f)} |" for s, f in e["per_skill"].items()]
        lines.append("")
    if result.get("sample_complexity"):
        first = result["sample_complexity"][0]
        others = [k for k in result["axes"] if k != "data.n_samples"]
        lines += ["## sample complexity: P* where the median held-out error (mean over skills of 1 − accuracy) falls "
                  "to a tenth of chance's and stays there; interval: the median over seeds of each seed's own P*, "
                  "distribution-free order statistics at the level shown (none with fewer than 4 seeds)", "",
                  "| " + " | ".join([*others, "threshold", "P*", "CI level", *(f"error at P={p}" for p in first["P"])]) + " |",
                  "|---" * (len(others) + 3 + len(first["P"])) + "|"]
        for g in result["sample_complexity"]:
            limit = "—" if g["threshold"] is None else f"{g['threshold']:.3g}"
            lines.append("| " + " | ".join([*(str(g[k]) for k in others), limit, _p_star(g), _ci(g["ci95"], g.get("ci_level")),
                                            *("—" if e is None else f"{e:.3f}" for e in g["median_error"])]) + " |")
        lines.append("")
    from skilltrain.analysis.stats import median

    lines += ["## final loss per grid point (median over seeds)", "", "| point | overall | " +
              " | ".join(result["skills"]) + " |", "|---" * (len(result["skills"]) + 2) + "|"]
    for point in result["grid"]:
        row = result["losses"][point["name"]]
        med = [median(row[k]) for k in ["overall", *result["skills"]]]
        lines.append(f"| {point['name']} | " + " | ".join("—" if v is None else f"{v:.3g}" for v in med) + " |")
    lines += [""] + [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def _p_star(g: dict) -> str:
    """P* as a number, or its bound when outside the grid."""
    if g["P_star"] is not None:
        return f"{g['P_star']:.4g}"
    return {"below": f"≤ {min(g['P'])}", "above": f"> {max(g['P'])}"}.get(g["where"], "no data")


def _ci(ci: list | None, level: float | None = None) -> str:
    if ci is None:
        return "—"
    lo = "below the grid" if ci[0] is None else format(ci[0], ".4g")
    return f"[{lo}, {'beyond the grid' if ci[1] is None else format(ci[1], '.4g')}]" + (
        f" {level:.1%}" if level is not None else "")


def _floor_text(e: dict) -> str:
    if e.get("floor_method") == "fitted":
        return f"fitted, {e['floor']:.4g}" + (" (at 0: no floor found)" if e["floor"] == 0 else "") + (
            f" — {e['floor_note']}; fitted without one" if e.get("floor_note") else "")
    return "0 (a pure power law; sweep.floor=fit or a number subtracts an irreducible loss)" if not e.get("floor") \
        else f"given, {e['floor']:.4g}"


def _plot(path: Path, result: dict, quantity: str, losses: np.ndarray) -> None:
    from skilltrain.analysis.plots import colormap, figure
    from skilltrain.files import save_figure

    e = result["exponents"][quantity]
    x = np.array(e["x"])
    fig, axes = figure(1, 2, (11, 4.2))
    colors = colormap("viridis")
    series = [("overall", losses[:, :, -1], e)]
    series += [(s, losses[:, :, k], e["per_skill"][s]) for k, s in enumerate(result["skills"])]
    for ax, subset in ((axes[0][0], series[:1]), (axes[0][1], series[1:])):
        for i, (label, values, f) in enumerate(subset):
            color = "black" if label == "overall" else colors(i / max(1, len(subset) - 1))
            with np.errstate(all="ignore"):
                lo, mid, hi = np.nanpercentile(values, [25, 50, 75], axis=1)
            ok = np.isfinite(mid) & (mid > 0)
            ax.errorbar(x[ok], mid[ok], yerr=[mid[ok] - lo[ok], hi[ok] - mid[ok]], fmt="o", color=color, ms=4, capsize=2,
                        label=f"{label}: α = {f['value']:.2f}" if f["value"] is not None else label)
            if f["value"] is not None:
                ax.plot(x, f["prefactor"] * x ** -f["value"] + f.get("floor", 0.0), "--", color=color, lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel({"alpha_N": "trainable parameters", "alpha_D": "training samples", "alpha_S": "steps"}
                      .get(quantity, next(iter(result["axes"]))))
        ax.set_ylabel("final loss")
        ax.legend(fontsize=7)
    axes[0][0].set_title(f"overall (frequency-weighted): {quantity}")
    axes[0][1].set_title("per skill")
    fig.suptitle("final loss vs the swept quantity: medians over seeds (bars: quartiles), dashed: power-law fits",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def print_sweep(result: dict) -> None:
    from rich.markup import escape

    from skilltrain.analysis.stats import interval_text
    from skilltrain.report import console

    out = console()
    for quantity, e in result["exponents"].items():
        value = "—" if e["value"] is None else f"{e['value']:.3f}{interval_text(e.get('ci95'), e.get('ci_level'), 3)}"
        out.print(f"{quantity} (overall, frequency-weighted loss; floor {escape(_floor_text(e))}): {escape(value)}")
        for s, f in e["per_skill"].items():
            v = "—" if f["value"] is None else f"{f['value']:.3f}" + (f" (R² {f['r2']:.2f})" if f["r2"] is not None else "")
            out.print(f"  {escape(s)}: {v}")
    for g in result.get("sample_complexity", []):
        setting = ", ".join(f"{k}={v}" for k, v in g.items() if k in result["axes"] and k != "data.n_samples")
        star = f"P* = {_p_star(g)}" if g["P_star"] is not None else f"P* {_p_star(g)}"
        limit = "" if g["threshold"] is None else f" (held-out error ≤ {g['threshold']:.3g})"
        out.print(f"sample complexity{' (' + escape(setting) + ')' if setting else ''}: {star} "
                  f"{_ci(g['ci95'], g.get('ci_level'))}{limit}")
    for note in result["notes"]:
        out.print(f"note: {escape(note)}", style="yellow")
