"""Interventions: each mode against a hand computation on a tiny batch, composition, refusals, and end to end."""

from __future__ import annotations

import pytest
import torch
from conftest import fit_quietly, load

from skilltrain.callbacks.gradient_rescaling import GradientRescaling, GradientRescalingConfig
from skilltrain.callbacks.intervention import Intervention, check_composition
from skilltrain.callbacks.modular_routing import ModularRouting, ModularRoutingConfig
from skilltrain.callbacks.skill_reweighting import SkillReweighting, SkillReweightingConfig
from skilltrain.cli import main
from skilltrain.config import to_container
from skilltrain.models.modular import MaskedLinear, ModularMLP
from skilltrain.models.moe import MixtureMLP
from skilltrain.module import SkillModule
from skilltrain.registry import INTERVENTIONS


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
    m.train_metrics.update(losses, correct, present, mask)
    stats = m.train_metrics.values()
    return m, losses, mask, stats


def test_inverse_frequency_weights_equalise_expected_shares():
    m, losses, mask, stats = tiny()
    iv = SkillReweighting(SkillReweightingConfig(), m.task)
    w = iv.loss_weights(m, losses, mask, stats)
    assert torch.allclose(w, torch.tensor([0.55, 5.5], dtype=w.dtype))  # (1/p)·Σp/K, p = [1, 0.1]
    p = torch.tensor([1.0, 0.1], dtype=w.dtype)
    assert torch.allclose(p * w, torch.full((2,), 0.55, dtype=w.dtype))  # equal expected shares, Σ p·w = Σ p


def test_self_reweighting_weights_each_entry_by_its_loss_over_the_mean():
    m, losses, mask, stats = tiny()
    iv = SkillReweighting(SkillReweightingConfig(mode="self"), m.task)
    w = iv.loss_weights(m, losses, mask, stats)
    mean = losses[mask].mean()
    assert torch.allclose(w, losses.detach() / mean)
    loss = m.reduce(losses * w, mask)
    assert torch.allclose(loss, (losses[mask] ** 2).sum() / mean / 6)  # mean_b[ℓ·sg(ℓ)/sg(mean ℓ)] over B rows
    assert not w.requires_grad


def test_loss_normalize_gives_every_skill_the_same_log_loss_budget():
    m, losses, mask, stats = tiny()
    iv = GradientRescaling(GradientRescalingConfig(), m.task)
    w = iv.loss_weights(m, losses, mask, stats)
    loss = m.reduce(losses * w, mask)
    per_skill = [losses[:, k][mask[:, k]].mean() for k in range(2)]  # L_k over the entries in the objective
    assert torch.allclose(loss, torch.tensor(2.0, dtype=loss.dtype), atol=1e-6)  # Σ_k L_k / sg(L_k) = K
    params = list(m.parameters())
    got = torch.autograd.grad(loss, params, retain_graph=True)
    expected = torch.autograd.grad(sum(pk / pk.detach() for pk in per_skill), params)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(got, expected))


def test_grad_norm_rescales_each_skill_gradient_to_the_mean_norm(monkeypatch):
    m, losses, mask, stats = tiny()
    monkeypatch.setattr(type(m), "trainer", property(lambda self: self._trainer_stub))
    iv = GradientRescaling(GradientRescalingConfig(mode="grad_norm"), m.task)
    w = iv.loss_weights(m, losses, mask, stats)
    params = list(m.parameters())
    parts = torch.where(mask, losses, 0).sum(0) / 6
    norms = [torch.cat([g.flatten() for g in torch.autograd.grad(parts[k], params, retain_graph=True)]).norm()
             for k in range(2)]
    scaled = [float(w[k] * norms[k]) for k in range(2)]
    assert scaled[0] == pytest.approx(scaled[1]) == pytest.approx(float(sum(norms) / 2))
    assert torch.allclose(iv.grad_norms, torch.stack(norms).double())


def test_sign_mode_replaces_gradients_by_their_sign():
    m, losses, mask, _ = tiny()
    m.reduce(losses, mask).backward()
    before = [p.grad.clone() for p in m.parameters()]
    GradientRescaling(GradientRescalingConfig(mode="sign"), m.task).on_before_optimizer_step(None, m, None)
    assert all(torch.equal(p.grad, g.sign()) for p, g in zip(m.parameters(), before))


def test_balanced_sampling_rates_in_both_forms():
    m, *_ = tiny()
    iv = SkillReweighting(SkillReweightingConfig(mode="balanced_sampling"), m.task)  # outputs form, p = [1, 0.1]
    assert torch.allclose(iv.rates, torch.tensor([0.55, 0.55], dtype=torch.float64))  # same Σ rates, uniform
    ctrl = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=4", "data.alpha=1.0")))
    iv = SkillReweighting(SkillReweightingConfig(mode="balanced_sampling", exponent=0.5), ctrl.task)
    p = torch.tensor(ctrl.task.frequencies, dtype=torch.float64)
    assert torch.allclose(iv.rates, p.sqrt() / p.sqrt().sum())


