"""Interventions: each mode against a hand computation on a tiny batch, composition and refusals (end to end:
tests/e2e/test_interventions.py)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import fit_quietly, load

from skilltrain.api import intervention
from skilltrain.callbacks.intervention import Intervention, check_composition
from skilltrain.cli import main
from skilltrain.config import to_container
from skilltrain.metrics import skill_statistics
from skilltrain.models.modular import MaskedLinear, ModularMLP
from skilltrain.models.moe import MixtureMLP
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


def test_inverse_frequency_weights_equalise_expected_shares():
    m, losses, mask, stats = tiny()
    iv = intervention("skill_reweighting", m.task)
    w = iv.loss_weights(m, losses, mask, stats)
    assert torch.allclose(w, torch.tensor([0.55, 5.5], dtype=w.dtype))  # (1/p)·Σp/K, p = [1, 0.1]
    p = torch.tensor([1.0, 0.1], dtype=w.dtype)
    assert torch.allclose(p * w, torch.full((2,), 0.55, dtype=w.dtype))  # equal expected shares, Σ p·w = Σ p


def test_self_reweighting_weights_each_entry_by_its_loss_over_the_mean():
    m, losses, mask, stats = tiny()
    iv = intervention("skill_reweighting", m.task, mode="self")
    w = iv.loss_weights(m, losses, mask, stats)
    mean = losses[mask].mean()
    assert torch.allclose(w, losses.detach() / mean)
    loss = m.reduce(losses * w, mask)
    assert torch.allclose(loss, (losses[mask] ** 2).sum() / mean / 6)  # mean_b[ℓ·sg(ℓ)/sg(mean ℓ)] over B rows
    assert not w.requires_grad


def test_loss_normalize_gives_every_skill_the_same_log_loss_budget():
    m, losses, mask, stats = tiny()
    iv = intervention("gradient_rescaling", m.task)
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
    iv = intervention("gradient_rescaling", m.task, mode="grad_norm")
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
    trainer = type("T", (), {"global_step": 0, "log_every_n_steps": 10})()
    intervention("gradient_rescaling", m.task, mode="sign").on_before_optimizer_step(trainer, m, None)
    assert all(torch.equal(p.grad, g.sign()) for p, g in zip(m.parameters(), before))


def test_balanced_sampling_rates_in_both_forms():
    m, *_ = tiny()
    iv = intervention("skill_reweighting", m.task, mode="balanced_sampling")  # outputs form, p = [1, 0.1]
    assert torch.allclose(iv.stream_rates, torch.tensor([0.55, 0.55], dtype=torch.float64))  # same Σ rates, uniform
    ctrl = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=4", "data.alpha=1.0")))
    iv = intervention("skill_reweighting", ctrl.task, mode="balanced_sampling", exponent=0.5)
    p = torch.tensor(ctrl.task.frequencies, dtype=torch.float64)
    assert torch.allclose(iv.stream_rates, p.sqrt() / p.sqrt().sum())


def _online_updates(iv, module, losses, rows=2048.0):
    """Feed per-skill losses (NaN: skill absent) to an online reweighting; the rates it set, one per update."""
    set_rates = []
    datamodule = type("D", (), {"set_skill_rates": lambda self, r: set_rates.append(r.clone())})()
    trainer = type("T", (), {"datamodule": datamodule})()
    for loss in losses:
        module.train_stats = {"mask_loss": torch.tensor(loss, dtype=torch.float64),
                              "rows": torch.tensor(rows, dtype=torch.float64)}
        iv.on_train_batch_end(trainer, module, None, None, 0)
    return set_rates


def test_online_eg_update_by_hand():
    ctrl = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=3", "data.alpha=0.0")))
    iv = intervention("skill_reweighting", ctrl.task, mode="online", update_every=2, ema=0.5, lr=1.0, floor=0.1)
    (rates,) = _online_updates(iv, ctrl, [[0.6, 0.3, 0.3], [0.6, 0.1, 0.2]])
    # by hand (DoReMi's exponentiated gradient): EMA = [0.6, 0.2, 0.25], signal = EMA / mean = [12/7, 4/7, 5/7];
    # q ∝ (1/3)·exp(signal) = [0.59284, 0.18906, 0.21809]; with the floor, 0.9·q + 0.1/3:
    assert rates.tolist() == pytest.approx([0.5668924, 0.2034888, 0.2296188], abs=1e-6)
    assert rates[0] > rates[2] > rates[1]  # the highest loss gets the most data


def test_online_eg_step_is_the_mirror_descent_step():
    """EG's mixture (before the floor) maximises lr·<q, s> − KL(q ‖ q_old) over the simplex: no other mixture
    scores higher. A property of the update, checked without its formula."""
    ctrl = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=4", "data.alpha=1.0")))
    iv = intervention("skill_reweighting", ctrl.task, mode="online", update_every=1, ema=0.0, lr=0.7, floor=1e-9)
    old = iv.mixture.clone()
    losses = [0.9, 0.2, 0.5, 0.4]
    _online_updates(iv, ctrl, [losses])
    signal = torch.tensor(losses, dtype=torch.float64) / torch.tensor(losses, dtype=torch.float64).mean()

    def score(q):
        return float(0.7 * (q * signal).sum() - (q * (q / old).log()).sum())

    best = score(iv.mixture)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        other = iv.mixture * torch.exp(0.3 * torch.randn(4, generator=g, dtype=torch.float64))
        assert score(other / other.sum()) <= best + 1e-12


def test_online_exp3_update_by_hand_with_rewards_weighted_by_how_likely_a_skill_is_seen():
    m = tiny()[0]  # outputs form, p = [1, 0.1]: loss-mask rates Σp·q, capped at 1
    iv = intervention("skill_reweighting", m.task, mode="online", algorithm="exp3", update_every=1, ema=0.0, lr=2.0,
                                                 floor=0.2)
    assert iv.stream_rates.tolist() == [1.0, 0.1]
    (rates,) = _online_updates(iv, m, [[0.2, 0.6]], rows=6)
    # by hand: signal = loss / mean = [0.5, 1.5]; P(seen in 6 rows) = [1, 1 − 0.9^6 = 0.468559];
    # log w = floor·lr·signal/P/K = [0.1, 0.640261]; mixture = 0.8·softmax(log w) + 0.1 = [0.394502, 0.605498];
    # loss-mask rates = mixture · Σp = mixture · 1.1
    assert iv.log_weights.tolist() == pytest.approx([0.1, 0.6402609], abs=1e-6)
    assert iv.mixture.tolist() == pytest.approx([0.3945015, 0.6054985], abs=1e-6)
    assert rates.tolist() == pytest.approx([0.4339517, 0.6660483], abs=1e-6)


@pytest.mark.parametrize("form", ["control", "outputs"])
def test_exp3_reward_estimate_is_unbiased_under_the_real_sampler(form):
    """Monte Carlo with the stream's own sampling: rewards observed only for skills in the batch, weighted by
    1 / P(seen), average to the true rewards; weighting by 1 / (per-row rate) inflates the rare skill's >10×."""
    from skilltrain.callbacks.data_sampling import observation_probability
    from skilltrain.data.stream import TrainStream

    if form == "control":
        task = SkillModule(to_container(load("recipe=multitask_parity"))).task  # 10 Zipf skills, rarest p = 0.016
    else:
        task = SkillModule(to_container(load("recipe=domino_2task", "data.frequencies=[1.0,0.02]"))).task
    stream, batch, n = TrainStream(task, None, 64, seed=0), 64, 3000
    rates = stream.rates.clone()
    reward = torch.linspace(1.0, 2.0, task.n_skills, dtype=torch.float64)
    p_seen = observation_probability(rates, batch)
    total, naive = torch.zeros_like(reward), torch.zeros_like(reward)
    for i in range(n):
        b = stream.batch(i)
        seen = (torch.bincount(b["skill"], minlength=task.n_skills) > 0) if form == "control" else b["loss_mask"].any(0)
        total += torch.where(seen, reward / p_seen, 0)
        naive += torch.where(seen, reward / rates, 0)
    standard_error = reward * ((1 - p_seen) / (p_seen * n)).sqrt()
    assert ((total / n - reward).abs() <= 4 * standard_error + 1e-9).all(), (total / n, reward)
    assert naive[-1] / n > 10 * reward[-1]  # the old estimator's bonus for the rarest skill


