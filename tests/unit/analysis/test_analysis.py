"""skilltrain.analysis on synthetic summaries and curves with known answers."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from skilltrain.analysis.diagnostics import domino_diagnostics, onset_and_completion, sequentiality_index
from skilltrain.analysis.stats import CSV_COLUMNS, compare_arms, csv_rows, to_csv, to_markdown

ACC = {"name": "acc", "threshold": 0.9, "split": "train"}


def make_summary(seed: int, learned: dict[str, int | None], *, steps: int = 1000, status: str = "completed",
                 frequencies: dict[str, float] | None = None, wall_seconds: float = 10.0, metric: dict = ACC,
                 message: str | None = None, max_steps: int | None = None) -> dict:
    """A summary.json dict as skilltrain.report.build_summary writes it."""
    frequencies = frequencies or {}
    done = [t for t in learned.values() if t is not None]
    return {
        "recipe": "synthetic", "seed": seed, "interventions": [], "steps": steps, "max_steps": max_steps or steps,
        "wall_seconds": wall_seconds,
        "samples_per_second": 1000.0,
        "skills": {k: {"frequency": frequencies.get(k, 1.0), "learned_step": t, "final_loss": 0.01 if t is not None else 0.5,
                       "final_metric": 1.0 if t is not None else 0.5} for k, t in learned.items()},
        "all_learned_step": max(done) if len(done) == len(learned) else None,
        "learn_order": sorted((k for k, t in learned.items() if t is not None), key=learned.__getitem__),
        "status": status, "metric": dict(metric), "run_id": f"run{seed}",
        **({"message": message} if message else {}),
    }


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


# ---- stats ------------------------------------------------------------------------------------------------------

def test_known_2x_speedup_is_found_with_ci_and_small_p():
    rng = np.random.default_rng(1)
    base, arm = {}, {}
    for seed in range(12):
        a, b = int(rng.integers(300, 500)), int(rng.integers(600, 900))
        noise = np.exp(rng.normal(0, 0.05, size=2))  # the arm's steps: half the baseline's, ±5% noise
        base[seed] = make_summary(seed, {"a": a, "b": b}, wall_seconds=10.0)
        arm[seed] = make_summary(seed, {"a": round(a / 2 * noise[0]), "b": round(b / 2 * noise[1])}, wall_seconds=10.0)
    result = compare_arms({"base": base, "fast": arm}, "base")

    assert result["arms"] == ["base", "fast"] and result["excluded"] == []
    assert result["seeds"] == {"base": list(range(12)), "fast": list(range(12))}
    for entry in [*(result["skills"][k] for k in ("a", "b")), result["all_learned"]]:
        assert "speedup" not in entry["base"]
        sp = entry["fast"]["speedup"]
        assert sp["n_pairs"] == 12 and sp["n_arm_censored"] == sp["n_baseline_censored"] == sp["n_both_censored"] == 0
        assert sp["median"] == pytest.approx(2.0, abs=0.1)
        assert sp["ci"][0] < 2.0 < sp["ci"][1] and sp["ci"][1] - sp["ci"][0] < 0.3
        assert sp["p_value"] == pytest.approx(2 / 2**12)  # exact test, every ratio > 1
        assert entry["fast"]["median"] == pytest.approx(entry["base"]["median"] / 2, rel=0.1)
    base_a = [s["skills"]["a"]["learned_step"] for s in base.values()]
    assert result["skills"]["a"]["base"]["median"] == float(np.median(base_a))
    assert result["skills"]["a"]["base"]["q1"] == float(np.quantile(base_a, 0.25))
    wall = result["wall_seconds"]["fast"]["speedup"]
    assert wall["median"] == 1.0 and wall["ci"] == [1.0, 1.0] and wall["p_value"] is None  # all ratios 1
    assert wall["verdict"] == "no clear difference" and sp["verdict"] == "faster" and sp["ci_level"] >= 0.95
    assert compare_arms({"base": base, "fast": arm}, "base") == result  # the bootstrap is seeded
    json.dumps(result, allow_nan=False)


def test_censored_runs_are_counted_and_the_censored_median_rule_holds():
    base = {s: make_summary(s, {"a": 100 + 10 * s}) for s in range(5)}
    # seeds 0-2 never learn "a" within the 1000-step budget; seeds 3-4 learn it at 400 and 500
    arm = {s: make_summary(s, {"a": None if s < 3 else 100 * (s + 1)}) for s in range(5)}
    result = compare_arms({"base": base, "slow": arm}, "base")
    st = result["skills"]["a"]["slow"]
    assert st["n"] == 5 and st["n_censored"] == 3
    assert st["median"] is None and st["median_censored"] is True
    assert st["q1"] == 500.0 and st["q1_censored"] is False  # order statistics 400, 500, >1000, >1000, >1000
    assert st["q3"] is None and st["q3_censored"] is True
    assert result["all_learned"]["slow"]["n_censored"] == 3
    sp = st["speedup"]
    assert sp["n_pairs"] == 5 and sp["n_arm_censored"] == 3 and sp["n_baseline_censored"] == sp["n_both_censored"] == 0
    # censored pairs enter at the budget: ratios 100/1000, 110/1000, 120/1000, 130/400, 140/500
    assert sp["median"] == pytest.approx(0.12)

    # two of five censored: the median (third order statistic) is still a learned run
    two = {s: make_summary(s, {"a": None if s < 2 else 100 * s}) for s in range(5)}
    st = compare_arms({"base": base, "arm": two}, "base")["skills"]["a"]["arm"]
    assert st["median"] == 400.0 and st["median_censored"] is False and st["n_censored"] == 2
    # half of an even count censored: the median interpolates into a censored run, so it is censored too
    half = {s: make_summary(s, {"a": None if s < 2 else 100 * s}) for s in range(4)}
    st = compare_arms({"base": half}, "base")["skills"]["a"]["base"]
    assert st["median"] is None and st["median_censored"] is True

    # baseline censored and both censored are told apart
    base2 = {0: make_summary(0, {"a": None}), 1: make_summary(1, {"a": None}), 2: make_summary(2, {"a": 300})}
    arm2 = {0: make_summary(0, {"a": 250}), 1: make_summary(1, {"a": None}), 2: make_summary(2, {"a": None})}
    sp = compare_arms({"base": base2, "arm": arm2}, "base")["skills"]["a"]["arm"]["speedup"]
    assert (sp["n_baseline_censored"], sp["n_both_censored"], sp["n_arm_censored"]) == (1, 1, 1)
    assert sp["median"] == 1.0  # ratios 1000/250, 1000/1000, 300/1000


def test_stopped_and_missing_runs_are_excluded_and_listed():
    base = {s: make_summary(s, {"a": 400}) for s in range(4)}
    arm = {s: make_summary(s, {"a": 200}) for s in range(5)}
    arm[2] = make_summary(2, {"a": 150}, steps=300, status="stopped")
    arm[3] = None
    result = compare_arms({"base": base, "arm": arm}, "base")
    assert result["excluded"] == [
        {"arm": "base", "seed": 4, "reason": "missing"},
        {"arm": "arm", "seed": 2, "reason": "stopped"},
        {"arm": "arm", "seed": 3, "reason": "missing"},
    ]
    assert result["seeds"] == {"base": [0, 1, 2, 3], "arm": [0, 1, 4]}
    st = result["skills"]["a"]["arm"]
    assert st["n"] == 3 and st["n_censored"] == 0 and st["median"] == 200.0
    sp = st["speedup"]
    assert sp["n_pairs"] == 2 and sp["median"] == 2.0
    assert sp["ci"] is None and "too few seeds" in sp["ci_note"] and sp["verdict"] == "not enough seeds to tell"
    assert "arm seed 2 (stopped); arm seed 3 (missing)" in to_markdown(result)


def test_a_diverged_run_counts_censored_for_the_skills_it_had_not_learned():
    """An unstable arm that diverges on 2 of 5 seeds is not measured on its 3 survivors only: the diverged runs keep
    the skills they learned before diverging and are censored at the budget for the rest."""
    base = {s: make_summary(s, {"a": 100, "b": 400}) for s in range(5)}
    arm = {s: make_summary(s, {"a": 50, "b": 200}) for s in range(5)}
    arm[1] = make_summary(1, {"a": 60, "b": None}, steps=90, max_steps=1000, status="diverged", message="at step 90")
    arm[3] = make_summary(3, {"a": None, "b": None}, steps=12, max_steps=1000, status="diverged")
    result = compare_arms({"base": base, "arm": arm}, "base")
    assert result["excluded"] == [] and result["diverged"] == {"base": [], "arm": [1, 3]}
    a, b = result["skills"]["a"]["arm"], result["skills"]["b"]["arm"]
    assert (a["n"], a["n_censored"], a["n_diverged"]) == (5, 1, 2) and a["q3"] == 60.0  # 50, 50, 50, 60, >1000
    assert (b["n"], b["n_censored"]) == (5, 2) and b["median"] == 200.0  # 200 ×3, then two censored at 1000
    sp = b["speedup"]  # per seed 400/200 = 2 (×3) and 400/1000 = 0.4 (×2): the instability shows in the interval
    assert sp["n_arm_censored"] == 2 and sp["median"] == 2.0 and sp["ci"][0] < 1
    assert result["all_learned"]["arm"]["n_censored"] == 2 and result["budget"]["arm"] == 1000
    assert result["wall_seconds"]["arm"]["n"] == 3  # wall-clock over completed runs only
    md = to_markdown(result)
    assert "| b learn step | arm | 200 [200, >1000] | 2/5 (2 diverged) |" in md and "Diverged (counted" in md
    # leaving the diverged seeds out (the old rule) would have reported 3/3 learned and hidden the instability
    survivors = compare_arms({"base": base, "arm": {s: arm[s] for s in (0, 2, 4)}}, "base")
    assert survivors["skills"]["b"]["arm"]["n_censored"] == 0


def test_small_samples_get_no_interval_or_the_level_they_achieve_and_no_difference_gives_null_with_reasons():
    base = {s: make_summary(s, {"a": 400 + s}) for s in range(3)}
    arm = {s: make_summary(s, {"a": 200 + s}) for s in range(3)}
    sp = compare_arms({"base": base, "arm": arm}, "base", confidence=0.95)["skills"]["a"]["arm"]["speedup"]
    assert sp["ci"] is None and "too few seeds" in sp["ci_note"] and sp["verdict"] == "not enough seeds to tell"
    five = compare_arms({"base": {s: make_summary(s, {"a": 400 + s}) for s in range(5)},
                         "arm": {s: make_summary(s, {"a": 200 + s}) for s in range(5)}}, "base")
    sp5 = five["skills"]["a"]["arm"]["speedup"]  # [min, max] of the five ratios, at the 93.75% it achieves
    assert sp5["ci"] == [404 / 204, 2.0] and sp5["ci_level"] == pytest.approx(0.9375) and "93.8%" in sp5["ci_note"]
    md = to_markdown(five)
    assert "93.8%" in md and "order statistics" in md and "| faster |" in md
    assert sp["p_value"] == pytest.approx(0.25)  # n = 3, all positive: the exact two-sided p
    sp = compare_arms({"base": base, "same": base}, "base")["skills"]["a"]["same"]["speedup"]
    assert sp["median"] == 1.0 and sp["p_value"] is None and "all ratios are 1" in sp["p_note"]


def test_runs_must_share_skills_and_metric_and_the_baseline_must_exist():
    base = {0: make_summary(0, {"a": 1})}
    with pytest.raises(ValueError, match="baseline"):
        compare_arms({"arm": base}, "base")
    with pytest.raises(ValueError, match="skills"):
        compare_arms({"base": base, "arm": {0: make_summary(0, {"b": 1})}}, "base")
    with pytest.raises(ValueError, match="metric"):
        compare_arms({"base": base, "arm": {0: make_summary(0, {"a": 1}, metric={**ACC, "threshold": 0.8})}}, "base")


def test_markdown_and_csv_renderings():
    base = {s: make_summary(s, {"a": 400, "b": None}) for s in range(6)}
    arm = {s: make_summary(s, {"a": 200 + s, "b": 700}, wall_seconds=12.5) for s in range(6)}
    arm[6] = make_summary(6, {"a": 1, "b": 1}, status="diverged")
    result = compare_arms({"base": base, "fast": arm}, "base")
    md = to_markdown(result)
    lines = md.splitlines()
    assert lines[0] == "| quantity | arm | median [IQR] | censored | speedup vs base [CI] level | p | verdict |"
    assert "| a learn step | base (baseline) | 400 [400, 400] | 0/6 | — | — | — |" in lines
    assert "| b learn step | base (baseline) | >1000 [>1000, >1000] | 6/6 | — | — | — |" in lines
    row_b = next(line for line in lines if line.startswith("| b learn step | fast"))
    # 1000/700 in all 6 pairs, baseline censored: a lower bound; [min, max] of 6 pairs has 96.9%
    assert "| 700 [700, 700] | 0/7 (1 diverged) | 1.43×† [1.43, 1.43] 96.9% | 0.031 | faster |" in row_b
    row_a = next(line for line in lines if line.startswith("| a learn step | fast"))
    assert "1.98× [" in row_a
    assert any(line.startswith("| wall-clock s | fast | 12.5 [12.5, 12.5] | 0/6 | 0.80× [0.80, 0.80] 96.9% |")
               for line in lines)
    assert "base seed 6 (missing)" in md and "Diverged (counted" in md and "fast seeds 6" in md

    rows = csv_rows(result)
    assert len(rows) == (2 + 2) * 2 and all(list(r) == CSV_COLUMNS for r in rows)
    parsed = list(csv.DictReader(io.StringIO(to_csv(result))))
    assert [(r["quantity"], r["skill"], r["arm"]) for r in parsed] == [
        ("learn_step", "a", "base"), ("learn_step", "a", "fast"), ("learn_step", "b", "base"), ("learn_step", "b", "fast"),
        ("all_learned_step", "", "base"), ("all_learned_step", "", "fast"), ("wall_seconds", "", "base"),
        ("wall_seconds", "", "fast")]
    b_fast = parsed[3]
    assert b_fast["n_censored"] == "0" and float(b_fast["speedup_median"]) == pytest.approx(1000 / 700)
    assert b_fast["speedup_n_baseline_censored"] == "6" and float(b_fast["speedup_ci_low"]) == pytest.approx(1000 / 700)
    assert b_fast["speedup_verdict"] == "faster" and float(b_fast["speedup_ci_level"]) == pytest.approx(0.96875)
    assert parsed[2]["median"] == "" and parsed[2]["median_censored"] == "True" and parsed[2]["speedup_median"] == ""


# ---- diagnostics ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("windows", "expected"), [
    ([(100, 200), (100, 200), (100, 200)], 0.0),  # fully parallel
    ([(0, 10), (10, 20), (20, 30)], 1.0),  # strictly one at a time (touching is not overlapping)
    ([(0, 10), (5, 15)], 0.5),  # half overlap
    ([(0, 10), (2, 4)], 0.0),  # the shorter one lies inside the longer one
    ([(0, 10), (20, 40), (30, 50)], 1 - 0.5 / 3),
    ([(0, 10), (5, 5)], 0.0),  # a zero-length window inside another
    ([(7, 7), (7, 7)], 0.0),  # the same point
    ([(0, 10), (10, 10)], 0.0),  # a point where the other window ends: learned at the same step, a tie, not an order
    ([(10, 20), (10, 10)], 1.0),  # a point where the other window starts: learned as the other takes off
])
def test_sequentiality_index(windows, expected):
    assert sequentiality_index(windows) == pytest.approx(expected)


def test_sequentiality_index_needs_two_valid_windows():
    assert sequentiality_index([]) is None and sequentiality_index([(0, 5)]) is None
    with pytest.raises(ValueError, match="ends before"):
        sequentiality_index([(5, 0), (0, 5)])


def acc_curve(steps: np.ndarray, center: float, width: float) -> np.ndarray:
    """Accuracy rising from 0.5 to 1 along a sigmoid."""
    return 0.5 + 0.5 * sigmoid((steps - center) / width)


def acc_window(center: float, width: float, every: int) -> tuple[int, int]:
    """The exact (onset, completion) of `acc_curve` at threshold 0.9, on a grid of `every` steps."""
    v0 = 0.5 + 0.5 * sigmoid(-center / width)
    onset_value = v0 + 0.1 * (0.9 - v0)
    t_onset = center + width * logit(2 * onset_value - 1)
    t_done = center + width * logit(2 * 0.9 - 1)
    return every * math.ceil(t_onset / every), every * math.ceil(t_done / every)


@pytest.mark.parametrize("every", [1, 10])
def test_onset_and_completion_of_sigmoid_accuracy_curves(every):
    steps = np.arange(0, 1001, every)
    values = [acc_curve(steps, 300, 20).tolist(), acc_curve(steps, 600, 40).tolist(), [0.5] * len(steps)]
    windows = onset_and_completion(steps.tolist(), values, "acc", 0.9)
    assert windows[0] == acc_window(300, 20, every) and windows[1] == acc_window(600, 40, every)
    assert windows[2] == (None, None)  # flat: never started, never learned
    if every == 1:
        assert windows[0] == (252, 328)  # 300 + 20·logit(0.08) ≈ 251.2, 300 + 20·ln 4 ≈ 327.7
    assert sequentiality_index(windows[:2]) == 1.0
    parallel = onset_and_completion(steps.tolist(), [values[0], values[0]], "acc", 0.9)
    assert sequentiality_index(parallel) == 0.0


def test_onset_and_completion_of_a_loss_curve_use_log_progress():
    steps = np.arange(0, 1001)
    log_loss = np.log(1e-4) * sigmoid((steps - 400) / 25)  # from ≈1 down to 1e-4
    (onset, completion), = onset_and_completion(steps.tolist(), [np.exp(log_loss).tolist()], "loss", 1e-3)
    x0 = log_loss[0]
    onset_x = x0 + 0.1 * (np.log(1e-3) - x0)  # 10% of the way in log(loss)
    assert onset == math.ceil(400 + 25 * logit(onset_x / np.log(1e-4)))
    assert completion == math.ceil(400 + 25 * logit(np.log(1e-3) / np.log(1e-4)))
    with pytest.raises(ValueError, match="> 0"):
        onset_and_completion([0], [[1.0]], "loss", 0.0)


def test_onset_ignores_noise_spikes_and_unmeasured_steps():
    steps = np.arange(0, 1001)
    clean = acc_curve(steps, 300, 20)
    noisy = clean.copy()
    noisy[100] = 0.7  # a spike past 10% progress that falls back
    noisy[[5, 251, 252, 700]] = np.nan  # not measured there
    (onset, completion), = onset_and_completion(steps.tolist(), [noisy.tolist()], "acc", 0.9)
    assert (onset, completion) == (253, 328)  # 252 was not measured: the first measured step after it
    started = onset_and_completion([0, 10, 20], [[0.5, 0.7, 0.7]], "acc", 0.9)
    assert started == [(10, None)]  # on its way but never learned
    assert onset_and_completion([0, 10], [[0.95, 0.99]], "acc", 0.9) == [(0, 0)]  # learned from the start
    assert onset_and_completion([0, 10], [[math.nan, math.nan]], "acc", 0.9) == [(None, None)]


def test_domino_diagnostics_of_a_two_skill_run():
    steps = np.arange(0, 1001, 10)
    values = [acc_curve(steps, 300, 20).tolist(), acc_curve(steps, 620, 20).tolist()]
    summary = make_summary(0, {"s1": 327, "s2": 647}, frequencies={"s1": 1.0, "s2": 0.1})
    diag = domino_diagnostics(summary, steps.tolist(), values)
    onset1, _ = acc_window(300, 20, 10)
    onset2, _ = acc_window(620, 20, 10)
    assert diag == {
        "onset": {"s1": onset1, "s2": onset2},
        "completion": {"s1": 327, "s2": 647},  # the summary's exact learn steps
        "sequentiality": 1.0,
        "rare_vs_frequent": {"rare": "s2", "frequent": "s1", "t_ratio": pytest.approx(647 / 327), "frequency_ratio": 10.0},
        "unresolved": [],
    }
    json.dumps(diag, allow_nan=False)

    # equal frequencies: no rare/frequent pair; overlapping windows; a skill learned between two curve points
    summary = make_summary(0, {"s1": 327, "s2": 333, "s3": None})
    values = [acc_curve(steps, 300, 20).tolist(), acc_curve(steps, 300, 20).tolist(), [0.5] * len(steps)]
    diag = domino_diagnostics(summary, steps.tolist(), values)
    assert diag["rare_vs_frequent"] is None
    assert diag["onset"] == {"s1": onset1, "s2": onset1, "s3": None} and diag["completion"]["s3"] is None
    assert diag["sequentiality"] == 0.0  # (onset1, 327) lies within (onset1, 333)

    # an onset the curves place after the exact learn step is moved to it
    diag = domino_diagnostics(make_summary(0, {"s1": 255}), [0, 250, 260], [[0.5, 0.51, 0.95]])
    assert diag["onset"] == {"s1": 255} and diag["sequentiality"] is None
    with pytest.raises(ValueError, match="curves for"):
        domino_diagnostics(summary, steps.tolist(), values[:2])


def test_skills_learned_at_the_first_evaluation_are_a_tie_not_an_order():
    """Held-out evaluations every 100 steps; three skills all over the threshold at the first one (step 100). Their
    windows lie somewhere before it, unmeasured: no sequentiality (it used to be 0, 'parallel', from three equal
    points), they are listed as unresolved, and the run's summary groups them as a tie and warns."""
    from skilltrain.report import learn_order_groups, learn_warnings

    summary = make_summary(0, {"a": 100, "b": 100, "c": 100}, metric={**ACC, "split": "val"})
    diag = domino_diagnostics(summary, [100, 200, 300], [[0.95, 1.0, 1.0]] * 3)
    assert diag["sequentiality"] is None and diag["unresolved"] == ["a", "b", "c"]
    assert learn_order_groups({"a": 100, "b": 100, "c": 100}) == [["a", "b", "c"]]
    assert learn_order_groups({"a": 300, "b": 100, "c": 300, "d": None}) == [["b"], ["a", "c"]]
    warnings = learn_warnings(summary | {"domino": diag}, first_measurement=100)
    assert any("first evaluation" in w and "a, b, c" in w for w in warnings)
    # two skills learned at the same evaluation after a window each: the same completion is a tie, they overlap
    tie = domino_diagnostics(make_summary(0, {"a": 300, "b": 300}), [100, 200, 300], [[0.5, 0.7, 0.95], [0.5, 0.5, 0.95]])
    assert tie["onset"] == {"a": 200, "b": 300} and tie["sequentiality"] == 0.0


