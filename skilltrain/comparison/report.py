"""A comparison's statistics, tables and plots, from its runs' directories, and the console table."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from skilltrain.analysis.stats import median
from skilltrain.comparison.plan import Plan, read_summary
from skilltrain.errors import UserError


def analyse(plan: Plan) -> dict:
    """Statistics, tables and plots from the runs' directories; returns comparison.json's content."""
    from skilltrain.analysis import plots
    from skilltrain.analysis.representations import comparison_markdown, plot_comparison
    from skilltrain.analysis.stats import compare_arms, to_csv, to_markdown, tradeoff_markdown, tradeoffs
    from skilltrain.files import atomic_write_text
    from skilltrain.report import write_json

    summaries = {arm: {run.seed: read_summary(run.run_dir) for run in plan.runs if run.arm == arm} for arm in plan.arms}
    notes = {(run.arm, run.seed): run.note for run in plan.runs if run.state == "failed"}
    try:
        result = compare_arms(summaries, plan.settings.baseline)
    except ValueError as e:  # runs of this directory measured different skills or metrics (another version's runs)
        raise UserError(f"compare: {e}; rerun them in a new compare.out_dir") from None
    for entry in result["excluded"]:
        if (entry["arm"], entry["seed"]) in notes and entry["reason"] == "missing":
            entry["reason"], entry["message"] = "failed", notes[(entry["arm"], entry["seed"])]
    skills = list(result["skills"])
    result.update({"recipe": plan.recipe, "arm_specs": plan.arms, "seeds_planned": plan.seeds,
                   "runs": {f"{r.arm}/seed{r.seed}": str(r.run_dir) for r in plan.runs}})
    fits = theory_fits(plan, {arm: [s for s in seeds if s not in result["diverged"][arm]]
                              for arm, seeds in result["seeds"].items()})  # a diverged run's curve is cut short
    if fits:
        result["theory_fit"] = fits
    representations = _representations(plan, result["seeds"])
    if representations:
        result["representations"] = representations
    trades = tradeoffs(result)
    if trades:
        result["tradeoffs"] = trades
    out = plan.directory
    write_json(out / "comparison.json", result)
    atomic_write_text(out / "comparison.csv", to_csv(result))
    metric = result["metric"]
    measured = (f"Learn step: first step with {metric['split']} {metric['name']} "
                f"{'≤' if metric['name'] == 'loss' else '≥'} {metric['threshold']}." if metric else "No run finished.")
    header = f"# {plan.recipe}: {', '.join(plan.arms)} over seeds {', '.join(map(str, plan.seeds))}\n\n{measured}\n\n"
    atomic_write_text(out / "comparison.md", header + to_markdown(result) + (theory_fit_markdown(fits) if fits else "")
                      + (comparison_markdown(representations) if representations else "")
                      + (tradeoff_markdown(trades, result["baseline"]) if trades else ""))
    if representations:
        plot_comparison(out / "representations.png", representations)
    if metric and skills:
        # curves of completed runs (a diverged run's curve is cut short); learn steps of every counted run
        used = {arm: {s: summaries[arm][s] for s in seeds if s not in result["diverged"][arm]}
                for arm, seeds in result["seeds"].items()}
        curves = {arm: [plots.read_curves(Path(plan.directory / arm / f"seed{s}"), skills, metric["name"], metric["split"])
                        for s in runs] for arm, runs in used.items()}
        plots.curves_by_arm(out / "curves.png", curves, skills, metric["name"], metric["threshold"])
        plots.learn_step_distributions(out / "learn_steps.png", result)
        plots.skill_timeline(out / "timeline.png", _median_windows(used, skills), skills)
    if trades:
        plots.tradeoff(out / "tradeoff.png", trades, result["baseline"])
    return result


def _representations(plan: Plan, seeds: dict) -> dict:
    """Across the runs that analysed their representations (analysis.representations=true): cross-seed and
    arm-vs-baseline CKA, and the probe tables (skilltrain.analysis.representations.compare_representations)."""
    from skilltrain.analysis.representations import REPORT_FILE, compare_representations

    analysed = {arm: [s for s in used if (plan.directory / arm / f"seed{s}" / REPORT_FILE).is_file()]
                for arm, used in seeds.items()}
    if not any(analysed.values()):
        return {}
    try:
        return compare_representations(plan.directory, analysed, plan.settings.baseline)
    except Exception as e:  # the runs and their statistics stand; say why this part is missing
        print(f"note: analysis.representations: no comparison of representations ({type(e).__name__}: {e})",
              file=sys.stderr)
        return {}


def theory_fits(plan: Plan, seeds: dict) -> dict:
    """Per arm, over the counted runs that have a theory_fit.json (analysis.theory=resource): the Resource model's
    fitted η_eff and N0 (median and quartiles), how many fits determined each, and the median R² per skill. Does an
    intervention change the budget, or the waste?"""
    import json

    from skilltrain.theory.fit import FIT_FILE

    fits = {}
    for arm, used in seeds.items():
        found = []
        for seed in used:
            path = plan.directory / arm / f"seed{seed}" / FIT_FILE
            if path.is_file():
                found.append(json.loads(path.read_text()))
        if not found:
            continue
        entry = {"n": len(found), "n_runs": len(used)}
        for name in ("eta", "n0"):
            values = [f[name]["value"] for f in found]
            q1, q3 = np.percentile(values, [25, 75])
            entry[name] = {"median": median(values), "q1": float(q1), "q3": float(q3),
                           "n_determined": sum(f[name]["determined"] for f in found)}
        skills = list(found[0]["r2"])
        entry["r2_median"] = {s: median([f["r2"][s] for f in found if f["r2"].get(s) is not None]) for s in skills}
        fits[arm] = entry
    return fits


def theory_fit_markdown(fits: dict) -> str:
    lines = ["", "## Resource model fitted to each run (analysis.theory=resource)", "",
             "η_eff: the update budget per step; N0: wasted resources. Median [quartiles] over the arm's runs; "
             "'determined': runs whose profile interval for the parameter spans at most a decade.", "",
             "| arm | runs | η_eff | determined | N0 | determined | median R² per skill |", "|---|---|---|---|---|---|---|"]
    for arm, f in fits.items():
        r2 = _r2_text(f["r2_median"])
        cells = [f"{f[k]['median']:.3g} [{f[k]['q1']:.3g}, {f[k]['q3']:.3g}] | {f[k]['n_determined']}/{f['n']}"
                 for k in ("eta", "n0")]
        lines.append(f"| {arm} | {f['n']}/{f['n_runs']} | {cells[0]} | {cells[1]} | {r2} |")
    return "\n".join(lines) + "\n"


def _r2_text(r2_median: dict) -> str:
    return ", ".join(f"{s} {'—' if v is None else format(v, '.2f')}" for s, v in r2_median.items())


def _median_windows(used: dict, skills: list[str]) -> dict:
    """Per arm and skill: (median onset, median completion) over the seeds that learned it."""
    windows = {}
    for arm, runs in used.items():
        windows[arm] = {}
        for skill in skills:
            pairs = [(s["domino"]["onset"][skill], s["domino"]["completion"][skill]) for s in runs.values()
                     if s.get("domino") and s["domino"]["completion"][skill] is not None]
            windows[arm][skill] = (median([p[0] for p in pairs]), median([p[1] for p in pairs]))
    return windows


def print_comparison(result: dict, directory: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    from skilltrain.analysis.stats import censored_cell, interval_notes, run_notes, speedup_cell, verdict
    from skilltrain.report import console as make_console

    base = result["baseline"]
    table = Table(title=escape(f"{result['recipe']}: speedup vs {base} (paired over seeds; median [CI] level, Wilcoxon p)"))
    for column in ("skill", "arm", "median learn step [IQR]", "not learned", "speedup [CI] level", "p", "verdict"):
        table.add_column(column, justify="left" if column in ("skill", "arm") else "right")

    def fmt(v):
        return "—" if v is None else f"{v:.0f}"

    rows = [(skill, by_arm) for skill, by_arm in result["skills"].items()] + [("all skills", result["all_learned"])]
    for skill, by_arm in rows:
        for arm in result["arms"]:
            st = by_arm[arm]
            median = ">budget" if st.get("median_censored") else fmt(st["median"])
            sp = st.get("speedup")
            speed = "" if sp is None or sp["median"] is None else speedup_cell(sp)
            p = "" if sp is None or sp["p_value"] is None else f"{sp['p_value']:.3g}"
            says = "" if sp is None else sp.get("verdict") or verdict(sp)
            iqr = f"{median} [{fmt(st['q1'])}, {fmt(st['q3'])}]"
            table.add_row(escape(skill), escape(arm), iqr, censored_cell(st), escape(speed), p, says)
    console = make_console()
    console.print(table)
    for arm, f in result.get("theory_fit", {}).items():
        console.print(f"Resource model fit, {escape(arm)}: η_eff {f['eta']['median']:.3g} [{f['eta']['q1']:.3g}, "
                      f"{f['eta']['q3']:.3g}], N0 {f['n0']['median']:.3g} [{f['n0']['q1']:.3g}, {f['n0']['q3']:.3g}] "
                      f"(median \\[quartiles] of {f['n']} runs; determined in {f['eta']['n_determined']} and "
                      f"{f['n0']['n_determined']} of them; median R² "
                      f"{_r2_text(f['r2_median'])})")
    for note in interval_notes(result)[:1]:
        console.print(escape(note))
    for note in interval_notes(result)[1:] + run_notes(result):
        console.print(escape(note), style="yellow")
    extra = ", representations.png" if result.get("representations") else ""
    extra += ", tradeoff.png" if result.get("tradeoffs") else ""
    console.print(f"tables: {directory}/comparison.md · plots: curves.png, learn_steps.png, timeline.png{extra}")