def test_exp3_finds_the_best_arm_of_a_bandit():
    """Skills with fixed noisy losses, the most frequent one the highest: EXP3 drawing real batches from the stream
    must put (nearly) all its mass on it. With rewards divided by the per-row rate it does not (share ~0.64)."""
    from skilltrain.data.stream import TrainStream

    m = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=4", "data.alpha=1.5")))
    stream = TrainStream(m.task, None, 16, seed=0)
    iv = intervention("skill_reweighting", m.task, mode="online", algorithm="exp3", update_every=1, ema=0.0, lr=10.0,
                                                 floor=0.1)
    trainer = type("T", (), {"datamodule": type("D", (), {"set_skill_rates": lambda self, r: stream.set_rates(r)})()})()
    true = torch.tensor([0.9, 0.3, 0.2, 0.1], dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    shares = []
    for i in range(400):
        batch = stream.batch(i)
        counts = torch.bincount(batch["skill"], minlength=4)
        noisy = true + 0.05 * torch.randn(4, generator=g, dtype=torch.float64)
        m.train_stats = {"mask_loss": torch.where(counts > 0, noisy, float("nan")),
                         "rows": torch.tensor(16.0, dtype=torch.float64)}
        iv.on_train_batch_end(trainer, m, None, batch, i)
        shares.append(float(iv.mixture[0]))
    assert sum(shares[-100:]) / 100 > 0.9  # the floor caps it at 0.9 + 0.1 / 4


def test_online_average_of_a_skill_starts_when_it_is_first_seen():
    ctrl = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=3", "data.alpha=0.0")))
    iv = intervention("skill_reweighting", ctrl.task, mode="online", update_every=3, ema=0.5, lr=1.0, floor=0.1)
    nan = float("nan")
    (rates,) = _online_updates(iv, ctrl, [[0.6, 0.3, nan], [0.6, 0.3, nan], [0.6, 0.3, 0.9]])
    assert torch.allclose(iv.signal_ema, torch.tensor([0.6, 0.3, 0.9], dtype=torch.float64))  # not 0.5 · 0.9
    assert rates.argmax() == 2  # the late skill's high loss counts in full: it gets the most data
    iv = intervention("skill_reweighting", ctrl.task, mode="online", update_every=1)
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
    oracle = intervention("modular_routing", m.task)
    oracle.setup(None, m, "fit")
    assert isinstance(m.model, ModularMLP) and m.model.hidden[0].out_features == 30
    assert m.model.head.weight.dtype == torch.float64
    assert all(isinstance(layer, MaskedLinear) for layer in m.model.hidden)
    m2 = SkillModule(to_container(load("recipe=compositional", "model.widths=[30,30]")))
    learned = intervention("modular_routing", m2.task, mode="learned", n_experts=3, balance=0.1)
    learned.setup(None, m2, "fit")
    assert isinstance(m2.model, MixtureMLP)
    m2(torch.randint(0, 2, (16, 32)).double())
    assert float(learned.extra_loss(m2).detach()) == pytest.approx(0.1 * float(m2.model.aux.detach()))
    assert 0.99 <= float(m2.model.aux.detach()) <= 3.01  # E·Σ f·P: 1 when balanced, E when collapsed


def test_two_interventions_compose_as_equalise_then_tilt(tmp_path):
    m, losses, mask, stats = tiny()
    reweight = intervention("skill_reweighting", m.task)
    rescale = intervention("gradient_rescaling", m.task)
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
        check_composition([intervention("skill_reweighting", m.task, mode="online"), _Sampler(None, m.task)],
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


def test_loss_normalize_returns_a_skill_to_its_natural_weight_once_enough_samples_show_it_learned():
    """A skill seen on one sample a step, right every time, is not 'learned' on a few lucky samples: its weight stays
    normalised (1 / (share · L)) until about min_samples samples agree; then it is 1, the plain loss's."""
    task = tiny()[0].task
    iv = intervention("gradient_rescaling", task, learned_threshold=0.9)  # as a user's own Trainer would build it
    iv.min_samples = 20

    def step(acc_rare, n_rare):
        stats = {"mask_share": torch.tensor([1.0, 0.1], dtype=torch.float64),
                 "mask_loss": torch.tensor([0.5, 0.25], dtype=torch.float64),
                 "acc": torch.tensor([0.5, acc_rare], dtype=torch.float64),
                 "count": torch.tensor([10.0, n_rare], dtype=torch.float64)}
        return iv.loss_weights(None, torch.zeros(2, 2, dtype=torch.float64), None, stats)

    normalised = torch.tensor([1 / (1.0 * (0.5 + 1e-8)), 1 / (0.1 * (0.25 + 1e-8))], dtype=torch.float64)
    for _ in range(5):  # five lucky samples: not evidence
        assert torch.allclose(step(1.0, 1.0), normalised)
    weights = [step(1.0, 1.0)[1].item() for _ in range(20)]
    assert weights[-1] == 1.0 and weights[0] != 1.0  # learned once ~min_samples samples were pooled
    assert step(0.0, 30.0)[1].item() != 1.0  # forgotten (a batch of errors): normalised again


def _resource_world(mode: str | None, steps: int = 3000, eta: float = 0.01, n0: float = 0.05):
    """A world that is the Resource model (CE form): each step the skills' u move as the model says under the mixture
    the intervention sets, and the intervention sees the model's losses −log(1 − u). (Learn steps, intervention.)"""
    from skilltrain.theory import resource

    ctrl = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=4", "data.alpha=1.5")))
    iv = intervention("skill_reweighting", ctrl.task, mode=mode, fit_every=100) if mode else None
    natural = torch.tensor(ctrl.task.frequencies, dtype=torch.float64)
    datamodule = type("D", (), {"set_skill_rates": lambda self, r: None})()
    trainer = type("T", (), {"datamodule": datamodule, "max_steps": steps})()
    if iv:
        iv.on_train_start(trainer, ctrl)
    u = torch.full((4,), 0.5, dtype=torch.float64)  # CE: nothing learned is u = σ(−0)
    learned = [None] * 4
    for t in range(1, steps + 1):
        q = iv.mixture / iv.mixture.sum() if iv else natural
        u = resource.simulate(q, eta, n0, 1, loss="ce", u0=u)[-1]
        learned = [s if s is not None else (t if u[k] <= 0.1 else None) for k, s in enumerate(learned)]
        if iv:
            ctrl.train_stats = {"mask_loss": -torch.log1p(-u), "rows": torch.tensor(2048.0, dtype=torch.float64)}
            iv.on_train_batch_end(trainer, ctrl, None, None, 0)
    return learned, iv


@pytest.mark.slow  # computes for long; trains no run
def test_resource_guided_sampling_in_a_resource_model_world():
    """In a world that follows the Resource model, the intervention recovers its η and N0 from the losses, and the
    mixture it picks learns every skill sooner without slowing any skill by more than max_slowdown (1.25)."""
    natural, _ = _resource_world(None)
    guided, iv = _resource_world("resource")
    assert iv.fitted[0] == pytest.approx(-2.0, abs=0.2)  # log10 η
    assert iv.fitted[1] == pytest.approx(math.log10(0.05), abs=0.3)  # log10 N0
    assert max(guided) <= 0.7 * max(natural)  # all four learned ≥ 1.4× sooner (measured 1930 → 1152)
    for k in range(4):
        assert guided[k] <= 1.25 * natural[k], (k, guided, natural)
    assert guided[-1] < natural[-1]  # the rarest skill gains

