"""A/B statistics over arms × seeds: does an arm (a set of interventions) make skills learn faster than a baseline?

Input: `runs[arm][seed]` = that run's summary.json dict (None when the run is missing). Seeds are paired across
arms: the same seed is the same data and initialisation, so per-seed ratios cancel most of the seed-to-seed
variation. For each skill, for "all skills learned" and for the wall-clock time of a run, `compare_arms` reports

- per arm: how many runs were used, how many were censored (the skill was never learned within the budget,
  the run's `steps`), and the median and quartiles of the learn step;
- per arm other than the baseline: the paired speedup t_baseline / t_arm (> 1: the arm is faster), its median,
  a percentile-bootstrap confidence interval of that median, and a Wilcoxon signed-rank p-value.

Censoring. A run that never learns a skill enters at its budget B (a lower bound on its true learn step) and is
counted in `n_censored`. Censored runs are the largest values, so a quantile is exact when it depends only on
learned runs; one that depends on a censored run (for the median: more than half censored, or half with an even
count) is reported as null with `<q>_censored: true` — it is only known to be ≥ B. In a speedup pair, putting
B for a censored time moves the ratio toward 1, never past it (arm censored: the true ratio is ≤ t_b / B ≤ 1;
baseline censored: ≥ B / t_a ≥ 1; both censored: B_b / B_a, 1 with equal budgets), so the estimate is
conservative; such pairs are counted (`n_arm_censored`, `n_baseline_censored`, `n_both_censored`).

Diverged runs count: a run that diverged learned the skills it learned before diverging, at their steps, and
never learns the others, which enter censored at its budget (its `max_steps`), like a run that ran out of steps.
Leaving them out would measure an unstable arm only on the seeds where it survived, and flatter it. They are
counted per arm (`n_diverged`, `diverged`). Wall-clock time is compared over completed runs only (a diverged run's
time is that of a shorter run). Runs that stopped early (resumable), crashed or are missing are excluded from
every statistic and listed under `excluded` with the reason.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import stats

Summary = Mapping[str, Any]
Seed = int | str
Times = dict[Seed, tuple[float, bool]]  # seed -> (time, censored)

QUANTILES = {"median": 0.5, "q1": 0.25, "q3": 0.75}


def median(values) -> float | None:
    """The median of the finite values (the mean of the two middle ones for an even count, as np.median), or None
    when there are none. The one median of the package: never torch.median, which returns the lower middle value
    (with 2 values, the minimum)."""
    arr = np.asarray([v for v in np.asarray(values, dtype=float).ravel() if math.isfinite(v)], dtype=float) \
        if values is not None else np.empty(0)
    return float(np.median(arr)) if arr.size else None


CSV_COLUMNS = ["quantity", "skill", "arm", "n", "n_censored", "n_diverged", "median", "median_censored", "q1",
               "q1_censored", "q3", "q3_censored", "speedup_n_pairs", "speedup_n_arm_censored", "speedup_n_baseline_censored",
               "speedup_n_both_censored", "speedup_n_undefined", "speedup_median", "speedup_ci_low", "speedup_ci_high",
               "speedup_p_value"]


def compare_arms(runs: Mapping[str, Mapping[Seed, Summary | None]], baseline: str, *, confidence: float = 0.95,
                 n_resamples: int = 9999, random_state: int = 0) -> dict:
    """Compare every arm with `baseline` over paired seeds; the result is JSON-ready.

    A seed that some arm has but another lacks counts as missing in the arm that lacks it. Runs must agree on
    the skills and on the learn-step metric (name, threshold, split), else ValueError. `random_state` seeds
    the bootstrap, so the same runs always give the same intervals.

    Returns {"baseline", "arms", "seeds": {arm: [seeds used]}, "metric", "budget": {arm: max steps},
    "confidence", "skills": {skill: {arm: stats}}, "all_learned": {arm: stats}, "wall_seconds": {arm: stats},
    "learn_steps": {skill: {arm: [[step, censored], …]}}, "diverged": {arm: [seeds]},
    "excluded": [{"arm", "seed", "reason", ["message"]}]}, where stats is
    `{"n", "n_censored", "n_diverged", "median",
    "median_censored", "q1", "q1_censored", "q3", "q3_censored"}` plus, for every arm but the baseline,
    "speedup": {"n_pairs", "n_arm_censored", "n_baseline_censored", "n_both_censored", "n_undefined", "median",
    "ci": [low, high] | None, "ci_note", "p_value", "p_note"}.
    """
    if baseline not in runs:
        raise ValueError(f"baseline arm {baseline!r} is not among the arms {list(runs)}")
    arms = [baseline, *(a for a in runs if a != baseline)]
    seeds = sorted({s for by_seed in runs.values() for s in by_seed}, key=lambda s: (isinstance(s, str), s))
    used: dict[str, dict[Seed, Summary]] = {arm: {} for arm in arms}
    excluded = []
    for arm in arms:
        for seed in seeds:
            summary = runs[arm].get(seed)
            if summary is None:
                excluded.append({"arm": arm, "seed": seed, "reason": "missing"})
            elif summary["status"] not in COUNTED:
                excluded.append({"arm": arm, "seed": seed, "reason": summary["status"],
                                 **({"message": summary["message"]} if summary.get("message") else {})})
            else:
                used[arm][seed] = summary
    skills, metric = _common_setup(used)
    completed = {arm: {seed: s for seed, s in by_seed.items() if s["status"] == "completed"} for arm, by_seed in used.items()}

    def compare(time: Callable[[Summary], tuple[float, bool]], among=used) -> dict[str, dict]:
        times = {arm: {seed: time(s) for seed, s in among[arm].items()} for arm in arms}
        out = {arm: {**_distribution(times[arm]),
                     "n_diverged": sum(s["status"] == "diverged" for s in among[arm].values())} for arm in arms}
        for arm in arms[1:]:
            out[arm]["speedup"] = _speedup(times[baseline], times[arm], confidence, n_resamples, random_state)
        return out

    return {
        "baseline": baseline,
        "arms": arms,
        "seeds": {arm: list(used[arm]) for arm in arms},
        "metric": metric,
        "budget": {arm: max((budget(s) for s in used[arm].values()), default=None) for arm in arms},
        "confidence": confidence,
        "skills": {skill: compare(lambda s, k=skill: censored_at_budget(s["skills"][k]["learned_step"], budget(s)))
                   for skill in skills},
        "all_learned": compare(lambda s: censored_at_budget(s["all_learned_step"], budget(s))),
        "wall_seconds": compare(lambda s: (float(s["wall_seconds"]), False), among=completed),
        "learn_steps": {skill: {arm: [censored_at_budget(s["skills"][skill]["learned_step"], budget(s))
                                      for s in used[arm].values()] for arm in arms} for skill in skills},
        "diverged": {arm: [seed for seed, s in used[arm].items() if s["status"] == "diverged"] for arm in arms},
        "excluded": excluded,
    }


COUNTED = ("completed", "diverged")  # statuses whose runs enter the statistics


def budget(summary: Summary) -> int:
    """The steps a run was given (`max_steps`; `steps` in summaries written before it was recorded)."""
    return summary.get("max_steps") or summary["steps"]


def _common_setup(used: Mapping[str, Mapping[Seed, Summary]]) -> tuple[list[str], dict | None]:
    """The skills and metric every used run shares; learn steps of different skills or metrics do not compare."""
    summaries = [s for by_seed in used.values() for s in by_seed.values()]
    if not summaries:
        return [], None
    skills, metric = list(summaries[0]["skills"]), dict(summaries[0]["metric"])
    for s in summaries[1:]:
        if list(s["skills"]) != skills:
            raise ValueError(f"runs disagree on the skills: {skills} vs {list(s['skills'])} (seed {s['seed']})")
        other = dict(s["metric"])
        shared = set(metric) & set(other)  # (summaries written before metric.min_samples existed lack it)
        if any(metric[k] != other[k] for k in shared):
            raise ValueError(f"runs disagree on the learn-step metric: {metric} vs {other} (seed {s['seed']})")
    return skills, metric


def censored_at_budget(step: int | None, budget: int) -> tuple[float, bool]:
    """(time, censored): a skill never learned enters at the budget, flagged censored."""
    return (float(budget), True) if step is None else (float(step), False)


def _distribution(times: Times) -> dict:
    """n, censored count, and the quartiles of one arm's times; a quantile that depends on a censored run is null."""
    t = np.array([v[0] for v in times.values()])
    censored = np.array([v[1] for v in times.values()], dtype=bool)
    order = np.lexsort((censored, t))  # by time; on a tie the learned run first (censored ones are truly later)
    t, censored = t[order], censored[order]
    out: dict[str, Any] = {"n": int(t.size), "n_censored": int(censored.sum())}
    for name, q in QUANTILES.items():
        if t.size == 0:
            out[name], out[f"{name}_censored"] = None, False
            continue
        h = (t.size - 1) * q  # np.quantile's default (linear) interpolates order statistics floor(h) and ceil(h)
        is_censored = bool(censored[math.floor(h)] or censored[math.ceil(h)])
        out[name] = None if is_censored else float(np.quantile(t, q))
        out[f"{name}_censored"] = is_censored
    return out


