"""Interventions end to end: each speeds the rare skill on domino."""

from __future__ import annotations

import pytest
from helpers import fit_quietly


@pytest.fixture(scope="module")
def domino_baseline(tmp_path_factory):
    return fit_quietly("recipe=domino_2task", "seed=1", "trainer.max_steps=800",
                       out_dir=tmp_path_factory.mktemp("base") / "run")


@pytest.mark.slow
@pytest.mark.parametrize("arm", [
    "interventions.skill_reweighting={}",
    "interventions.gradient_rescaling={}",
    "interventions.modular_routing={}",
])
def test_interventions_speed_the_rare_skill_on_domino(arm, domino_baseline, tmp_path):
    run = fit_quietly("recipe=domino_2task", "seed=1", "trainer.max_steps=800", arm, out_dir=tmp_path / "arm")
    t_base, t_arm = (s["skills"]["x3x4"]["learned_step"] for s in (domino_baseline, run))
    assert t_base is not None and t_arm is not None and t_arm < t_base, (t_base, t_arm)
    assert run["interventions"] == [arm.split(".")[1].split("=")[0]]

