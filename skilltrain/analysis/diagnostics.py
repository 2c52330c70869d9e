"""Domino diagnostics of one run: when each skill starts and finishes learning, and whether skills learn one at a time.

The Domino effect (docs/experiments.md) is that skills are learned in sequence: one takes off as another finishes. These
functions turn a run's per-skill metric curves into learning windows [onset, completion] and summarise them:

- onset: the first step from which the skill has made, and keeps, `ONSET_FRACTION` (10%) of its way from its
  initial value to the threshold; completion: the step it is learned (crosses the threshold).
- sequentiality index: 0 when all windows coincide (parallel learning), 1 when no two overlap (one at a time).
- rare vs frequent: how much later the least frequent skill is learned than the most frequent one, next to how
  much rarer it is (t2/t1 ≈ 2 at p1/p2 = 10 in the paper, where a per-sample gradient argument says 10).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

ONSET_FRACTION = 0.1  # share of the way from the initial value to the threshold that marks a skill's onset
METRICS = ("acc", "loss", "level")  # level: a toy model's skill level s (skilltrain.theory), rising like accuracy


def onset_and_completion(steps: Sequence[int], values: Sequence[Sequence[float]], metric: str, threshold: float,
                         fraction: float = ONSET_FRACTION) -> list[tuple[int | None, int | None]]:
    """Per skill (in the order of `values`), its learning window (onset, completion) read off a metric curve.

    `values[k][i]` is skill k's metric at `steps[i]`; NaN marks a step where it was not measured and is skipped.

    - completion: the first step at which the metric crosses the threshold (acc ≥ threshold, loss ≤ threshold),
      or None if it never does.
    - progress(t) = (x(t) − x0) / (x_thr − x0), where x0 is the first measured value and x is the metric itself
      for accuracy and log(loss) for a loss (losses fall over orders of magnitude, so equal factors count as
      equal progress). progress is 0 at the start and ≥ 1 once learned.
    - onset: the first step from which progress stays ≥ `fraction` at every measurement up to completion (or,
      for a skill never learned, up to the last measurement); None if there is no such step. Requiring progress
      to *stay* above the level makes the onset robust to noise: an early spike that falls back is ignored.

    A skill that already meets the threshold at its first measurement has onset = completion = that step.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric == "loss" and threshold <= 0:
        raise ValueError(f"a loss threshold must be > 0 (progress is measured in log(loss)), got {threshold}")
    all_steps = np.asarray(steps)
    if np.any(np.diff(all_steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    windows: list[tuple[int | None, int | None]] = []
    for k, curve in enumerate(values):
        v = np.asarray(curve, dtype=float)
        if v.shape != all_steps.shape:
            raise ValueError(f"skill {k}: {v.size} values for {all_steps.size} steps")
        measured = ~np.isnan(v)
        s, v = all_steps[measured], v[measured]
        if s.size == 0:
            windows.append((None, None))
            continue
        crossed = v <= threshold if metric == "loss" else v >= threshold
        end = int(np.argmax(crossed)) if crossed.any() else s.size - 1
        completion = int(s[end]) if crossed.any() else None
        if end == 0 and completion is not None:
            windows.append((completion, completion))
            continue
        x = np.log(np.maximum(v, np.finfo(float).tiny)) if metric == "loss" else v
        x_thr = np.log(threshold) if metric == "loss" else threshold
        progress = (x[: end + 1] - x[0]) / (x_thr - x[0])  # x[0] has not crossed, so the denominator is not 0
        last_below = int(np.flatnonzero(progress < fraction)[-1])  # progress[0] = 0 < fraction: never empty
        windows.append((int(s[last_below + 1]) if last_below < end else None, completion))
    return windows


def sequentiality_index(windows: Sequence[tuple[float, float]]) -> float | None:
    """How one-at-a-time the learning windows [onset, completion] of the learned skills are: 1 − mean pair overlap.

    For each pair of windows, the overlap is the share of the *shorter* window that lies inside the longer one
    (0: disjoint or only touching; 1: the shorter lies within the longer). The index is 1 minus the mean over all
    pairs: 0 when all windows coincide (fully parallel), 1 when no two overlap (strictly one at a time; a window
    of positive length that starts where another ends does not overlap it; a point window is the exception below),
    0.5 for two equal windows that half-overlap.

    A zero-length window (a skill that goes from onset to learned between two measurements) is a point: its
    overlap is 1 if it lies inside the other window after its start (at its end too: two skills learned at the same
    step are a tie, not an order) or on the same point, else 0. Every pair counts
    equally (weighting pairs by window length would let zero-length windows drop out and one slow pair dominate).
    None for fewer than two windows.
    """
    for onset, completion in windows:
        if completion < onset:
            raise ValueError(f"window ({onset}, {completion}) ends before it starts")
    if len(windows) < 2:
        return None
    overlaps = [_overlap(a, b) for a, b in itertools.combinations(windows, 2)]
    return float(1.0 - np.mean(overlaps))


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The share of the shorter of two windows inside the other (see `sequentiality_index`)."""
    (a0, a1), (b0, b1) = sorted((a, b), key=lambda w: w[1] - w[0])
    if a1 == a0:
        return 1.0 if b0 < a0 <= b1 or b0 == b1 == a0 else 0.0
    return max(0.0, min(a1, b1) - max(a0, b0)) / (a1 - a0)


def domino_diagnostics(summary: Mapping, steps: Sequence[int], values: Sequence[Sequence[float]]) -> dict:
    """Domino diagnostics of one run, JSON-ready (for summary.json).

    `summary` is the run's summary.json dict; `values` holds one curve of its metric (`summary["metric"]`: name,
    threshold, on the split it was measured on) per skill, in the order of `summary["skills"]`.

    Returns {"onset": {skill: step | None}, "completion": {skill: step | None}, "sequentiality": float | None,
    "rare_vs_frequent": {"rare", "frequent", "t_ratio", "frequency_ratio"} | None, "unresolved": [skills]}:

    - completion is the summary's exact `learned_step` (the curves are only sampled every few steps); onset is
      read off the curves (`onset_and_completion`) and, for a learned skill, is at most its completion.
    - sequentiality: `sequentiality_index` of the learned skills' windows (None if fewer than two), leaving out the
      skills learned at the first measurement (`unresolved`): their window lies somewhere before it, unmeasured, and
      a shared first-measurement step is a tie that says nothing about order or overlap.
    - rare_vs_frequent: the least and most frequent skills (by `frequency`; the first in declared order on a
      tie), t_ratio = t_rare / t_frequent of their learn steps (None unless both are learned, t_frequent > 0),
      frequency_ratio = p_frequent / p_rare. None when all skills are equally frequent.
    """
    skills = list(summary["skills"])
    if len(values) != len(skills):
        raise ValueError(f"{len(values)} curves for {len(skills)} skills")
    metric = summary["metric"]
    curve_windows = onset_and_completion(steps, values, metric["name"], metric["threshold"])
    onset: dict[str, int | None] = {}
    completion: dict[str, int | None] = {}
    for skill, (curve_onset, _) in zip(skills, curve_windows):
        learned = summary["skills"][skill]["learned_step"]
        completion[skill] = learned
        if learned is not None and (curve_onset is None or curve_onset > learned):
            curve_onset = learned
        onset[skill] = curve_onset
    first = steps[0] if len(steps) else None
    unresolved = [s for s in skills if completion[s] is not None and first is not None and completion[s] <= first]
    windows = [(onset[s], completion[s]) for s in skills if completion[s] is not None and s not in unresolved]

    freq = {s: summary["skills"][s]["frequency"] for s in skills}
    rare, frequent = min(skills, key=freq.__getitem__), max(skills, key=freq.__getitem__)
    rare_vs_frequent = None
    if freq[rare] != freq[frequent]:
        t_rare, t_frequent = completion[rare], completion[frequent]
        rare_vs_frequent = {
            "rare": rare,
            "frequent": frequent,
            "t_ratio": t_rare / t_frequent if t_rare is not None and t_frequent else None,
            "frequency_ratio": freq[frequent] / freq[rare] if freq[rare] > 0 else None,
        }
    return {"onset": onset, "completion": completion, "sequentiality": sequentiality_index(windows),
            "rare_vs_frequent": rare_vs_frequent, "unresolved": unresolved}