def test_online_eg_update_by_hand(monkeypatch):
    ctrl = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=3", "data.alpha=0.0")))
    iv = SkillReweighting(SkillReweightingConfig(mode="online", update_every=2, ema=0.5, lr=1.0, floor=0.1), ctrl.task)
    set_rates = []

    class Stream:
        def set_rates(self, r):
            set_rates.append(r.clone())

    trainer = type("T", (), {"datamodule": type("D", (), {"stream": Stream()})()})()
    for loss in ([0.6, 0.3, 0.3], [0.6, 0.1, 0.2]):
        ctrl.train_stats = {"mask_loss": torch.tensor(loss, dtype=torch.float64)}
        iv.on_train_batch_end(trainer, ctrl, None, None, 0)
    ema = torch.tensor([0.6, 0.2, 0.25], dtype=torch.float64)  # 0.5·first + 0.5·second
    mixture = torch.softmax(torch.log(torch.full((3,), 1 / 3, dtype=torch.float64)) + ema / ema.mean(), 0)
    expected = 0.9 * mixture + 0.1 / 3
    assert len(set_rates) == 1 and torch.allclose(set_rates[0], expected)
    assert set_rates[0][0] > set_rates[0][2] > set_rates[0][1]  # the highest loss gets the most data


def _online_updates(iv, module, losses):
    """Feed per-skill losses (NaN: skill absent) to an online reweighting; the rates it set, one per update."""
    set_rates = []
    stream = type("S", (), {"set_rates": lambda self, r: set_rates.append(r.clone())})()
    trainer = type("T", (), {"datamodule": type("D", (), {"stream": stream})()})()
    for loss in losses:
        module.train_stats = {"mask_loss": torch.tensor(loss, dtype=torch.float64)}
        iv.on_train_batch_end(trainer, module, None, None, 0)
    return set_rates


def test_online_exp3_update_by_hand_with_rewards_weighted_by_the_sampling_rate():
    m = tiny()[0]  # outputs form, p = [1, 0.1]: loss-mask rates Σp·q, capped at 1
    iv = SkillReweighting(SkillReweightingConfig(mode="online", algorithm="exp3", update_every=1, ema=0.0, lr=2.0,
                                                 floor=0.2), m.task)
    rates_before = iv.rates.clone()
    assert torch.allclose(rates_before, torch.tensor([1.0, 0.1], dtype=torch.float64))
    (rates,) = _online_updates(iv, m, [[0.2, 0.6]])
    signal = torch.tensor([0.5, 1.5], dtype=torch.float64)  # loss / mean loss
    log_w = 0.2 * 2.0 * (signal / rates_before) / 2  # floor · lr · importance-weighted reward / K
    mixture = 0.8 * torch.softmax(log_w, 0) + 0.2 / 2
    assert torch.allclose(iv.log_weights, log_w) and torch.allclose(iv.mixture, mixture)
    assert torch.allclose(rates, (mixture * 1.1).clamp(max=1.0))


def test_online_average_of_a_skill_starts_when_it_is_first_seen():
    ctrl = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=3", "data.alpha=0.0")))
    iv = SkillReweighting(SkillReweightingConfig(mode="online", update_every=3, ema=0.5, lr=1.0, floor=0.1), ctrl.task)
    nan = float("nan")
    (rates,) = _online_updates(iv, ctrl, [[0.6, 0.3, nan], [0.6, 0.3, nan], [0.6, 0.3, 0.9]])
    assert torch.allclose(iv.signal_ema, torch.tensor([0.6, 0.3, 0.9], dtype=torch.float64))  # not 0.5 · 0.9
    assert rates.argmax() == 2  # the late skill's high loss counts in full: it gets the most data
    iv = SkillReweighting(SkillReweightingConfig(mode="online", update_every=1), ctrl.task)
    (rates,) = _online_updates(iv, ctrl, [[0.6, 0.3, nan]])  # never seen yet: counted as average, not as zero
    ema = torch.tensor([0.6, 0.3, 0.45], dtype=torch.float64)  # the unseen skill enters at the mean of the seen
    lr, floor = iv.params.lr, iv.params.floor
    mixture = torch.softmax(torch.log(torch.full((3,), 1 / 3, dtype=torch.float64)) + lr * ema / ema.mean(), 0)
    assert torch.allclose(rates, (1 - floor) * mixture + floor / 3) and rates[0] > rates[2] > rates[1]


def test_learned_router_mixes_with_its_probability_and_learns_from_the_task_loss():
    torch.manual_seed(0)
    moe = MixtureMLP(4, [6], "relu", n_outputs=2, n_experts=3, top_k=1).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    out = moe(x)
    probs = torch.softmax(moe.router(x), -1)
    top, index = probs.max(-1)
    h = moe.act(moe.hidden[0](x))
    experts = moe.head(h).view(5, 3, 2)
    assert torch.allclose(out, top[:, None] * experts[torch.arange(5), index])  # Switch: y = p_e(x) · expert_e(x)
    out.pow(2).sum().backward()
    assert moe.router.weight.grad.abs().sum() > 0  # the task loss reaches the router (a gate of 1 would block it)
    two = MixtureMLP(4, [6], "relu", n_outputs=2, n_experts=3, top_k=2).double()
    y = two(x)
    p2 = torch.softmax(two.router(x), -1)
    top2, index2 = p2.topk(2, -1)
    e2 = two.head(two.act(two.hidden[0](x))).view(5, 3, 2)
    w = top2 / top2.sum(-1, keepdim=True)  # top-k > 1: renormalised over the chosen experts
    assert torch.allclose(y, (w[..., None] * e2.gather(1, index2[..., None].expand(5, 2, 2))).sum(1))


