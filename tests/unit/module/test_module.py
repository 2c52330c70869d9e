"""The loss matrix, its reduction and the per-skill metrics, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import load

from skilltrain.config import to_container
from skilltrain.metrics import SkillMetrics, row_statistics, skill_statistics
from skilltrain.module import SkillModule


def test_skill_metrics_match_a_hand_computation():
    losses = torch.tensor([[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [5.0, 6.0, 0.0]])
    correct = torch.tensor([[True, False, False], [True, True, False], [False, True, False]])
    present = torch.tensor([[True, False, False], [True, True, False], [True, True, False]])
    metric = SkillMetrics(3)
    metric.update(losses, correct, present)
    out = metric.compute()
    assert out["loss"][:2].tolist() == [(1 + 3 + 5) / 3, (4 + 6) / 2]
    assert out["acc"][:2].tolist() == [2 / 3, 1.0]
    assert math.isnan(out["loss"][2]) and math.isnan(out["acc"][2])  # no sample carried skill 3
    metric.update(torch.ones(2, 3), None, None)  # sums accumulate over updates until reset
    out = metric.compute()
    assert out["loss"].tolist() == [(9 + 2) / 5, (10 + 2) / 4, 1.0]
    assert out["rows"] == 5 and out["mask_share"].tolist() == [1.0, 1.0, 1.0]


def test_regression_skills_have_no_accuracy():
    metric = SkillMetrics(2, accuracy=False)
    metric.update(torch.tensor([[0.5, 0.0], [0.0, 0.25]]), None, torch.tensor([[True, False], [False, True]]))
    out = metric.values()
    assert out["loss"].tolist() == [0.5, 0.25] and torch.isnan(out["acc"]).all()


def test_a_non_finite_loss_stays_in_its_own_skill():
    m = module("recipe=multitask_parity", "data.n_tasks=3")
    batch = m.task.sample(3, torch.Generator().manual_seed(0), torch.tensor([0, 1, 2]))
    batch["x"][1] = float("nan")
    losses, correct, mask, present = m.loss_matrix(batch)
    metric = SkillMetrics(3)
    metric.update(losses, correct, present, mask)
    out = metric.values()
    assert torch.isnan(out["loss"][1]) and torch.isfinite(out["loss"][[0, 2]]).all()


def module(*args):
    return SkillModule(to_container(load(*args)))


def test_outputs_form_loss_is_masked_sum_over_batch_size():
    m = module("recipe=domino_2task", "data.frequencies=[1.0,0.5]", "model.dtype=float64")
    x = torch.randint(0, 2, (6, 32)).double()
    y = torch.randint(0, 2, (6, 2)).double()
    mask = torch.tensor([[1, 1], [1, 0], [1, 0], [1, 1], [1, 0], [1, 0]], dtype=torch.bool)
    losses, correct, m_mask, present = m.loss_matrix({"x": x, "y": y, "loss_mask": mask})
    out = m(x)
    assert torch.allclose(losses, (out - y) ** 2)
    assert torch.equal(correct, (out > 0.5) == (y > 0.5))
    assert present is None and torch.equal(m_mask, mask)
    expected = ((out - y) ** 2 * mask).sum() / 6  # Σ_b Σ_k M·L / B: a rare skill gets a proportionally small share
    assert torch.allclose(m.reduce(losses, m_mask), expected)


def test_control_form_puts_each_samples_loss_in_its_skill_column():
    m = module("recipe=multitask_parity", "data.n_tasks=3")
    skill = torch.tensor([0, 2, 2, 1])
    batch = m.task.sample(4, torch.Generator().manual_seed(0), skill)
    losses, correct, mask, present = m.loss_matrix(batch)
    logits = m(batch["x"])
    ce = F.cross_entropy(logits, batch["y"], reduction="none")
    assert losses.shape == (4, 3)
    for b, k in enumerate(skill.tolist()):
        assert torch.allclose(losses[b, k], ce[b])
        assert losses[b].count_nonzero() <= 1 and bool(correct[b, k]) == bool(logits[b].argmax() == batch["y"][b])
    assert torch.equal(mask, F.one_hot(skill, 3).bool()) and torch.equal(present, mask)
    assert torch.allclose(m.reduce(losses, mask), ce.mean())  # the ordinary mean cross-entropy


def test_signgd_steps_by_the_sign_of_each_gradient():
    """The optimizer skilltrain builds for optim.name=signgd moves every parameter by -lr · sign(g) at every step.
    Two steps: Adam's first step is sign-like too; its second is not (it remembers the first gradient)."""
    m = module("recipe=compositional", "optim.name=signgd", "optim.lr=0.01")
    opt = m.configure_optimizers()
    params = list(m.parameters())
    for grads in ("first", "second"):
        before = [p.detach().clone() for p in params]
        g = torch.Generator().manual_seed(0 if grads == "first" else 1)
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype) * 10 ** torch.randint(-3, 3, p.shape, generator=g)
        opt.step()
        for p, b in zip(params, before):
            assert torch.allclose(p.detach() - b, -0.01 * p.grad.sign(), rtol=1e-4, atol=1e-9), grads


