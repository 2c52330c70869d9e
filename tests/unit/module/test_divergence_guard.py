"""The divergence guard checks the steps since its last check at once: it must decide exactly as a check of every
step would (the first bad step, its skills, each skill's first loss)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from skilltrain.callbacks.run import DivergenceGuard, TrainingDiverged


def _step_by_step(rows, factor):
    """The rule, one step at a time: (first bad step, its bad skills, the first losses), as the guard must find."""
    k = len(rows[0][0])
    first, bad_step, bad_skills = [math.nan] * k, None, None
    for step, (loss, present) in enumerate(rows):
        first = [x if p and math.isnan(f) else f for f, x, p in zip(first, loss, present)]
        ref = [math.inf if math.isnan(f) else max(f, 1e-12) for f in first]
        bad = [p and (not math.isfinite(x) or (factor is not None and x > factor * r))
               for x, p, r in zip(loss, present, ref)]
        if any(bad) and bad_step is None:
            bad_step, bad_skills = step, bad
    return bad_step, bad_skills, first


def _rows(seed: int, steps: int = 57, k: int = 3):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(steps):
        loss = (torch.rand(k, generator=g, dtype=torch.float64) * 2).tolist()
        present = (torch.rand(k, generator=g) < 0.6).tolist()
        for i in range(k):
            r = torch.rand((), generator=g).item()
            loss[i] = math.nan if r < 0.01 else math.inf if r < 0.02 else loss[i] * 1e7 if r < 0.04 else loss[i]
        rows.append((loss, present))
    return rows


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("factor", [1e6, None])
def test_checking_every_few_steps_decides_as_checking_every_step(seed, factor):
    rows = _rows(seed)
    bad_step, bad_skills, first = _step_by_step(rows, factor)
    guard = DivergenceGuard(["a", "b", "c"], factor, every=10)
    module = SimpleNamespace(train_loss=torch.zeros((), dtype=torch.float64))
    found = None
    for step, (loss, present) in enumerate(rows):
        module.train_stats_step = step
        module.train_stats = {"mask_loss": torch.tensor(loss, dtype=torch.float64),
                              "mask_share": torch.tensor(present, dtype=torch.float64) * 0.3}
        try:
            guard.on_train_batch_end(None, module, None, None, step)
        except TrainingDiverged as e:
            found = str(e)
            break
    if found is None:
        try:
            guard.check()  # what a checkpoint at the end asks
        except TrainingDiverged as e:
            found = str(e)
    if bad_step is None:
        assert found is None
        assert guard.first_loss.tolist() == pytest.approx(first, nan_ok=True)  # what the checkpoint keeps
    else:
        skills = [s for s, b in zip("abc", bad_skills) if b]
        assert found is not None and found.startswith(f"training diverged at step {bad_step}:")
        assert found.endswith(", ".join(skills))