def test_modular_routing_replaces_the_mlp_with_modules():
    m = SkillModule(to_container(load("recipe=compositional", "model.widths=[30,30]")))
    oracle = ModularRouting(ModularRoutingConfig(), m.task)
    oracle.setup(None, m, "fit")
    assert isinstance(m.model, ModularMLP) and m.model.hidden[0].out_features == 30
    assert m.model.head.weight.dtype == torch.float64
    assert all(isinstance(layer, MaskedLinear) for layer in m.model.hidden)
    m2 = SkillModule(to_container(load("recipe=compositional", "model.widths=[30,30]")))
    learned = ModularRouting(ModularRoutingConfig(mode="learned", n_experts=3, balance=0.1), m2.task)
    learned.setup(None, m2, "fit")
    assert isinstance(m2.model, MixtureMLP)
    m2(torch.randint(0, 2, (16, 32)).double())
    assert float(learned.extra_loss(m2).detach()) == pytest.approx(0.1 * float(m2.model.aux.detach()))
    assert 0.99 <= float(m2.model.aux.detach()) <= 3.01  # E·Σ f·P: 1 when balanced, E when collapsed


def test_two_interventions_compose_as_equalise_then_tilt(tmp_path):
    m, losses, mask, stats = tiny()
    reweight = SkillReweighting(SkillReweightingConfig(), m.task)
    rescale = GradientRescaling(GradientRescalingConfig(), m.task)
    w = reweight.loss_weights(m, losses, mask, stats) * rescale.loss_weights(m, losses, mask, stats)
    loss = m.reduce(losses * w, mask)
    assert torch.allclose(loss, torch.tensor(0.55 + 5.5, dtype=loss.dtype), atol=1e-6)  # Σ_k w_k · L_k / sg(L_k)
    summary = fit_quietly("recipe=domino_2task", "trainer.max_steps=40", "interventions.skill_reweighting={}",
                          "interventions.gradient_rescaling={}", out_dir=tmp_path / "run")
    assert summary["interventions"] == ["gradient_rescaling", "skill_reweighting"]
    header = (tmp_path / "run/metrics.csv").read_text().splitlines()[0]
    assert "intervention/skill_reweighting/weight/x3x4" in header and "intervention/gradient_rescaling/weight/x1x2" in header


class _Sampler(Intervention):
    name = "test_sampler"
    touches = frozenset({"data"})


def test_two_interventions_that_own_the_data_are_refused():
    m, *_ = tiny()
    with pytest.raises(Exception, match="both change the data; they cannot be combined"):
        check_composition([SkillReweighting(SkillReweightingConfig(mode="online"), m.task), _Sampler(None, m.task)],
                          load("recipe=domino_2task"))


@pytest.mark.parametrize("args, message", [
    (["recipe=multitask_parity", "model.name=transformer", "data.token_form=true", "interventions.modular_routing={}"],
     "interventions.modular_routing: turns an MLP into modules, but model.name=transformer"),
    (["recipe=modularity_regression", "interventions.skill_reweighting.mode=balanced_sampling"],
     "a full-batch pool (data.batch_size=null) draws every row every step"),
    (["interventions.gradient_rescaling.mode=grad_nrm"], "unknown mode 'grad_nrm' (did you mean 'grad_norm'?"),
    (["interventions.skill_reweighting.floor=0"], "interventions.skill_reweighting.floor: must be in (0, 1)"),
    (["interventions.modular_routing.top_k=0"], "interventions.modular_routing.top_k: must be ≥ 1"),
    (["interventions.skill_reweighting.lr=fast"], "interventions.skill_reweighting.lr: expected a number, got 'fast'"),
    (["interventions.skill_reweighting.lrr=1"], "interventions.skill_reweighting.lrr: unknown key (did you mean"),
    (["interventions.skill_reweigting={}"], "unknown intervention 'skill_reweigting' (did you mean 'skill_reweighting'?"),
])
def test_bad_intervention_settings_are_one_line(args, message, capsys, tmp_path):
    assert main(["fit", *args, f"out_dir={tmp_path}/run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_every_intervention_is_registered_with_a_method_card():
    names = INTERVENTIONS.names()
    assert names == ["gradient_rescaling", "modular_routing", "skill_reweighting"]
    for entry in INTERVENTIONS.entries():
        doc = entry.obj.__module__
        card = __import__(doc, fromlist=["_"]).__doc__
        assert "Method card" in card and "Formula" in card and "When it helps" in card


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
