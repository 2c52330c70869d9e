"""skilltrain.analysis.discovery: skills found without labels, on cases whose answer is known."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from skilltrain.analysis import discovery as D
from skilltrain.data.base import Task
from skilltrain.errors import UserError
from skilltrain.files import dumps_json
from skilltrain.module import SkillModule


def two_skill_curves(n_per: int = 30, seed: int = 0) -> tuple[dict, list[int], torch.Tensor]:
    """A probe of two skills with random inputs (nothing to read off them): skill a's losses fall at step 100, skill
    b's at step 300, each sample with its own noise and level."""
    g = torch.Generator().manual_seed(seed)
    steps = list(range(0, 500, 10))
    t = torch.tensor(steps, dtype=torch.float64)[:, None]
    skill = torch.cat([torch.zeros(n_per), torch.ones(n_per)]).long()
    drop = torch.where(skill == 0, 100.0, 300.0).double()[None]
    level = 0.5 + torch.rand(1, 2 * n_per, generator=g, dtype=torch.float64)
    losses = level * torch.sigmoid((drop - t) / 10) + 0.02 * torch.rand(len(steps), 2 * n_per, generator=g, dtype=torch.float64)
    probe = {"x": torch.rand(2 * n_per, 6, generator=g), "y": torch.randint(0, 2, (2 * n_per,), generator=g),
             "skill": skill, "skill_names": ["a", "b"]}
    return probe, steps, losses.float()


def strict(result: dict) -> dict:
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(dumps_json(result), parse_constant=refuse)


def test_loss_curves_find_two_separated_skills_exactly():
    probe, steps, losses = two_skill_curves()
    result, affinity = D.discover(probe, steps, losses, method="loss_curves", k=2)
    assert result["ari"] == pytest.approx(1.0) and result["nmi"] == pytest.approx(1.0)
    assert affinity.shape == (60, 60)
    assert result["confusion"] == [[30, 0], [0, 30]]  # c0 is learned first: skill a
    assert [c["learn_step"] for c in result["cluster_info"]] == [130, 330]
    assert abs(result["input_baseline"]["ari"]) < 0.2  # random inputs: the baseline finds nothing
    assert strict(result)["clusters"][:2] == ["c0", "c0"]


def test_k_auto_finds_the_two_skills_and_says_how_clearly():
    probe, steps, losses = two_skill_curves()
    result, _ = D.discover(probe, steps, losses, method="loss_curves", k="auto")
    assert result["k"] == 2 and result["k_auto"]["k"] == 2
    assert result["k_auto"]["gap_ratio"] > 3 and result["k_auto"]["second_k"] != 2
    assert result["ari"] == pytest.approx(1.0)


def test_choose_k_on_three_blocks():
    blocks = np.kron(np.eye(3), np.ones((10, 10))) * 0.9 + 0.05
    auto = D.choose_k(blocks)
    assert auto["k"] == 3 and auto["gap_ratio"] > 3


def gradient_case(seed: int = 0):
    """A linear model on inputs where skill a lives in features 0-1 and skill b in 2-3: their per-sample gradients
    live in disjoint columns of the weight (|cos| = 0 across skills, > 0 within)."""
    g = torch.Generator().manual_seed(seed)
    task = Task.from_skills(["a", "b"], form="control", loss="ce")
    model = torch.nn.Linear(4, 2)
    n = 40
    skill = torch.arange(2).repeat_interleave(n // 2)
    x = torch.rand(n, 4, generator=g) + 0.5
    x[skill == 0, 2:] = 0
    x[skill == 1, :2] = 0
    probe = {"x": x, "y": torch.randint(0, 2, (n,), generator=g), "skill": skill, "skill_names": ["a", "b"]}
    return SkillModule(model=model, task=task), probe


def test_per_sample_gradients_match_autograd_one_sample_at_a_time():
    module, probe = gradient_case()
    grads = D.per_sample_gradients(module, probe, chunk=7)
    for i in (0, 25):
        module.zero_grad()
        one = {k: v[i:i + 1] for k, v in probe.items() if isinstance(v, torch.Tensor)}
        losses, _, mask, _ = module.loss_matrix(one)
        torch.where(mask, losses, 0).sum().backward()
        expected = torch.cat([p.grad.flatten() for p in module.parameters()])
        assert torch.allclose(grads[i], expected, atol=1e-6)


def test_gradients_find_two_skills_in_disjoint_parameters():
    module, probe = gradient_case()
    steps, losses = [0, 10], torch.ones(2, 40)
    result, _ = D.discover(probe, steps, losses, method="gradients", k=2, module=module)
    assert result["ari"] == pytest.approx(1.0)
    only_weight, _ = D.discover(probe, steps, losses, method="gradients", k=2, module=module, params=["model.weight"])
    assert only_weight["ari"] == pytest.approx(1.0)


def test_bad_inputs_are_one_line_each():
    probe, steps, losses = two_skill_curves()
    with pytest.raises(UserError, match=r"^k: expected auto or a number of clusters in \[2, 59\] \(the probe set has 60"):
        D.discover(probe, steps, losses, method="loss_curves", k=60)
    with pytest.raises(UserError, match="method: unknown method 'grad' .*did you mean 'gradients'"):
        D.discover(probe, steps, losses, method="grad", k=2)
    module, _ = gradient_case()
    with pytest.raises(UserError, match="params: unknown parameter 'model.weigth' .*did you mean 'model.weight'"):
        D.chosen_parameters(module, ["model.weigth"])


def test_runs_without_a_recording_say_why(tmp_path):
    for name, expected in (("multitask_parity", "has no recording for discovery; train it with discover.record=true"),
                           ("compositional_parity", "a task of the outputs form")):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(f"data:\n  name: {name}\n")
        with pytest.raises(UserError, match=expected):
            D.read_recording(run)


def test_without_scikit_learn_one_line_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'skilltrain\[discover\]'"):
        D.discover(*two_skill_curves(), method="loss_curves", k=2)
