"""skilltrain.analysis.representations on features with known answers (CKA, probes, effective dimension), and
activation capture on skilltrain's own and a user's models (on trained runs: tests/e2e/test_representations.py)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import load
from torch import nn

from skilltrain.analysis.representations import (
    capture,
    cka_matrix,
    effective_dimension,
    linear_cka,
    probe,
    ridge_fit,
)
from skilltrain.errors import UserError


def gaussian(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def orthogonal(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(gaussian(d, d, seed))
    return q


def song_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Debiased CKA written out as in Song et al. (2012): n × n Gram matrices with zeroed diagonals, no centring."""
    n = len(x)
    one = torch.ones(n, dtype=torch.float64)

    def hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:  # noqa: E741
        k, l = k - torch.diag(k.diagonal()), l - torch.diag(l.diagonal())  # noqa: E741
        return (torch.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))

    k, l = x @ x.T, y @ y.T  # noqa: E741
    return float(hsic(k, l) / torch.sqrt(hsic(k, k) * hsic(l, l)))


# ---- CKA ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("shape", [(200, 10), (30, 100)])  # features fewer, and more, than samples (both code paths)
def test_cka_of_features_with_themselves_is_one(shape, debiased):
    x = gaussian(*shape, seed=0)
    assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x.float(), x.float(), debiased=debiased) == pytest.approx(1.0, abs=1e-12)  # float32 in, float64 inside


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_invariant_to_rotation_isotropic_scaling_and_shift_but_not_to_any_linear_map(debiased):
    x = gaussian(400, 12, seed=1)
    y = x @ gaussian(12, 7, seed=2) + 2 * gaussian(400, 7, seed=3)
    base = linear_cka(x, y, debiased=debiased)
    assert 0.2 < base < 0.95  # related, not identical: the invariances below are not trivially 1 = 1
    assert linear_cka(x @ orthogonal(12, 4) * 3.7 + 5.0, y * 0.2 - 1.0, debiased=debiased) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x, y @ orthogonal(7, 5) * 40.0, debiased=debiased) == pytest.approx(base, rel=1e-10)
    stretch = torch.diag(torch.logspace(-2, 1, 12, dtype=torch.float64))  # invertible, not orthogonal
    assert abs(linear_cka(x @ stretch, y, debiased=debiased) - base) > 0.05


def test_cka_of_independent_features_is_near_zero_and_the_debiased_form_nearer():
    many = linear_cka(gaussian(5000, 8, seed=6), gaussian(5000, 8, seed=7))
    assert 0 <= many < 0.01  # samples far outnumber features: about d/n
    x, y = gaussian(300, 60, seed=8), gaussian(300, 60, seed=9)
    biased, debiased = linear_cka(x, y), linear_cka(x, y, debiased=True)
    assert biased > 0.1  # the plain estimate's bias, about d/n = 0.2: it is not 0 for independent features
    assert abs(debiased) < 0.02 and abs(debiased) < biased / 5


@pytest.mark.parametrize("shape", [(50, 6, 4), (20, 40, 30)])
def test_debiased_cka_is_the_unbiased_hsic_estimator_of_song_et_al(shape):
    n, dx, dy = shape
    x = gaussian(n, dx, seed=10) + 3.0  # uncentred: the estimator does not depend on the features' means
    y = x[:, :1] * gaussian(1, dy, seed=11) + gaussian(n, dy, seed=12) - 1.0
    assert linear_cka(x, y, debiased=True) == pytest.approx(song_cka(x, y), rel=1e-9)
    assert linear_cka(x, y) != pytest.approx(song_cka(x, y), rel=1e-3)  # the biased form is a different number


