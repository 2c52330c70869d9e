"""jacobian_descent without training: the gradient its loss weights give is torchjd's aggregate of the per-skill
Jacobian, UPGrad's update conflicts with neither of two conflicting skills, and its configuration is checked."""

from __future__ import annotations

import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from helpers import load

from skilltrain.callbacks.jacobian_descent import AGGREGATORS, JacobianDescentConfig
from skilltrain.errors import UserError
from skilltrain.metrics import skill_statistics
from skilltrain.module import SkillModule

pytest.importorskip("torchjd")


def two_skills(seed: int = 0):
    """A linear model θ ∈ R^4 near 0 on B = 64 rows, skill 0 on every row and skill 1 on a quarter of them (loss
    mask), each with its own least-squares target x·w_k: skill k's gradient is about −2 w_k, and w_0 · w_1 < 0."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    x = q.repeat(16, 1)  # xᵀx ∝ I over all rows and over skill 1's rows: skill k's gradient is 2 (θ − w_k)
    y0 = x @ torch.tensor([1.0, -2.0, 0.5, 1.0], dtype=torch.float64)
    y1 = x @ torch.tensor([-1.0, 1.0, 2.0, 0.0], dtype=torch.float64)
    theta = torch.nn.Parameter(0.05 * torch.randn(4, generator=g, dtype=torch.float64))
    mask = torch.stack([torch.ones(64, dtype=torch.bool), torch.arange(64) < 16], dim=1)

    def losses():
        out = x @ theta
        return torch.stack([(out - y0) ** 2, (out - y1) ** 2], dim=1)  # L[B, 2]

    return theta, losses, mask


def combined_gradient(aggregator: str, theta, losses, mask, step: int = 0, **params):
    """What training does with the intervention: its weights on the loss matrix, the module's reduction, backward."""
    from skilltrain.callbacks.jacobian_weighting import JacobianDescent

    task = SimpleNamespace(skills=[f"s{k}" for k in range(mask.shape[1])])
    iv = JacobianDescent(replace(JacobianDescentConfig(aggregator=aggregator), **params), task)
    module = SimpleNamespace(parameters=lambda: [theta], trainer=SimpleNamespace(world_size=1), global_step=step)
    L = losses()
    stats = skill_statistics(L, None, mask, mask, accuracy=False)
    weights = iv.loss_weights(module, L, mask, stats)
    loss = SkillModule.reduce(L * weights, mask, stats["rows"])
    (grad,) = torch.autograd.grad(loss, [theta])
    return grad, iv


def per_skill_gradients(theta, losses, mask) -> torch.Tensor:
    """The Jacobian of the per-skill masked mean losses, one autograd pass per skill: [2, 4]."""
    L = losses()
    means = torch.where(mask, L, 0).sum(0) / mask.sum(0)
    return torch.stack([torch.autograd.grad(m, [theta], retain_graph=True)[0] for m in means])


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_the_combined_gradient_is_torchjds_aggregate_of_the_per_skill_jacobian(aggregator):
    from skilltrain.callbacks.jacobian_weighting import make_aggregator

    theta, losses, mask = two_skills()
    grad, iv = combined_gradient(aggregator, theta, losses, mask)
    jacobian = per_skill_gradients(theta, losses, mask)
    expected = make_aggregator(JacobianDescentConfig(aggregator=aggregator), 2)(jacobian)  # a fresh one, by hand
    torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(grad, iv.skill_weights @ jacobian, rtol=1e-6, atol=1e-9)  # the logged weights made it


@pytest.mark.parametrize("seed", range(5))
def test_upgrad_updates_conflict_with_neither_of_two_conflicting_skills(seed):
    theta, losses, mask = two_skills(seed)
    g = per_skill_gradients(theta, losses, mask)
    plain = g[0] + 0.25 * g[1]  # the baseline's gradient, each skill by its share of the rows ...
    assert g[0] @ g[1] < 0 and plain @ g[1] < 0  # ... goes against the rare skill here
    grad, _ = combined_gradient("upgrad", theta, losses, mask)
    assert grad @ g[0] >= -1e-9 * g[0].norm() * grad.norm()
    assert grad @ g[1] >= -1e-9 * g[1].norm() * grad.norm()
    assert grad.norm() > 0


