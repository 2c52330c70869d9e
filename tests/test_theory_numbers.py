"""Numbers of skilltrain.theory checked against the paper's own code (KindXiaoming/physics_of_skill_learning) and
against failures a review found: each test pins one of them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import load

from skilltrain.api import intervention
from skilltrain.config import to_container
from skilltrain.module import SkillModule
from skilltrain.theory import resource

# ---- resource-guided sampling (skill_reweighting.mode=resource) ---------------------------------------------


def _guided(steps: int, absent: dict[int, set[int]], fit_every: int = 20, seed: int = 0):
    """Feed the intervention the losses of a Resource-model world (CE) in which skill k is absent from the batches at
    the steps absent[k] (its loss NaN there, as the all-reduced per-skill loss of a batch without it)."""
    ctrl = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=4", "data.alpha=1.5")))
    iv = intervention("skill_reweighting", ctrl.task, mode="resource", fit_every=fit_every)
    iv.max_steps = steps
    generator = torch.Generator().manual_seed(seed)
    u = torch.full((4,), 0.5, dtype=torch.float64)
    for t in range(1, steps + 1):
        u = resource.simulate(iv.mixture / iv.mixture.sum(), 0.01, 0.05, 1, loss="ce", u0=u)[-1]
        loss = -torch.log1p(-u) * (1 + 0.2 * torch.randn(4, generator=generator, dtype=torch.float64))
        for k, steps_absent in absent.items():
            if t in steps_absent:
                loss[k] = math.nan
        iv.rates({"mask_loss": loss, "rows": torch.tensor(64.0, dtype=torch.float64)})
    return iv


def test_resource_guided_survives_a_skill_absent_from_the_first_batch():
    """The review's crash: a skill missing from step 1's batch made every candidate's error NaN (ValueError: All-NaN
    slice encountered at the first fit)."""
    iv = _guided(100, {3: {1, 2, 3}})
    assert iv.fitted is not None and all(math.isfinite(v) for v in iv.fitted)
    assert abs(float(iv.mixture.sum()) - 1) < 1e-9


def test_resource_guided_reference_loss_is_smoothed_over_several_batches():
    """ℓ_ref (the loss before learning) is a mean over the first batches that hold the skill, not one noisy batch."""
    iv = _guided(60, {})
    reference = iv.reference_loss().numpy()
    assert np.allclose(reference, math.log(2), rtol=0.15)  # 20% noise per batch: the mean of 10 is within 15%
    iv1 = _guided(60, {}, seed=1)
    assert np.abs(iv1.reference_loss().numpy() - reference).max() < 0.15


# ---- fit-theory's search range ------------------------------------------------------------------------------


def _measured_world(n0: float, steps: int = 3000, eta: float = 0.1):
    from skilltrain.theory.fit import Measured

    p = [0.6, 0.4]
    at = list(range(10, steps + 1, 10))
    u = resource.simulate(torch.tensor(p), eta, n0, steps, at=at).numpy()
    return Measured(["a", "b"], p, "mse", [None, None], 0.01, at, u, 10, {"a": None, "b": None})


def test_fit_finds_an_n0_beyond_the_first_search_range():
    """The old search stopped at 10^1.33 and reported that edge as the fitted N0 (σ = 1 in Fig 7: 21.5, the paper 37).
    A world with N0 = 300 (beyond the paper's 10^2 too) is fitted by widening the range."""
    from skilltrain.theory.fit import fit

    result = fit(_measured_world(300.0), eta=0.1)
    assert result["n0"]["value"] == pytest.approx(300.0, rel=0.05)
    assert result["at_search_edge"] == [] and result["n0"]["determined"]
    assert result["search_range"]["n0"][1] > 2.5  # the upper edge moved out


def test_a_value_on_the_search_edge_is_printed_as_a_bound_never_as_a_measurement():
    """N0 = 0 (the Domino regime): the best fit sits on the lowest N0 searched; that edge is a bound."""
    from skilltrain.theory.fit import LOG_N0_LIMIT, fit, format_parameter

    result = fit(_measured_world(0.0, steps=400), eta=0.1)
    assert result["at_search_edge"] == ["n0"]
    assert result["n0"]["log10"] == pytest.approx(LOG_N0_LIMIT[0]) and not result["n0"]["determined"]
    assert format_parameter(result["n0"]).startswith("≤ ") and "search edge" in format_parameter(result["n0"])
