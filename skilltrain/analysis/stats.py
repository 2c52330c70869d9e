"""A/B statistics over arms × seeds: does an arm (a set of interventions) make skills learn faster than a baseline?

Input: `runs[arm][seed]` = that run's summary.json dict (None when the run is missing). Seeds are paired across
arms: the same seed is the same data and initialisation, so per-seed ratios cancel most of the seed-to-seed
variation. For each skill, for "all skills learned" and for the wall-clock time of a run, `compare_arms` reports

- per arm: how many runs were used, how many were censored (the skill was never learned within the budget,
  the run's `steps`), and the median and quartiles of the learn step;
- per arm other than the baseline: the paired speedup t_baseline / t_arm (> 1: the arm is faster), its median,
  a distribution-free confidence interval of that median (`median_interval`: order statistics, with the level it
  achieves at this many seeds, or none when too few seeds allow one), a Wilcoxon signed-rank p-value and a one-line
  verdict (`verdict`).

Intervals. Every interval skilltrain reports (speedups here, the benchmark's leaderboard, the sweep's exponents,
the sample complexity P*) comes from `median_interval` (or `mean_log_interval`, built on it): the interval between
two order statistics of n independent values covers their population median with a probability that depends only
on n (the binomial distribution with p = 1/2), whatever the values' distribution. It is exact, not asymptotic, so it
holds at the 3–10 seeds people run; the level is the one achieved at n (at 5 seeds the widest interval, [min, max],
has 93.75%, not 95%), and below `MIN_LEVEL` no interval is reported ("too few seeds for an interval"). A percentile
bootstrap, used before, cannot do this: over 3 seeds it has 10 distinct resamples and covers about 75%.

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


MIN_LEVEL = 0.85  # an interval whose achieved level is below this is not reported: 4 seeds (87.5%) is the fewest
CI_METHOD = "order statistics (distribution-free interval of a median; binomial, exact)"


def median(values) -> float | None:
    """The median of the finite values (the mean of the two middle ones for an even count, as np.median), or None
    when there are none. The one median of the package: never torch.median, which returns the lower middle value
    (with 2 values, the minimum)."""
    arr = np.asarray([v for v in np.asarray(values, dtype=float).ravel() if math.isfinite(v)], dtype=float) \
        if values is not None else np.empty(0)
    return float(np.median(arr)) if arr.size else None


def order_statistic_level(n: int, k: int) -> float:
    """The probability that [x_(k), x_(n+1−k)] (1-based order statistics of n independent values, k ≤ n/2 + 1/2)
    covers the population median: 1 − 2 · P(Binomial(n, 1/2) ≤ k − 1), for any continuous distribution (with ties,
    at least that)."""
    return float(1 - 2 * stats.binom.cdf(k - 1, n, 0.5))


def median_interval(values, confidence: float = 0.95, min_level: float = MIN_LEVEL) -> dict:
    """A distribution-free confidence interval for the median of the population the values are drawn from.

    The narrowest interval between order statistics, [x_(k), x_(n+1−k)], whose coverage is ≥ `confidence`; when
    even [min, max] falls short (fewer than 6 values for 95%), [min, max] with the level it does achieve, if that is
    ≥ `min_level`, else no interval. NaN values are left out; ±inf are allowed (a value known only to lie beyond a
    bound). Returns {"ci": [low, high] | None, "level": achieved coverage | None, "method", "n", "note": str | None}.
    """
    x = np.sort(np.asarray([v for v in np.asarray(values, dtype=float).ravel() if not math.isnan(v)], dtype=float))
    n = int(x.size)
    out: dict[str, Any] = {"ci": None, "level": None, "method": CI_METHOD, "n": n, "note": None}
    if n == 0:
        out["note"] = "no values"
        return out
    k = 1
    while k + 1 <= (n + 1) // 2 and order_statistic_level(n, k + 1) >= confidence:
        k += 1
    level = order_statistic_level(n, k)
    if level < min_level:
        out["note"] = ("too few seeds for an interval: one value" if n == 1 else
                       f"too few seeds for an interval: with n = {n} the widest interval, [min, max], covers the "
                       f"median with {level:.1%} only")
        return out
    out["ci"], out["level"] = [float(x[k - 1]), float(x[n - k])], level
    if level < confidence:
        out["note"] = (f"n = {n}: the widest interval, [min, max], covers the median with {level:.1%}, "
                       f"less than {confidence:.0%}")
    return out


def mean_log_interval(groups, confidence: float = 0.95, min_level: float = MIN_LEVEL) -> dict:
    """A confidence interval for exp(mean over groups of log(median of group g)), e.g. the geometric mean over
    tasks of per-task median speedups, from independent groups of positive values.

    Each group gets a `median_interval` of its logs at level confidence^(1/G); all G cover at once with probability
    ≥ the product of their achieved levels (the groups are independent), and then the mean of their lower (upper)
    ends bounds the mean of the log medians from below (above): that product is the level stated. Below `min_level`
    no interval. Returns the same keys as `median_interval`.
    """
    groups = [np.log(np.asarray(g, dtype=float)) for g in groups]
    out: dict[str, Any] = {"ci": None, "level": None, "method": f"{CI_METHOD}, per group at a joint level",
                           "n": [int(g.size) for g in groups], "note": None}
    if not groups:
        out["note"] = "no groups"
        return out
    each = [median_interval(g, confidence ** (1 / len(groups)), min_level=0.0) for g in groups]
    if any(e["ci"] is None for e in each):
        out["note"] = "too few seeds for an interval: a group has no values"
        return out
    level = float(np.prod([e["level"] for e in each]))
    if level < min_level:
        out["note"] = (f"too few seeds for an interval: {', '.join(map(str, out['n']))} seeds per group give a joint "
                       f"coverage of {level:.1%} only")
        return out
    out["ci"] = [math.exp(float(np.mean([e["ci"][0] for e in each]))), math.exp(float(np.mean([e["ci"][1] for e in each])))]
    out["level"] = level
    if level < confidence:
        out["note"] = (f"{', '.join(map(str, out['n']))} seeds per group: the joint coverage is {level:.1%}, "
                       f"less than {confidence:.0%}")
    return out


def interval_text(ci, level: float | None, digits: int = 2) -> str:
    """An interval as table text with the level it achieves: ` [1.20, 3.40] 93.8%`, or ` [too few seeds for a CI]`."""
    if not ci:
        return " [too few seeds for a CI]"
    achieved = f" {level:.1%}" if level is not None else ""
    return f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]{achieved}"


def verdict(speedup: Mapping) -> str:
    """One line for a speedup: "faster" / "slower" (its interval excludes 1), "no clear difference" (it includes 1),
    "not enough seeds to tell" (no interval), "no pairs to compare"."""
    if not speedup.get("n_pairs"):
        return "no pairs to compare"
    ci = speedup.get("ci")
    if ci is None:
        return "not enough seeds to tell"
    if ci[0] > 1:
        return "faster"
    if ci[1] < 1:
        return "slower"
    return "no clear difference"


CSV_COLUMNS = ["quantity", "skill", "arm", "n", "n_censored", "n_diverged", "median", "median_censored", "q1",
               "q1_censored", "q3", "q3_censored", "speedup_n_pairs", "speedup_n_arm_censored", "speedup_n_baseline_censored",
               "speedup_n_both_censored", "speedup_n_undefined", "speedup_median", "speedup_ci_low", "speedup_ci_high",
               "speedup_p_value", "speedup_ci_level", "speedup_verdict"]


def compare_arms(runs: Mapping[str, Mapping[Seed, Summary | None]], baseline: str, *, confidence: float = 0.95,
                 n_resamples: int | None = None, random_state: int | None = None) -> dict:
    """Compare every arm with `baseline` over paired seeds; the result is JSON-ready.

    A seed that some arm has but another lacks counts as missing in the arm that lacks it. Runs must agree on
    the skills and on the learn-step metric (name, threshold, split), else ValueError. The intervals are exact
    order statistics (`median_interval`), so the same runs always give the same intervals; `n_resamples` and
    `random_state` (the bootstrap's, before) are accepted and unused.

    Returns {"baseline", "arms", "seeds": {arm: [seeds used]}, "metric", "budget": {arm: max steps},
    "confidence", "skills": {skill: {arm: stats}}, "all_learned": {arm: stats}, "wall_seconds": {arm: stats},
    "learn_steps": {skill: {arm: [[step, censored], …]}}, "diverged": {arm: [seeds]},
    "excluded": [{"arm", "seed", "reason", ["message"]}]}, where stats is
    `{"n", "n_censored", "n_diverged", "median",
    "median_censored", "q1", "q1_censored", "q3", "q3_censored"}` plus, for every arm but the baseline,
    "speedup": {"n_pairs", "n_arm_censored", "n_baseline_censored", "n_both_censored", "n_undefined", "median",
    "ci": [low, high] | None, "ci_level" (the coverage it achieves), "ci_method", "ci_note", "p_value", "p_note",
    "verdict"}.
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
            out[arm]["speedup"] = _speedup(times[baseline], times[arm], confidence)
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


def paired_ratios(base: Times, arm: Times) -> tuple[list[tuple[tuple[float, bool], tuple[float, bool]]], int]:
    """(pairs, n_undefined): the (baseline, arm) times of the seeds both have, leaving out the pairs with a time of 0
    (a skill learned at step 0, before any update, has no speed: t_baseline / t_arm is undefined), and their count.
    The one rule for a learn step of 0, in comparisons and the benchmark alike."""
    pairs = [(base[s], arm[s]) for s in base if s in arm]
    defined = [(b, a) for b, a in pairs if b[0] > 0 and a[0] > 0]
    return defined, len(pairs) - len(defined)


def _speedup(base: Times, arm: Times, confidence: float) -> dict:
    """Paired speedup t_baseline / t_arm over the seeds both arms have: median, order-statistic CI, Wilcoxon p."""
    defined, undefined = paired_ratios(base, arm)
    ratio = np.array([b[0] / a[0] for b, a in defined])
    n = int(ratio.size)
    interval = median_interval(ratio, confidence)
    out: dict[str, Any] = {
        "n_pairs": n,
        "n_arm_censored": sum(a[1] and not b[1] for b, a in defined),
        "n_baseline_censored": sum(b[1] and not a[1] for b, a in defined),
        "n_both_censored": sum(b[1] and a[1] for b, a in defined),
        "n_undefined": undefined,
        "median": median(ratio),
        "ci": interval["ci"],
        "ci_level": interval["level"],
        "ci_method": interval["method"],
        "ci_note": interval["note"] if n else "no pairs",
        "p_value": None,
        "p_note": None,
    }
    log_ratio = np.log(ratio)
    if n < 2:
        out["p_note"] = f"n = {n} pairs < 2"
    elif np.all(log_ratio == 0):
        out["p_note"] = "all ratios are 1: no difference to test"
    else:
        out["p_value"] = float(stats.wilcoxon(log_ratio).pvalue)  # zero differences (ratio 1) are dropped
        if out["p_value"] and n < 6:
            out["p_note"] = f"n = {n} pairs: the smallest p-value {n} pairs allow is {2 ** (1 - n):.3g}"
    out["verdict"] = verdict(out)
    return out


def tradeoffs(result: Mapping) -> dict:
    """Per arm but the baseline, what its slowest skill gains against what its most-slowed skill loses, from a
    `compare_arms` result: the two axes of a learning-speed goal such as "every skill learned k× sooner, none more
    than s× later".

    Returns {arm: {"all": the speedup until every skill is learned (the paired median, "ci", "ci_level", "censored"),
    "most_slowed": the skill with the smallest median speedup, "slowdown": 1 / that median (t_arm / t_baseline of
    that skill; > 1: learned later than under the baseline, < 1: every skill sooner), "slowdown_censored", "pareto":
    bool}}. Censored: the number rests on censored pairs (a run that never learned a skill enters at its budget, which
    moves a ratio toward 1: the true value lies further from 1). An arm is on the Pareto front when no other arm has
    an all-skills speedup at least as large and a slowdown at most as large, one of them strictly. An arm without
    pairs (no speedup) is left out."""
    def censored(sp: Mapping) -> bool:
        return bool(sp["n_arm_censored"] + sp["n_baseline_censored"] + sp["n_both_censored"])

    out = {}
    for arm in result["arms"][1:]:
        everything = result["all_learned"][arm]["speedup"]
        per_skill = {skill: by_arm[arm]["speedup"] for skill, by_arm in result["skills"].items()}
        per_skill = {skill: sp for skill, sp in per_skill.items() if sp["median"]}
        if not everything["median"] or not per_skill:
            continue
        slowed = min(per_skill, key=lambda skill: per_skill[skill]["median"])
        out[arm] = {"all": {**{k: everything[k] for k in ("median", "ci", "ci_level")}, "censored": censored(everything)},
                    "most_slowed": slowed, "slowdown": 1 / per_skill[slowed]["median"],
                    "slowdown_censored": censored(per_skill[slowed])}
    for arm, t in out.items():
        x, y = t["all"]["median"], t["slowdown"]
        t["pareto"] = not any(o["all"]["median"] >= x and o["slowdown"] <= y and (o["all"]["median"] > x or o["slowdown"] < y)
                              for other, o in out.items() if other != arm)
    return out


def tradeoff_markdown(trades: Mapping, baseline: str) -> str:
    """`tradeoffs` as a Markdown section: one row per arm, the Pareto front marked."""
    lines = ["", f"## Trade-off: every skill's speedup against the most-slowed skill's slowdown (vs {baseline})", "",
             "Speedup: t_baseline / t_arm until every skill is learned (paired median [CI] level). Slowdown: t_arm / "
             "t_baseline of the skill whose median speedup is the smallest (< 1: every skill learned sooner). Pareto: "
             "no other arm is at least as fast for every skill with at most the same slowdown. † rests on censored "
             "pairs (a skill not learned within a run's budget): the true value lies further from 1.", "",
             "| arm | every skill: speedup [CI] level | most slowed skill | its slowdown | Pareto front |",
             "|---|---|---|---|---|"]
    for arm, t in trades.items():
        every = f"{t['all']['median']:.2f}×{'†' * t['all']['censored']}" + interval_text(t["all"]["ci"], t["all"]["ci_level"])
        slowdown = f"{t['slowdown']:.2f}×{'†' * t['slowdown_censored']}"
        lines.append(f"| {arm} | {every} | {t['most_slowed']} | {slowdown} | {'yes' if t['pareto'] else ''} |")
    return "\n".join(lines) + "\n"


# ---- rendering -------------------------------------------------------------------------------------------------

def _rows(result: Mapping) -> list[tuple[str, str, str, dict]]:
    """(quantity, skill, arm, stats) for every table row, skills first, then all-learned, then wall time."""
    rows = [("learn_step", skill, arm, by_arm[arm]) for skill, by_arm in result["skills"].items() for arm in result["arms"]]
    rows += [("all_learned_step", "", arm, result["all_learned"][arm]) for arm in result["arms"]]
    rows += [("wall_seconds", "", arm, result["wall_seconds"][arm]) for arm in result["arms"]]
    return rows


def speedup_cell(sp: Mapping) -> str:
    """`2.10× [1.50, 3.00] 93.8%` (the interval and the level it achieves), `2.10× [no CI]`; † when pairs were censored."""
    dagger = "†" if sp["n_arm_censored"] + sp["n_baseline_censored"] + sp["n_both_censored"] else ""
    ci = "no CI" if sp["ci"] is None else f"{sp['ci'][0]:.2f}, {sp['ci'][1]:.2f}"
    level = f" {sp['ci_level']:.1%}" if sp.get("ci_level") is not None else ""
    return f"{sp['median']:.2f}×{dagger} [{ci}]{level}"


def interval_notes(result: Mapping) -> list[str]:
    """The interval method and level, and every speedup's warning (too few seeds, a level below the nominal one)."""
    level = f"{result['confidence']:.0%}"
    notes = [f"Speedup interval: {CI_METHOD}; nominal level {level}, the level achieved at each row's number of "
             f"pairs shown beside it (at 5 pairs [min, max] has 93.8%); fewer than 4 pairs: no interval (too few seeds "
             f"for one), and the verdict is \"not enough seeds to tell\"."]
    warned = {}
    for quantity, skill, arm, st in _rows(result):
        sp = st.get("speedup")
        for note in (sp or {}).get("ci_note"), (sp or {}).get("p_note"):
            if note:
                warned.setdefault(note, []).append(f"{skill or quantity.replace('_', ' ')} · {arm}")
    notes += [f"Warning ({', '.join(where)}): {note}." for note, where in warned.items()]
    return notes


def to_markdown(result: Mapping) -> str:
    """The comparison as a Markdown table with a caption-ready note, one row per quantity × arm.

    Columns: median [IQR] (a quantile that depends on a censored run shows as >budget), censored/used runs,
    speedup × [CI] level against the baseline (a † marks censored pairs), the Wilcoxon p-value and the verdict;
    the notes give the interval's method and every warning.
    """
    baseline, level = result["baseline"], f"{result['confidence']:.0%}"
    lines = [f"| quantity | arm | median [IQR] | censored | speedup vs {baseline} [CI] level | p | verdict |",
             "|---|---|---|---|---|---|---|"]
    for quantity, skill, arm, st in _rows(result):
        label = {"learn_step": f"{skill} learn step", "all_learned_step": "all skills learned",
                 "wall_seconds": "wall-clock s"}[quantity]
        iqr = "{} [{}, {}]".format(*(_fmt(st, q, quantity, result["budget"][arm]) for q in ("median", "q1", "q3")))
        speedup, p, says = "—", "—", "—"
        if "speedup" in st and st["speedup"]["median"] is not None:
            sp = st["speedup"]
            speedup = speedup_cell(sp)
            p = "—" if sp["p_value"] is None else f"{sp['p_value']:.2g}"
            says = sp.get("verdict") or verdict(sp)
        arm_label = f"{arm} (baseline)" if arm == baseline else arm
        lines.append(f"| {label} | {arm_label} | {iqr} | {censored_cell(st)} | {speedup} | {p} | {says} |")
    notes = [
        "Median [IQR] over seeds; a run that never learned within its budget (in steps) enters at the budget and is "
        "counted as censored; a quantile that depends on such runs is shown as >budget.",
        f"Speedup: t_{baseline} / t_arm per paired seed (pairs with a time of 0 left out), its median and a "
        f"confidence interval of that median (nominal {level}); p: two-sided Wilcoxon signed-rank test on log "
        "speedups; † some pairs censored (the ratio is then moved toward 1). Verdict: faster / slower when the "
        "interval excludes 1, no clear difference when it includes 1.",
        *interval_notes(result),
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
                                                     "n_both_censored", "n_undefined", "median", "p_value",
                                                     "ci_level", "verdict")},
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
