"""jacobian_descent without training: the gradient its loss weights give is torchjd's aggregate of the per-skill
Jacobian, UPGrad's update conflicts with neither of two conflicting skills, params=shared leaves the skill-owned
entries (which the models declare truly) their plain summed gradient, and its configuration is checked."""

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
from skilltrain.models import skill_owners
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


# ---- params=shared: what a skill owns, and what its entries receive -------------------------------------------------

MODELS = {  # recipe and model: the forms and heads whose skill-owned entries differ
    "mlp, outputs form": ("recipe=domino_2task", "model.widths=[6]"),
    "mlp, per-skill head": ("recipe=multitask_parity", "data.n_tasks=3", "model.widths=[6]", "model.head=per_skill"),
    "modular, routed, shared head": ("recipe=multitask_parity", "data.n_tasks=3", "model.name=modular_mlp",
                                     "model.widths=[9,6]", "model.head=shared"),
    "modular, routed, per-skill head": ("recipe=multitask_parity", "data.n_tasks=3", "model.name=modular_mlp",
                                        "model.widths=[9]", "model.head=per_skill"),
    "modular, outputs form": ("recipe=compositional", "model.name=modular_mlp", "model.widths=[9,6]"),
    "modular, split inputs": ("recipe=modularity_regression", "model.name=modular_mlp", "model.split_inputs=true"),
}


def modular_batch(*args, seed: int = 0):
    """A module and a batch of 12 rows in which every skill has rows (and, in the outputs form, a rarer skill 1);
    SiLU, so that no unit is dead and every owned entry has a gradient to check. The initial weights come from `seed`
    too, not from whatever state the tests before left."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = SkillModule(load(*args, "model.dtype=float64", "model.activation=silu"))
    g = torch.Generator().manual_seed(seed)
    k = m.task.n_skills
    batch = m.task.sample(12, g, torch.arange(12) % k) if m.task.form == "control" else m.task.sample(12, g)
    if m.task.form == "outputs":
        batch["loss_mask"] = torch.ones(12, k, dtype=torch.bool)
        batch["loss_mask"][::3, 1] = False
    return m, batch


def full_jacobian(m, batch) -> torch.Tensor:
    """[K, P]: each skill's masked mean loss differentiated over every parameter, one autograd pass per skill."""
    losses, _, mask, _ = m.loss_matrix(batch)
    means = torch.where(mask, losses, 0).sum(0) / mask.sum(0) if mask is not None else losses.mean(0)
    params = list(m.parameters())
    return torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(x, params, retain_graph=True)])
                        for x in means])


def flat_owners(m) -> torch.Tensor:
    named = skill_owners(m.model)
    return torch.cat([named[n].flatten() if n in named else torch.full((p.numel(),), -1)
                      for n, p in m.model.named_parameters()])


@pytest.mark.parametrize("model", MODELS)
def test_an_entry_a_model_says_skill_k_owns_gets_gradient_from_skill_ks_loss_only(model):
    m, batch = modular_batch(*MODELS[model])
    owner = flat_owners(m)
    jacobian = full_jacobian(m, batch)
    k = m.task.n_skills
    for s in range(k):
        assert jacobian[s, owner == s].abs().sum() > 0  # its own loss moves it ...
        for other in set(range(k)) - {s}:
            assert torch.all(jacobian[other, owner == s] == 0), (s, other)  # ... and no other skill's
    assert (owner >= 0).any() and set(owner.unique().tolist()) <= set(range(-1, k))


def test_a_model_with_no_per_skill_part_shares_everything():
    m = SkillModule(load("recipe=multitask_parity", "data.n_tasks=3", "model.widths=[6]", "model.head=shared"))
    assert skill_owners(m.model) == {}