def _min_pairs_for_ci(confidence: float) -> int:
    """The smallest n whose sample range covers the median with probability ≥ `confidence` (1 − 2^(1−n)).

    A percentile-bootstrap interval of a median lies within the sample's range, so with fewer pairs it cannot
    reach its nominal coverage (6 for 95%).
    """
    return math.ceil(1 - math.log2(1 - confidence))


def _speedup(base: Times, arm: Times, confidence: float, n_resamples: int, random_state: int) -> dict:
    """Paired speedup t_baseline / t_arm over the seeds both arms have: median, bootstrap CI, Wilcoxon p."""
    pairs = [(base[s], arm[s]) for s in base if s in arm]
    defined = [(b, a) for b, a in pairs if b[0] > 0 and a[0] > 0]  # learned at step 0 (before any update): no speed
    tb = np.array([b[0] for b, _ in defined])
    ta = np.array([a[0] for _, a in defined])
    ratio = tb / ta
    n = int(ratio.size)
    out: dict[str, Any] = {
        "n_pairs": n,
        "n_arm_censored": sum(a[1] and not b[1] for b, a in defined),
        "n_baseline_censored": sum(b[1] and not a[1] for b, a in defined),
        "n_both_censored": sum(b[1] and a[1] for b, a in defined),
        "n_undefined": len(pairs) - n,
        "median": float(np.median(ratio)) if n else None,
        "ci": None,
        "ci_note": None,
        "p_value": None,
        "p_note": None,
    }
    min_n = _min_pairs_for_ci(confidence)
    if n < 3:
        out["ci_note"] = f"n = {n} pairs < 3: too few to resample"
    elif np.all(ratio == ratio[0]):
        out["ci_note"] = "all ratios are equal: nothing to resample"
    else:
        res = stats.bootstrap((tb, ta), lambda b, a, axis: np.median(b / a, axis=axis), paired=True, vectorized=True,
                              n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                              rng=np.random.default_rng(random_state))
        out["ci"] = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
        if n < min_n:  # reported, with the caveat: users run 5 seeds; the interval is then the sample's range or less
            out["ci_note"] = (f"n = {n} pairs < {min_n}: a bootstrap interval of a median is within the sample range "
                              f"and undercovers; read it as approximate")
    log_ratio = np.log(ratio)
    if n < 2:
        out["p_note"] = f"n = {n} pairs < 2"
    elif np.all(log_ratio == 0):
        out["p_note"] = "all ratios are 1: no difference to test"
    else:
        out["p_value"] = float(stats.wilcoxon(log_ratio).pvalue)  # zero differences (ratio 1) are dropped
    return out


