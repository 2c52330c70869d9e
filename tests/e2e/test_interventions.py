"""Interventions: each mode against a hand computation on a tiny batch, composition, refusals, and end to end."""

from __future__ import annotations

import pytest
import torch
from helpers import fit_quietly, load

from skilltrain.config import to_container
from skilltrain.metrics import skill_statistics
from skilltrain.module import SkillModule


class _Strategy:
    def reduce(self, tensor, reduce_op="mean"):
        return tensor  # one process


class _Trainer:
    strategy = _Strategy()


def tiny(*args):
    """A module on domino_2task (p = [1, 0.1]) and one hand-made batch with a loss mask."""
    m = SkillModule(to_container(load("recipe=domino_2task", "data.n_bits=8", "model.widths=[6]", *args)))
    m._trainer_stub = _Trainer()
    g = torch.Generator().manual_seed(0)
    batch = m.task.sample(6, g)
    batch["loss_mask"] = torch.tensor([[1, 1], [1, 0], [1, 0], [1, 1], [1, 0], [1, 0]], dtype=torch.bool)
    losses, correct, mask, present = m.loss_matrix(batch)
    stats = skill_statistics(losses, correct, present, mask)
    return m, losses, mask, stats


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