def test_a_skill_absent_from_the_batch_has_no_row_and_weight_zero():
    theta, losses, mask = two_skills()
    mask[:, 1] = False
    grad, iv = combined_gradient("upgrad", theta, losses, mask)
    assert iv.skill_weights[1] == 0
    jacobian = per_skill_gradients(theta, losses, torch.stack([mask[:, 0], mask[:, 0]], 1))[:1]
    torch.testing.assert_close(grad, iv.skill_weights[0] * jacobian[0])
    torch.testing.assert_close(grad / grad.norm(), jacobian[0] / jacobian[0].norm())  # one row: its own direction


def test_pcgrads_random_orders_depend_on_the_step_only_and_leave_the_runs_random_stream_alone():
    theta, losses, mask = two_skills()
    third = lambda: torch.cat([losses(), losses()[:, :1] * 0.5 + losses()[:, 1:] * 2], dim=1)  # noqa: E731
    mask = torch.cat([mask, mask[:, :1]], dim=1)
    state = torch.get_rng_state()
    grads = [combined_gradient("pcgrad", theta, third, mask, step=s)[0] for s in (7, 7, 8, 9, 10, 11)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(grads[0], grads[1])  # the same step (on another rank, or resumed): the same orders
    assert any(not torch.equal(grads[0], g) for g in grads[2:])  # three skills: the order matters, and it varies


def test_its_keys_are_checked_per_aggregator():
    with pytest.raises(UserError, match=r"interventions.jacobian_descent.aggregator: unknown aggregator 'upgard' "
                                        r"\(did you mean 'upgrad'\?"):
        load("recipe=domino_2task", "interventions.jacobian_descent.aggregator=upgard")
    with pytest.raises(UserError, match=r"jacobian_descent.c: not used by aggregator=upgrad, which would ignore it "
                                        r"\(c is for cagrad; upgrad takes norm_eps, reg_eps\)$"):
        load("recipe=domino_2task", "interventions.jacobian_descent.c=0.2")
    with pytest.raises(UserError, match=r"jacobian_descent.c: must be ≥ 0, got -1"):
        load("recipe=domino_2task", "interventions.jacobian_descent.aggregator=cagrad", "interventions.jacobian_descent.c=-1")
    cfg = load("recipe=domino_2task", "interventions.jacobian_descent.aggregator=cagrad", "interventions.jacobian_descent.c=0.2")
    assert cfg.interventions.jacobian_descent.c == 0.2


def test_without_torchjd_it_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchjd", None)  # what an environment without it looks like to an import
    with pytest.raises(UserError, match=r'^interventions.jacobian_descent: needs torchjd, an optional dependency: '
                                        r'pip install -e "\.\[mtl\]"$'):
        load("recipe=domino_2task", "interventions.jacobian_descent={}")


def test_it_is_refused_beside_another_loss_intervention_and_accepted_beside_data_sampling():
    from skilltrain.build import build_interventions

    cfg = load("recipe=domino_2task", "interventions.jacobian_descent={}", "interventions.gradient_rescaling={}")
    task = SkillModule(cfg).task
    with pytest.raises(UserError, match="^interventions: jacobian_descent sets the loss itself and cannot be combined "
                                        "with gradient_rescaling, which also changes it$"):
        build_interventions(cfg, task)
    cfg = load("recipe=domino_2task", "interventions.jacobian_descent={}",
               "interventions.skill_reweighting.mode=balanced_sampling")
    assert [iv.name for iv in build_interventions(cfg, task)] == ["jacobian_descent", "skill_reweighting"]