def test_cka_matrix_pairs_every_layer_of_one_capture_with_every_layer_of_another():
    acts = {"a": gaussian(100, 5, seed=13), "b": gaussian(100, 9, seed=14), "c": gaussian(100, 3, seed=15)}
    acts["b"][:, :5] += acts["a"]
    names_a, names_b, matrix = cka_matrix(acts, {"c": acts["c"], "a": acts["a"]})
    assert names_a == ["a", "b", "c"] and names_b == ["c", "a"]
    assert matrix.shape == (3, 2) and matrix.dtype == torch.float64
    for i, a in enumerate(names_a):
        for j, b in enumerate(names_b):
            assert matrix[i, j].item() == pytest.approx(linear_cka(acts[a], acts[b]), rel=1e-12)
    _, _, square = cka_matrix(acts, acts, debiased=True)
    assert torch.allclose(square.diagonal(), torch.ones(3, dtype=torch.float64)) and torch.allclose(square, square.T)
    with pytest.raises(ValueError, match="same samples"):
        cka_matrix(acts, {"short": gaussian(50, 5, seed=16)})


# ---- probes -------------------------------------------------------------------------------------------------------

def test_probe_recovers_a_planted_linear_feature_and_not_a_random_label():
    x = gaussian(1000, 20, seed=17)
    planted = (x @ gaussian(20, 1, seed=18)).squeeze(1) > 0
    assert probe(x, planted.long()) > 0.95
    assert probe(x, planted.double()) == probe(x, planted.long())  # 0/1 floats (parity targets) are classes too
    three = (x @ gaussian(20, 3, seed=19)).argmax(1)  # multi-class: one-hot ridge + argmax
    assert probe(x, three) > 0.85
    random = torch.randint(0, 2, (1000,), generator=torch.Generator().manual_seed(20))
    assert abs(probe(x, random) - 0.5) < 0.08  # chance: 300 held-out samples, ±0.03 standard deviation
    assert probe(x, random) == probe(x, random)  # a fixed split: deterministic
    wide = gaussian(1000, 500, seed=33)  # enough features to fit the random labels of the training rows
    assert abs(probe(wide, random) - 0.5) < 0.08  # held out: still chance
    hidden = torch.cat([gaussian(1000, 30, seed=21), planted[:, None] * 4.0 - 2.0], dim=1)  # one column among noise
    assert probe(hidden, planted.long()) > 0.95


def test_probe_of_real_valued_targets_is_the_held_out_r2():
    x = gaussian(600, 10, seed=22)
    w = gaussian(10, 1, seed=23).squeeze(1)
    assert probe(x, x @ w + 0.01 * gaussian(600, 1, seed=24).squeeze(1)) > 0.99
    assert probe(x, gaussian(600, 1, seed=25).squeeze(1) + 0.5) < 0.05


def test_ridge_readout_is_the_same_through_the_dual_when_features_outnumber_samples():
    a, t = gaussian(20, 50, seed=26), gaussian(20, 3, seed=27)
    primal = torch.linalg.solve(a.T @ a + 0.1 * 20 * torch.eye(50, dtype=torch.float64), a.T @ t)
    assert torch.allclose(ridge_fit(a, t, 0.1), primal, atol=1e-10)


def test_a_probe_holds_out_inputs_it_was_not_fitted_on():
    """Probe sets are drawn with replacement: on a small input space a held-out row repeats a fit row, and a readout
    wide enough to memorise the fit rows' labels scores on it. Grouped by input, held out means unseen."""
    from skilltrain.analysis.representations import input_groups, split

    inputs = torch.randint(0, 40, (1000,), generator=torch.Generator().manual_seed(40))  # 40 distinct inputs, repeated
    features = gaussian(40, 60, seed=41)[inputs]  # a random code per input, wide enough to fit any labels of 40 inputs
    labels = torch.randint(0, 2, (40,), generator=torch.Generator().manual_seed(42))[inputs]  # not linear in the code
    groups = input_groups(inputs[:, None])
    train, test = split(1000, 0.7, 0, groups)
    assert set(inputs[train].tolist()).isdisjoint(inputs[test].tolist()) and len(train) + len(test) == 1000
    assert abs(len(train) / 1000 - 0.7) < 0.05
    assert probe(features, labels, ridge=1e-6) > 0.95  # rows of the fitted inputs held out: a memorised score
    assert abs(probe(features, labels, ridge=1e-6, groups=groups) - 0.5) < 0.2  # unseen inputs: chance
    distinct = torch.arange(1000)  # every input once: the same split as without groups
    assert all(torch.equal(a, b) for a, b in zip(split(1000, 0.7, 3, distinct), split(1000, 0.7, 3)))