@pytest.mark.parametrize("name, at_10, at_end", [("cosine", 0.01, 0.001), ("linear", 0.01, 0.001),
                                                 ("step", 0.01, 0.01 * 0.5 ** 7), ("constant", 0.01, 0.01)])
def test_learning_rate_schedules_warm_up_then_follow_torch(name, at_10, at_end):
    """lr per optimizer step from configure_optimizers: linear warm-up over 10 steps from lr·0.001, then the
    scheduler (cosine and linear reach lr·min_ratio at trainer.max_steps = 80; step halves every 10 steps)."""
    m = module("recipe=compositional", "optim.lr=0.01", f"optim.scheduler={name}", "optim.warmup_steps=10",
               "optim.min_lr_ratio=0.1", "optim.step_size=10", "optim.gamma=0.5", "trainer.max_steps=80")
    config = m.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(80):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(1e-5) and lrs[5] == pytest.approx(1e-5 + 0.5 * (0.01 - 1e-5))
    assert lrs[10] == pytest.approx(at_10) and lrs[80] == pytest.approx(at_end, rel=1e-6)
    assert all(b <= a + 1e-12 for a, b in zip(lrs[10:], lrs[11:]))  # never rises after the warm-up


def test_the_packed_step_statistics_equal_the_metric_object_in_both_forms():
    """skill_statistics (one buffer, one all-reduce per step) gives SkillMetrics' numbers, bit for bit."""
    g = torch.Generator().manual_seed(3)
    losses = torch.rand(7, 3, generator=g, dtype=torch.float64)
    correct = torch.rand(7, 3, generator=g) > 0.5
    onehot = F.one_hot(torch.tensor([0, 2, 2, 1, 0, 0, 2]), 3).bool()
    for present, mask in ((None, torch.rand(7, 3, generator=g) > 0.3), (onehot, onehot), (None, None)):
        metric = SkillMetrics(3)
        metric.update(losses, correct, present, mask)
        expected = metric.values()
        got = skill_statistics(losses, correct, present, mask)
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key].nan_to_num(-1), got[key].nan_to_num(-1)), key