def shared_gradient(m, batch, aggregator: str = "upgrad", params: str = "shared"):
    """The gradient a training step gives with jacobian_descent: its loss weights, the module's reduction, its
    extra loss term, one backward; and that loss's value."""
    from skilltrain.callbacks.jacobian_weighting import JacobianDescent

    iv = JacobianDescent(JacobianDescentConfig(aggregator=aggregator, params=params), m.task)
    module = SimpleNamespace(model=m.model, parameters=m.parameters, trainer=SimpleNamespace(world_size=1), global_step=0)
    losses, correct, mask, present = m.loss_matrix(batch)
    stats = skill_statistics(losses, correct, present, mask)
    loss = SkillModule.reduce(losses * iv.loss_weights(module, losses, mask, stats), mask, stats["rows"])
    extra = iv.extra_loss(module)
    total = loss if extra is None else loss + extra
    grad = torch.cat([g.flatten() for g in torch.autograd.grad(total, list(m.parameters()), retain_graph=True)])
    assert extra is None or extra.item() == 0  # the objective's value is left alone
    plain = torch.cat([g.flatten() for g in torch.autograd.grad(SkillModule.reduce(losses, mask, stats["rows"]),
                                                                 list(m.parameters()))])
    return grad, plain, iv, stats


@pytest.mark.parametrize("model", ["mlp, per-skill head", "modular, routed, shared head", "mlp, outputs form"])
@pytest.mark.parametrize("aggregator", ["upgrad", "mgda", "nash_mtl"])
def test_with_params_shared_owned_entries_get_the_plain_sum_and_shared_ones_the_aggregate_of_their_own_columns(
        model, aggregator):
    from skilltrain.callbacks.jacobian_weighting import make_aggregator

    m, batch = modular_batch(*MODELS[model], seed=3)
    shared = flat_owners(m) < 0
    jacobian = full_jacobian(m, batch)
    # what the last check rests on: two skills' gradients conflict (else UPGrad's update is the plain one)
    assert (jacobian @ jacobian.T < 0).any()
    grad, plain, iv, stats = shared_gradient(m, batch, aggregator)
    torch.testing.assert_close(grad[~shared], plain[~shared], rtol=1e-9, atol=1e-12)  # the baseline's, exactly
    torch.testing.assert_close(plain, stats["mask_share"] @ jacobian, rtol=1e-9, atol=1e-12)  # = Σ_k share_k J_k
    weights = make_aggregator(JacobianDescentConfig(aggregator=aggregator), m.task.n_skills).weighting(
        jacobian[:, shared])  # a fresh aggregator, by hand, on the shared columns alone
    torch.testing.assert_close(iv.skill_weights, weights, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(grad[shared], weights @ jacobian[:, shared], rtol=1e-6, atol=1e-9)
    everywhere, _, _, _ = shared_gradient(m, batch, aggregator, params="all")
    assert not torch.allclose(everywhere[~shared], plain[~shared])  # params=all moves the owned entries too


def test_with_params_shared_a_model_with_no_per_skill_part_trains_as_with_params_all():
    m, batch = modular_batch("recipe=multitask_parity", "data.n_tasks=3", "model.widths=[6]", "model.head=shared")
    grad, _, iv, _ = shared_gradient(m, batch)
    assert iv.correction is None
    torch.testing.assert_close(grad, shared_gradient(m, batch, params="all")[0], rtol=0, atol=0)


def test_with_params_shared_and_nothing_shared_every_entry_gets_the_plain_sum():
    m, batch = modular_batch(*MODELS["modular, outputs form"])
    assert bool((flat_owners(m) >= 0).all())  # modules and their own outputs: nothing shared
    grad, plain, iv, stats = shared_gradient(m, batch)
    torch.testing.assert_close(grad, plain, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(iv.skill_weights, stats["mask_share"].to(iv.skill_weights))


def test_params_is_checked():
    with pytest.raises(UserError, match=r"^interventions.jacobian_descent.params: unknown parameter selection 'shard' "
                                        r"\(did you mean 'shared'\? valid: all, shared\)$"):
        load("recipe=domino_2task", "interventions.jacobian_descent.params=shard")
    cfg = load("recipe=domino_2task", "interventions.jacobian_descent.aggregator=cagrad",
               "interventions.jacobian_descent.params=shared")  # every aggregator takes it
    assert cfg.interventions.jacobian_descent.params == "shared"