# ---- effective dimension ------------------------------------------------------------------------------------------

def test_participation_ratio_of_isotropic_data_is_d_and_of_rank_one_data_is_one():
    assert effective_dimension(gaussian(20000, 10, seed=28)) == pytest.approx(10, rel=0.01)
    line = gaussian(500, 1, seed=29) * gaussian(1, 10, seed=30) + 7.0
    assert effective_dimension(line) == pytest.approx(1.0, abs=1e-9)
    two = torch.cat([gaussian(20000, 2, seed=31), 1e-3 * gaussian(20000, 8, seed=32)], dim=1)
    assert effective_dimension(two * 50.0) == pytest.approx(2.0, rel=0.01)  # scale-free; tiny directions barely count
    assert math.isnan(effective_dimension(torch.ones(10, 3)))


def test_effective_dimension_is_biased_low_by_d_over_n_and_the_debiased_estimate_is_not():
    d, n = 100, 200
    x = gaussian(n, d, seed=43)
    assert effective_dimension(x) == pytest.approx(d / (1 + d / n), rel=0.05)  # 67, not 100: the stated bias
    assert effective_dimension(x, debiased=True) == pytest.approx(d, rel=0.06)
    line = gaussian(300, 1, seed=44) * gaussian(1, 10, seed=45)
    assert effective_dimension(line, debiased=True) == pytest.approx(1.0, rel=0.02)  # no bias to remove: still 1


# ---- capture ------------------------------------------------------------------------------------------------------

def skilltrain_mlp():
    from skilltrain.config import to_container
    from skilltrain.module import SkillModule

    return SkillModule(to_container(load("recipe=domino_2task", "model.widths=[8,6]"))).model


def test_capture_records_every_linear_and_activation_of_a_skilltrain_mlp_in_forward_order():
    model = skilltrain_mlp().train()
    x = torch.randint(0, 2, (64, 32)).double()
    acts = capture(model, x)
    assert list(acts) == ["layers.0", "layers.1", "layers.2", "layers.3", "layers.4"]
    assert [tuple(v.shape) for v in acts.values()] == [(64, 8), (64, 8), (64, 6), (64, 6), (64, 2)]
    assert torch.equal(acts["layers.1"], acts["layers.0"].relu())
    assert torch.equal(acts["layers.4"], model(x).detach())
    assert model.training and not any(m._forward_hooks for m in model.modules())  # mode restored, hooks removed
    picked = capture(model, x, layers=["layers.3", "layers.0"], batch_size=10)  # chunked: the same activations
    assert list(picked) == ["layers.0", "layers.3"] and torch.allclose(picked["layers.3"], acts["layers.3"])