def test_control_form_row_statistics_equal_the_loss_matrix_statistics():
    """The training step sums a control-form batch by skill over its rows (`row_statistics`): the same statistics
    as over the [B, K] matrix; counts and accuracies exactly, losses to the order of addition."""
    m = module("recipe=multitask_parity", "data.n_tasks=4")
    skill = torch.tensor([0, 3, 3, 1, 0, 0, 3, 1, 0])  # skill 2 absent: NaN loss and accuracy in both
    batch = m.task.sample(len(skill), torch.Generator().manual_seed(0), skill)
    batch["x"][1] = float("nan")  # a non-finite loss stays in skill 3 in both
    per_sample, right = m._rows(m(batch["x"]), batch)
    losses, correct, mask, present = m.loss_matrix(batch)
    dense = skill_statistics(losses, correct, present, mask)
    rows = row_statistics(per_sample, right, skill, 4)
    assert dense.keys() == rows.keys()
    for key in ("acc", "count", "mask_share", "rows"):
        assert torch.equal(dense[key].nan_to_num(-1), rows[key].nan_to_num(-1)), key
    for key in ("loss", "mask_loss"):
        assert torch.allclose(dense[key], rows[key], rtol=1e-15, atol=0, equal_nan=True), key
    assert torch.isnan(rows["loss"][[2, 3]]).all() and torch.isfinite(rows["loss"][[0, 1]]).all()


WEIGHTS = {  # what an intervention's loss_weights may return: broadcastable to [B, K]
    "none": lambda g, b: None,
    "per_skill": lambda g, b: torch.rand(4, generator=g),
    "per_skill_float64": lambda g, b: torch.rand(4, generator=g, dtype=torch.float64),
    "per_entry": lambda g, b: torch.rand(b, 4, generator=g),
    "per_row": lambda g, b: torch.rand(b, 1, generator=g),
    "scalar": lambda g, b: torch.tensor(0.7),
    "scalar_float64": lambda g, b: torch.tensor(1.37, dtype=torch.float64),
    "python_number": lambda g, b: 2.0,
}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("weights", list(WEIGHTS))
def test_control_form_training_step_gives_the_loss_matrix_gradients_bit_for_bit(weights, dtype, monkeypatch):
    """training_step's objective over the rows (each row's own entry of the one-hot loss matrix) has exactly the
    gradients of Σ_b Σ_k M·w·L / B over the [B, K] matrix, whatever the intervention's weights are."""
    m = module("recipe=multitask_parity", "data.n_tasks=4", f"model.dtype={dtype}")
    skill = torch.randint(0, 4, (61,), generator=torch.Generator().manual_seed(1))
    batch = m.task.sample(len(skill), torch.Generator().manual_seed(2), skill)
    w = WEIGHTS[weights](torch.Generator().manual_seed(3), len(skill))

    class Weigh:  # what training_step calls on an intervention
        def loss_weights(self, module, losses, mask, stats):
            return w

        def extra_loss(self, module):
            return None

    class _Trainer:
        world_size, log_every_n_steps, callbacks = 1, 0, []

    monkeypatch.setattr(SkillModule, "trainer", _Trainer(), raising=False)
    m.interventions = [Weigh()] if w is not None else []
    m.training_step(batch, 0).backward()
    got = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    losses, _, mask, _ = m.loss_matrix(batch)
    m.reduce(losses if w is None else losses * w, mask, torch.tensor(61.0, dtype=torch.float64)).backward()
    for a, b in zip(got, (p.grad for p in m.parameters())):
        assert torch.equal(a, b)


def test_a_subclass_loss_matrix_is_what_training_optimises(monkeypatch):
    """A SkillModule subclass that makes its own loss matrix trains on it (the control form's row shortcut is the
    built-in loss_matrix's, not a replacement for a user's)."""

    class Doubled(SkillModule):
        def loss_matrix(self, batch):
            losses, correct, mask, present = super().loss_matrix(batch)
            return 2 * losses, correct, mask, present

    class _Trainer:
        world_size, log_every_n_steps, callbacks = 1, 0, []

    monkeypatch.setattr(SkillModule, "trainer", _Trainer(), raising=False)
    args = ("recipe=multitask_parity", "data.n_tasks=3")
    plain, doubled = module(*args), Doubled(to_container(load(*args)))
    doubled.load_state_dict(plain.state_dict())
    batch = plain.task.sample(8, torch.Generator().manual_seed(0), torch.tensor([0, 1, 2, 0, 1, 2, 0, 0]))
    assert torch.allclose(doubled.training_step(batch, 0), 2 * plain.training_step(batch, 0))
