"""The coverage of skilltrain's confidence intervals, measured by Monte Carlo at the seed counts people run, and what
a leaderboard says of them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from skilltrain.analysis import stats
from skilltrain.analysis.stats import compare_arms, median_interval

ACC = {"name": "acc", "threshold": 0.9, "split": "train"}
TRIALS = 400  # through compare_arms (~10 ms a call): enough to see a 95% claim that covers 80%; seeded, so repeatable


def summary(seed: int, step: float) -> dict:
    return {"recipe": "synthetic", "seed": seed, "interventions": [], "steps": 10**9, "max_steps": 10**9,
            "wall_seconds": 1.0, "samples_per_second": 1.0,
            "skills": {"a": {"frequency": 1.0, "learned_step": step, "final_loss": 0.0, "final_metric": 1.0}},
            "all_learned_step": step, "learn_order": ["a"], "status": "completed", "metric": dict(ACC), "run_id": "x"}


@pytest.mark.parametrize("n", [5])
def test_speedup_interval_covers_the_true_median_at_its_stated_level(n):
    """Paired learn steps whose true median speedup is 2: the fraction of comparisons whose interval contains 2 must
    be at least the level the comparison states (its achieved level; the nominal 95% where none is stated) minus 2
    points. The percentile bootstrap used before states 95% over 5 seeds and covers 92%."""
    rng = np.random.default_rng(n)
    covered, stated = 0, []
    for _ in range(TRIALS):
        base = rng.lognormal(np.log(1000), 0.3, n)
        arm = base / (2 * rng.lognormal(0, 0.3, n))  # log speedup ~ N(log 2, 0.3²): median 2
        result = compare_arms({"base": {s: summary(s, float(b)) for s, b in enumerate(base)},
                               "arm": {s: summary(s, float(a)) for s, a in enumerate(arm)}}, "base",
                              n_resamples=999)
        sp = result["skills"]["a"]["arm"]["speedup"]
        if sp["ci"] is None:
            assert n < 4 and "too few seeds" in sp["ci_note"]
            continue
        stated.append(sp.get("ci_level", result["confidence"]))
        covered += sp["ci"][0] <= 2 <= sp["ci"][1]
    if stated:
        assert len(stated) == TRIALS and len(set(stated)) == 1
        assert covered / TRIALS >= stated[0] - 0.02, f"coverage {covered / TRIALS:.3f} < stated {stated[0]:.3f}"


@pytest.mark.parametrize("n", [3, 5, 10])
def test_median_interval_coverage_matches_its_level(n):
    """The method itself, asked for an interval at any level (min_level=0), over a skewed distribution: coverage
    ≥ level − 2 points, and the level is the exact binomial one (75% at 3, 93.75% at 5, 97.85% at 10)."""
    rng = np.random.default_rng(100 + n)
    x = rng.exponential(1.0, size=(4000, n))  # standard error of a coverage near 0.95: 0.0035
    truth = math.log(2)  # the exponential's median
    found = [median_interval(row, 0.95, min_level=0.0) for row in x]
    level = found[0]["level"]
    assert level == pytest.approx({3: 0.75, 5: 0.9375, 10: 1 - 2 * 11 / 1024}[n])
    coverage = np.mean([f["ci"][0] <= truth <= f["ci"][1] for f in found])
    assert coverage >= level - 0.02
    assert coverage <= level + 0.02  # exact for a continuous distribution, not wastefully wide


def test_median_interval_reports_too_few_seeds_and_the_level_it_achieves():
    assert median_interval([1.0, 2.0, 3.0])["ci"] is None
    assert "too few seeds" in median_interval([1.0, 2.0, 3.0])["note"]
    five = median_interval([5.0, 1.0, 4.0, 2.0, 3.0])
    assert five["ci"] == [1.0, 5.0] and five["level"] == pytest.approx(0.9375) and "93.8%" in five["note"]
    ten = median_interval(np.arange(10.0))
    assert ten["ci"] == [1.0, 8.0] and ten["level"] >= 0.95 and ten["note"] is None
    assert median_interval([1.0, math.nan, 2.0, 3.0, 4.0, math.inf])["ci"] == [1.0, math.inf]  # NaN out, inf a bound


def test_mean_log_interval_states_its_joint_level_and_covers():
    """Geometric mean over independent groups (the leaderboard's tasks): coverage ≥ the stated joint level."""
    rng = np.random.default_rng(7)
    medians = np.array([2.0, 0.5, 1.5])
    truth = float(np.exp(np.mean(np.log(medians))))
    covered, levels = 0, set()
    for _ in range(1000):
        groups = [m * rng.lognormal(0, 0.5, 10) for m in medians]
        found = stats.mean_log_interval(groups)
        levels.add(found["level"])
        covered += found["ci"][0] <= truth <= found["ci"][1]
    (level,) = levels
    assert level >= 0.85 and covered / 1000 >= level - 0.02
    few = stats.mean_log_interval([[1.0, 2.0, 3.0]] * 4)
    assert few["ci"] is None and "too few seeds" in few["note"]


def test_verdict_says_not_enough_seeds_when_there_is_no_interval():
    def sp(ratios):
        result = compare_arms({"base": {s: summary(s, 100.0 * r) for s, r in enumerate(ratios)},
                               "arm": {s: summary(s, 100.0) for s in range(len(ratios))}}, "base")
        return result["skills"]["a"]["arm"]["speedup"]

    three = sp([2.0, 2.5, 3.0])  # all three faster: Wilcoxon's p is 0.25, the smallest three pairs allow
    assert three["ci"] is None and three["verdict"] == "not enough seeds to tell"
    assert sp([2.0, 2.5, 3.0, 2.2, 2.8])["verdict"] == "faster"
    assert sp([0.5, 0.4, 0.6, 0.45, 0.55])["verdict"] == "slower"
    assert sp([0.5, 2.0, 1.0, 0.8, 1.5])["verdict"] == "no clear difference"


# ---- the benchmark's leaderboard: the same pairs and intervals as compare ----------------------------------------

def _comparison_dir(folder, steps_by_arm: dict[str, list[float | None]], status: dict[str, str] | None = None):
    """A comparison directory as `compare` leaves it: runs with a summary.json, and comparison.json."""
    from skilltrain.files import write_json

    summaries = {}
    for arm, steps in steps_by_arm.items():
        for seed, step in enumerate(steps, start=1):
            run = folder / arm / f"seed{seed}"
            run.mkdir(parents=True)
            s = summary(seed, step)
            s.update(steps=1000, max_steps=1000, wall_seconds=1.0, status=(status or {}).get(arm, "completed"))
            write_json(run / "summary.json", s)
            summaries.setdefault(arm, {})[seed] = s
    result = compare_arms(summaries, "baseline")
    result["runs"] = {f"{arm}/seed{seed}": str(folder / arm / f"seed{seed}") for arm in summaries for seed in summaries[arm]}
    write_json(folder / "comparison.json", result)
    return result


def test_leaderboard_leaves_out_a_learn_step_of_0_as_compare_does_and_states_its_interval_level(tmp_path):
    """A baseline run that learned everything at step 0 has no speedup: compare leaves the pair out, and so must the
    leaderboard (it used to count it as step 1, a ratio of 1/100 that compare's table never showed)."""
    from skilltrain.benchmark import leaderboard

    result = _comparison_dir(tmp_path / "t", {"baseline": [0, 200, 200, 200, 200, 200],
                                              "arm": [100, 100, 100, 100, 100, 100]})
    assert result["all_learned"]["arm"]["speedup"]["n_pairs"] == 5
    board = leaderboard("s", {"t": tmp_path / "t"}, ["baseline", "arm"], {})
    overall = board["overall"]["arm"]
    assert overall["geomean_speedup"] == pytest.approx(2.0)
    assert overall["ci"] == pytest.approx([2.0, 2.0]) and overall["ci_level"] == pytest.approx(0.9375)
    assert board["tasks"]["t"]["arm"]["speedup"]["verdict"] == "faster"


def test_leaderboard_says_too_few_seeds_rather_than_an_interval_it_cannot_have(tmp_path):
    from skilltrain.benchmark import leaderboard, to_markdown

    for task in ("t1", "t2"):
        _comparison_dir(tmp_path / task, {"baseline": [200, 300, 250], "arm": [100, 120, 110]})
    board = leaderboard("s", {t: tmp_path / t for t in ("t1", "t2")}, ["baseline", "arm"], {})
    overall = board["overall"]["arm"]
    assert overall["ci"] is None and "too few seeds" in overall["ci_note"]
    assert "too few seeds for a CI" in to_markdown(board)


def strict(text: str):
    """json.loads that refuses NaN and ±Infinity (what other languages' parsers do)."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_a_leaderboard_whose_baseline_diverged_everywhere_is_strict_json(tmp_path):
    """No completed baseline run: no seconds per step to measure. That is null, not NaN (leaderboard.json held NaN)."""
    from skilltrain.benchmark import leaderboard
    from skilltrain.files import dumps_json

    _comparison_dir(tmp_path / "t", {"baseline": [None] * 5, "arm": [100] * 5}, status={"baseline": "diverged"})
    board = leaderboard("s", {"t": tmp_path / "t"}, ["baseline", "arm"], {})
    assert board["baseline_seconds_per_step"] == {"t": None}
    json.dumps(board, allow_nan=False)
    assert strict(dumps_json(board)) == json.loads(dumps_json(board))


def _two_skills(seed: int, frequent: float, rare: float) -> dict:
    out = summary(seed, max(frequent, rare))
    out["skills"] = {name: {"frequency": f, "learned_step": step, "final_loss": 0.0, "final_metric": 1.0}
                     for name, f, step in (("frequent", 1.0, frequent), ("rare", 0.1, rare))}
    return out


def test_tradeoffs_name_the_most_slowed_skill_and_mark_the_pareto_front():
    from skilltrain.analysis.stats import tradeoff_markdown, tradeoffs

    arms = {"base": (100, 800),     # the rare skill last: every skill learned at 800
            "tilted": (200, 200),   # every skill 4× sooner, the frequent one 2× later
            "gentle": (110, 400),   # 2× sooner, the frequent one 1.1× later: on the front (least slowdown)
            "worse": (250, 400),    # 2× sooner, the frequent one 2.5× later: dominated by both
            "even": (50, 200)}      # 4× sooner and every skill sooner: dominates every other arm
    runs = {arm: {s: _two_skills(s, f * (1 + s / 10), r * (1 + s / 10)) for s in range(5)} for arm, (f, r) in arms.items()}
    trades = tradeoffs(compare_arms(runs, "base"))
    assert list(trades) == ["tilted", "gentle", "worse", "even"]
    assert trades["tilted"]["all"]["median"] == pytest.approx(4.0) and trades["tilted"]["slowdown"] == pytest.approx(2.0)
    assert trades["worse"]["most_slowed"] == "frequent" and trades["worse"]["slowdown"] == pytest.approx(2.5)
    assert trades["even"]["most_slowed"] == "frequent" and trades["even"]["slowdown"] == pytest.approx(0.5)
    assert [arm for arm, t in trades.items() if t["pareto"]] == ["even"]
    del runs["even"]
    trades = tradeoffs(compare_arms(runs, "base"))
    assert [arm for arm, t in trades.items() if t["pareto"]] == ["tilted", "gentle"]
    table = tradeoff_markdown(trades, "base")
    assert "| tilted | 4.00× [4.00, 4.00] 93.8% | frequent | 2.00× | yes |" in table
    assert "| worse | 2.00× [2.00, 2.00] 93.8% | frequent | 2.50× |  |" in table
    assert not any(t["all"]["censored"] or t["slowdown_censored"] for t in trades.values())
    for run in runs["worse"].values():  # the rare skill never learned within a budget of 1,000 steps
        run.update(steps=1000, max_steps=1000, all_learned_step=None)
        run["skills"]["rare"]["learned_step"] = None
    worse = tradeoffs(compare_arms(runs, "base"))["worse"]
    assert worse["all"]["censored"] and worse["all"]["median"] == pytest.approx(800 * 1.2 / 1000)  # seed 2's 960 / 1,000
    assert "| worse | 0.96×† [0.80, 1.12] 93.8% | frequent | 2.50× |  |" in tradeoff_markdown({"worse": worse}, "base")