def test_the_printed_comparison_carries_the_interval_method_level_warnings_and_a_verdict(tmp_path, capsys):
    """Three seeds, all faster: the printed table says 'not enough seeds to tell' (it printed a CI excluding 1 beside
    p = 0.25, with the small-sample warning only in comparison.json)."""
    from skilltrain.comparison.report import print_comparison

    base = {s: make_summary(s, {"a": 400 + 10 * s}) for s in range(3)}
    arm = {s: make_summary(s, {"a": 200 + s}) for s in range(3)}
    result = compare_arms({"base": base, "fast": arm}, "base") | {"recipe": "synthetic"}
    print_comparison(result, tmp_path)
    out = capsys.readouterr().out
    assert "not enough seeds to tell" in out and "order statistics" in out and "too few seeds for an interval" in out
    assert "smallest p-value 3 pairs allow is 0.25" in out


def test_the_run_table_ranks_ties_and_prints_the_warnings():
    import io

    from rich.console import Console

    from skilltrain.report import learn_order_groups, learn_warnings, print_table

    summary = make_summary(0, {"a": 100, "b": 100, "c": 300}, metric={**ACC, "split": "val", "min_samples": 0})
    summary["learn_order_groups"] = learn_order_groups({"a": 100, "b": 100, "c": 300})
    summary["warnings"] = learn_warnings(summary, first_measurement=100)
    buf = io.StringIO()
    print_table(summary, Console(file=buf, width=200))
    text = buf.getvalue()
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.count("│") > 2]
    rows = {c[0]: c[-1] for c in cells if c and c[0] in ("a", "b", "c")}
    assert rows == {"a": "1=", "b": "1=", "c": "3"}
    assert "first evaluation (step 100)" in text


def test_the_run_tables_title_names_its_interventions():
    import io

    from rich.console import Console

    from skilltrain.report import print_table

    for interventions, named in (([], "no intervention"), (["gradient_rescaling", "skill_reweighting"],
                                                            "gradient_rescaling, skill_reweighting")):
        summary = {**make_summary(0, {"a": 100}), "interventions": interventions}
        buf = io.StringIO()
        print_table(summary, Console(file=buf, width=200))
        assert f"· seed 0 · {named} · " in buf.getvalue()