# ---- rendering -------------------------------------------------------------------------------------------------

def _rows(result: Mapping) -> list[tuple[str, str, str, dict]]:
    """(quantity, skill, arm, stats) for every table row, skills first, then all-learned, then wall time."""
    rows = [("learn_step", skill, arm, by_arm[arm]) for skill, by_arm in result["skills"].items() for arm in result["arms"]]
    rows += [("all_learned_step", "", arm, result["all_learned"][arm]) for arm in result["arms"]]
    rows += [("wall_seconds", "", arm, result["wall_seconds"][arm]) for arm in result["arms"]]
    return rows


def to_markdown(result: Mapping) -> str:
    """The comparison as a Markdown table with a caption-ready note, one row per quantity × arm.

    Columns: median [IQR] (a quantile that depends on a censored run shows as >budget), censored/used runs,
    speedup × [CI] against the baseline (a † marks censored pairs), and the Wilcoxon p-value.
    """
    baseline, level = result["baseline"], f"{result['confidence']:.0%}"
    lines = [f"| quantity | arm | median [IQR] | censored | speedup vs {baseline} [{level} CI] | p |",
             "|---|---|---|---|---|---|"]
    for quantity, skill, arm, st in _rows(result):
        label = {"learn_step": f"{skill} learn step", "all_learned_step": "all skills learned",
                 "wall_seconds": "wall-clock s"}[quantity]
        iqr = "{} [{}, {}]".format(*(_fmt(st, q, quantity, result["budget"][arm]) for q in ("median", "q1", "q3")))
        speedup, p = "—", "—"
        if "speedup" in st and st["speedup"]["median"] is not None:
            sp = st["speedup"]
            ci = "—" if sp["ci"] is None else f"{sp['ci'][0]:.2f}, {sp['ci'][1]:.2f}"
            dagger = "†" if sp["n_arm_censored"] + sp["n_baseline_censored"] + sp["n_both_censored"] else ""
            speedup = f"{sp['median']:.2f}×{dagger} [{ci}]"
            p = "—" if sp["p_value"] is None else f"{sp['p_value']:.2g}"
        arm_label = f"{arm} (baseline)" if arm == baseline else arm
        lines.append(f"| {label} | {arm_label} | {iqr} | {censored_cell(st)} | {speedup} | {p} |")
    notes = [
        "Median [IQR] over seeds; a run that never learned within its budget (in steps) enters at the budget and is "
        "counted as censored; a quantile that depends on such runs is shown as >budget.",
        f"Speedup: t_{baseline} / t_arm per paired seed, median with a {level} percentile-bootstrap CI; p: two-sided "
        "Wilcoxon signed-rank test on log speedups; † some pairs censored (the ratio is then moved toward 1).",
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(notes + run_notes(result)) + "\n"


def censored_cell(st: Mapping) -> str:
    """`censored/runs`, and how many of those runs diverged."""
    return f"{st['n_censored']}/{st['n']}" + (f" ({st['n_diverged']} diverged)" if st.get("n_diverged") else "")


def run_notes(result: Mapping) -> list[str]:
    """The runs that diverged (counted) and those excluded (not counted), with their reasons: one line each."""
    notes = []
    diverged = [f"{arm} seeds {', '.join(map(str, seeds))}" for arm, seeds in result.get("diverged", {}).items() if seeds]
    if diverged:
        notes.append("Diverged (counted: skills not learned before diverging are censored at the budget; not in "
                     "wall-clock): " + "; ".join(diverged) + ".")
    if result["excluded"]:
        notes.append("Excluded (not in any statistic): " + "; ".join(
            f"{e['arm']} seed {e['seed']} ({e['reason']}{' — ' + e['message'] if e.get('message') else ''})"
            for e in result["excluded"]) + ".")
    return notes


def _fmt(st: Mapping, name: str, quantity: str, budget: int | None) -> str:
    """One quantile of a stats entry as table text: >budget when censored, — when there were no runs."""
    x = st[name]
    if st[f"{name}_censored"]:
        return f">{budget}"
    if x is None:
        return "—"
    if quantity == "wall_seconds":
        return f"{x:.3g}"
    return f"{x:.0f}" if x == int(x) else f"{x:.1f}"


def csv_rows(result: Mapping) -> list[dict[str, Any]]:
    """The comparison as flat rows with `CSV_COLUMNS` (one per quantity × skill × arm; empty speedup for the baseline)."""
    out = []
    for quantity, skill, arm, st in _rows(result):
        sp = st.get("speedup") or {}
        ci = sp.get("ci") or [None, None]
        row = {"quantity": quantity, "skill": skill, "arm": arm, **{k: v for k, v in st.items() if k != "speedup"},
               **{f"speedup_{k}": sp.get(k) for k in ("n_pairs", "n_arm_censored", "n_baseline_censored",
                                                     "n_both_censored", "n_undefined", "median", "p_value")},
               "speedup_ci_low": ci[0], "speedup_ci_high": ci[1]}
        out.append({c: row[c] for c in CSV_COLUMNS})
    return out


def to_csv(result: Mapping) -> str:
    """`csv_rows` as CSV text with a header (None is written as an empty field)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(result))
    return buf.getvalue()