class TokenModel(nn.Module):
    """A user's model: token embeddings [n, seq, d], one activation module applied twice, a pooled linear head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.mix = nn.Linear(4, 4)
        self.act = nn.Tanh()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.mix(self.act(self.embed(x))))
        return self.head(h.mean(dim=1))


def test_capture_averages_or_flattens_token_outputs_and_numbers_a_module_called_twice():
    torch.manual_seed(0)
    model, x = TokenModel(), torch.randint(0, 5, (16, 7))
    model.head.eval()  # a model with parts in eval mode keeps them so
    acts = capture(model, x)
    assert model.training and not model.head.training
    assert list(acts) == ["embed", "act[0]", "mix", "act[1]", "head"]
    assert torch.allclose(acts["embed"], model.embed(x).mean(dim=1))  # [n, seq, d] → [n, d], averaged over positions
    assert acts["act[1]"].shape == (16, 4) and acts["head"].shape == (16, 2)
    flat = capture(model, x, layers=["embed"], sequence="flatten")
    assert torch.equal(flat["embed"], model.embed(x).detach().flatten(1))  # [n, seq · d]: where each feature was


def test_capture_names_an_unknown_layer_with_the_closest_valid_one_in_one_line():
    with pytest.raises(UserError) as error:
        capture(skilltrain_mlp(), torch.zeros(4, 32, dtype=torch.float64), layers=["layers.0", "layer.3"])
    message = str(error.value)
    assert "\n" not in message and "'layer.3'" in message and "did you mean 'layers.3'?" in message


def test_analyze_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from skilltrain.cli import main

    assert main(["analyze"]) == 2
    assert main(["analyze", f"run_dir={tmp_path}", "nprobe=3"]) == 2
    assert main(["analyze", f"run_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(":")[1].strip() for line in err] == ["run_dir", "nprobe", "run_dir"], err


# ---- which runs compare: one task -----------------------------------------------------------------------------------

def test_task_difference_tells_a_task_drawn_from_the_data_seed_from_one_that_is_not():
    from skilltrain.analysis.representations import task_difference
    from skilltrain.data import build_task
    from skilltrain.data.parity import MaskedParityConfig, MultitaskParityConfig
    from skilltrain.data.rhm import RHMConfig

    assert task_difference(build_task(MaskedParityConfig(), 0), build_task(MaskedParityConfig(), 1)) is None
    assert task_difference(build_task(MultitaskParityConfig(), 3), build_task(MultitaskParityConfig(), 3)) is None
    assert task_difference(build_task(MultitaskParityConfig(), 0), build_task(MultitaskParityConfig(), 1)) == \
        "data seed 1 vs 0, from which multitask_parity draws its subsets"
    assert task_difference(build_task(RHMConfig(), 0), build_task(RHMConfig(), 1)) == \
        "data seed 1 vs 0, from which rhm draws its rules"
    assert task_difference(build_task(RHMConfig(m=3), 0), build_task(RHMConfig(m=4), 0)) == "data.m=4 vs 3"
    # how often a skill is sampled is not the task
    assert task_difference(build_task(MultitaskParityConfig(alpha=1.0), 0), build_task(MultitaskParityConfig(), 0)) is None


@pytest.mark.parametrize("arm", ["baseline", "modular_routing"])
def test_a_loaded_run_computes_what_the_trained_model_computed(tmp_path, arm):
    """load_run rebuilds the model through skilltrain.build (an architecture intervention's model in place) and
    loads the checkpoint: its outputs on the probe set equal the trained model's, bit for bit."""
    import contextlib
    import io

    import lightning as L

    from skilltrain.analysis.representations import load_run, probe_batches
    from skilltrain.run import fit

    trained = {}

    class Outputs(L.Callback):
        def on_train_end(self, trainer, module):
            module.eval()
            with torch.no_grad():
                trained["y"] = [module(b["x"], b.get("skill")) for b in probe_batches(module.task, 50, 0)]

    args = ["recipe=domino_2task", "trainer.max_steps=30", "trainer.enable_progress_bar=false",
            "logger.wandb.mode=disabled", f"out_dir={tmp_path}/run"]
    if arm != "baseline":
        args.append(f"interventions={{{arm}: {{}}}}")
    with contextlib.redirect_stdout(io.StringIO()):
        fit(load(*args), callbacks=[Outputs()], show=False)
    module = load_run(tmp_path / "run")
    if arm != "baseline":
        assert type(module.model).__name__ != "MLP"  # the intervention's model, not the configured one
    with torch.no_grad():
        loaded = [module(b["x"], b.get("skill")) for b in probe_batches(module.task, 50, 0)]
    assert len(loaded) == len(trained["y"])
    assert all(torch.equal(a, b) for a, b in zip(loaded, trained["y"]))
