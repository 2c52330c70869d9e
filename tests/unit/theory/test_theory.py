"""The toy models of skilltrain.theory against hand computations, their run directories, and the theory CLI (on real
runs and in compare: tests/e2e/test_theory.py)."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from skilltrain.theory import domino, geometry, resource


def theory_cfg(*args: str):
    from skilltrain.theory.config import load_theory_config

    return load_theory_config(list(args))


# ---- Resource model -----------------------------------------------------------------------------------------


def test_resource_mse_steps_match_a_hand_computation():
    p, eta, n0 = [0.6, 0.4], 0.1, 0.5
    u = resource.simulate(p, eta, n0, 2)
    u1 = [1 - eta * 0.6 / (1.0 + n0), 1 - eta * 0.4 / (1.0 + n0)]  # Σ p u = 1 at the start
    demand = 0.6 * u1[0] + 0.4 * u1[1]
    u2 = [u1[0] - eta * 0.6 * u1[0] / (demand + n0), u1[1] - eta * 0.4 * u1[1] / (demand + n0)]
    assert u[1].tolist() == pytest.approx(u1, rel=1e-12)
    assert u[2].tolist() == pytest.approx(u2, rel=1e-12)


def test_resource_never_goes_below_zero_and_ce_moves_logits_by_hand():
    u = resource.simulate([1.0], 5.0, 0.0, 3)  # a budget larger than what is left: clamped at 0
    assert u[1:, 0].tolist() == [0.0, 0.0, 0.0]
    ce = resource.simulate([0.5, 0.5], 0.2, 0.1, 1, loss="ce")
    z = 0.2 * 0.5 * 0.5 / (0.5 * 0.5 + 0.5 * 0.5 + 0.1)  # σ(−0) = 0.5 for both
    assert ce[1, 0].item() == pytest.approx(1 / (1 + math.exp(z)), rel=1e-12)


@pytest.mark.parametrize("n0", [1e-3, 1.0, 100.0])
def test_resource_collapse_u_to_the_one_over_p_is_one_curve_for_every_skill(n0):
    """du_i/dt = −η p_i u_i / D(t) gives u_i^(1/p_i) = exp(−η ∫ 1/D): the same for every skill, whatever N0."""
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    u = resource.simulate(p, 1e-4, n0, 4000, every=100)
    collapsed = u.clamp(min=1e-300) ** (1 / p)
    alive = collapsed[:, 0] > 1e-6  # while the curves are measurable
    assert alive.sum() >= 5
    spread = (collapsed[alive].log().amax(1) - collapsed[alive].log().amin(1)).abs()
    scale = collapsed[alive].log().abs().amax(1).clamp(min=1e-9)
    assert float((spread / scale).max()) < 0.01
    u_gated = resource.simulate(p, 1e-4, n0, 4000, every=100, gates=[None, None, None, ("and", [0])])
    assert not torch.allclose(u_gated, u)  # a gate breaks the collapse: the prerequisite's skill waits


def test_an_and_gate_holds_a_skill_until_its_parts_are_learned():
    u = resource.simulate(torch.tensor([1 / 3] * 3), 0.01, 0.01, 1000, gates=[None, None, ("and", [0, 1])], a=0.01)
    parts_learned = int((u[:, :2].amax(1) <= 0.1).nonzero()[0])
    assert u[parts_learned // 2, 2] > 0.97  # the composite has barely moved while its parts learn
    assert u[-1, 2] < 0.1


def test_gates_by_hand():
    u = torch.tensor([0.5, 0.2, 1.0, 1.0], dtype=torch.float64)
    c = resource.gate_values(u, [None, None, ("and", [0, 1]), ("or", [0, 1])], a=1.0)
    assert c.tolist() == pytest.approx([1.0, 1.0, (1 - 0.5) * (1 - 0.2), max(1 - 0.5, 1 - 0.2)])


def test_prerequisites_are_checked_by_name():
    from skilltrain.errors import UserError

    with pytest.raises(UserError, match=r"resource.prerequisites.T3.of: unknown skill 'T9'"):
        resource.gates_from({"T3": {"op": "and", "of": ["T9"]}}, ["T1", "T2", "T3"])
    with pytest.raises(UserError, match="cycle"):
        resource.gates_from({"T1": {"of": ["T2"]}, "T2": {"of": ["T1"]}}, ["T1", "T2"])


# ---- Geometry model -----------------------------------------------------------------------------------------


def _geometry(optimizer: str, lr: float, p: list[float], steps: int, **kw):
    from skilltrain.optim import build_optimizer

    cfg = geometry.GeometryConfig(n_params=4, task_vectors="basis", batch_size=None, **kw)
    optim = theory_cfg(f"optim.name={optimizer}", f"optim.lr={lr}").optim
    gen = torch.Generator().manual_seed(0)
    vectors = geometry.task_vectors("basis", len(p), [4], gen)
    return geometry.simulate(vectors, torch.tensor(p, dtype=torch.float64), cfg, lambda ps: build_optimizer(ps, optim),
                             steps, gen)


def test_geometry_sgd_on_basis_vectors_matches_the_closed_form():
    """Exact loss, SGD on the paper's gradient −(1 − s)·t: s_i(t) = 1 − (1 − lr·p_i)^t, so skill i is learned at
    ⌈ln 0.1 / ln(1 − lr·p_i)⌉."""
    lr, p = 0.1, [0.9, 0.1]
    traj = _geometry("sgd", lr, p, 1000)
    expected = [math.ceil(math.log(0.1) / math.log(1 - lr * q) - 1e-9) for q in p]
    assert traj.learned_step[0].tolist() == expected
    assert traj.levels[5, 0, 0].item() == pytest.approx(1 - (1 - lr * 0.9) ** 5, rel=1e-12)


def test_geometry_signgd_moves_every_skill_at_the_same_speed_on_basis_vectors():
    traj = _geometry("signgd", 1 / 64, [0.9, 0.1], 200)
    assert traj.levels[10, 0].tolist() == pytest.approx([10 / 64, 10 / 64], rel=1e-6)  # lr per step each, whatever p
    assert traj.learned_step[0].tolist() == [58, 58]  # 58 / 64 ≥ 0.9 > 57 / 64


def test_geometry_modular_tasks_beyond_n_have_no_parameters():
    vectors = geometry.task_vectors("modular", 6, [4], torch.Generator().manual_seed(0))
    assert vectors[0].norm(dim=1).tolist() == [1, 1, 1, 1, 0, 0]
    rotated = geometry.task_vectors("rotated", 3, [5], torch.Generator().manual_seed(0))[0]
    assert torch.allclose(rotated @ rotated.T, torch.eye(3, dtype=torch.float64), atol=1e-12)


def test_geometry_replicas_of_different_sizes_train_as_if_alone():
    """Padding a small replica with zero coordinates (the scaling sweep stacks sizes) changes nothing."""
    from skilltrain.optim import build_optimizer

    cfg = geometry.GeometryConfig(loss="ce", batch_size=None, task_vectors="random")
    optim = theory_cfg("optim.name=adam", "optim.lr=0.01").optim
    alone = geometry.task_vectors("random", 5, [3], torch.Generator().manual_seed(1))
    padded = torch.zeros(2, 5, 7, dtype=torch.float64)
    padded[0, :, :3] = alone[0]
    padded[1] = geometry.task_vectors("random", 5, [7], torch.Generator().manual_seed(2))[0]
    p = torch.tensor([0.4, 0.3, 0.1, 0.1, 0.1], dtype=torch.float64)
    run = lambda v: geometry.simulate(v, p, cfg, lambda ps: build_optimizer(ps, optim), 50, torch.Generator())  # noqa: E731
    assert torch.allclose(run(alone).losses[:, 0], run(padded).losses[:, 0], atol=1e-12)


def _power_law_seeds(seeds: int):
    """Losses c_j·N^(−a_j) at the last step and c_j·t^(−b_j) over the steps, for known per-seed exponents."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b, c = rng.uniform(0.3, 0.5, seeds), rng.uniform(0.1, 0.2, seeds), rng.uniform(1, 2, seeds)
    dims, t = np.array([10.0, 20.0, 40.0]), np.arange(1, 201, dtype=float)
    final = (c * dims[:, None] ** -a)[None]  # [alphas, dims, seeds]
    curves = np.ones((201, 1, 3, seeds))
    curves[1:, 0] = c * t[:, None, None] ** -b  # every size alike
    return a, b, final, curves


def test_scaling_exponent_intervals_are_order_statistics_of_the_per_seed_exponents(capsys):
    """Each seed's own exponent, then the distribution-free interval of their median with the level it achieves
    (10 seeds: [2nd, 9th] smallest, 1 − 2·11/1024); with 3 seeds none ("too few seeds"), where a percentile
    bootstrap labelled 95% gave one."""
    import numpy as np

    from skilltrain.theory.scaling import exponents, print_exponents

    a, b, final, curves = _power_law_seeds(10)
    e = exponents(final, curves, [1.5], [10, 20, 40], [80, 200], step_dim=20)["1.5"]
    for key, truth in (("alpha_N", a), ("alpha_N_two_point", a), ("alpha_S", b)):
        v = e[key]
        assert v["seed_exponents"] == pytest.approx(truth, rel=1e-9)
        assert v["ci95"] == pytest.approx(np.sort(truth)[[1, 8]], rel=1e-9)
        assert v["ci_level"] == pytest.approx(1 - 22 / 1024) and "order statistics" in v["ci_method"]
        assert v["ci_note"] is None
    assert e["alpha_N"]["value"] == pytest.approx(-np.polyfit(np.log([10, 20, 40]), np.log(np.median(final[0], 1)), 1)[0])
    print_exponents({"seeds": 10, "steps": 200, "exponents": {"signgd": {"1.5": e}}})
    printed = capsys.readouterr().out
    assert "97.9%" in printed and "order statistics" in printed

    a, b, final, curves = _power_law_seeds(3)
    e = exponents(final, curves, [1.5], [10, 20, 40], [80, 200], step_dim=20)["1.5"]
    for key in ("alpha_N", "alpha_N_two_point", "alpha_S"):
        assert e[key]["ci95"] is None and e[key]["ci_level"] is None and "too few seeds" in e[key]["ci_note"]
        assert math.isfinite(e[key]["value"])


# ---- Domino model -------------------------------------------------------------------------------------------


def test_domino_learns_one_skill_per_t0_and_modules_in_parallel():
    cfg = domino.DominoConfig(lr=0.01, n_params=100)  # t0 = 1 / (2 · 0.01 · 10) = 5 steps
    assert domino.skill_time(cfg) == pytest.approx(5.0)
    assert domino.schedule([0.1, 0.4, 0.3], cfg) == [(10.0, 15.0), (0.0, 5.0), (5.0, 10.0)]  # by frequency
    modular = domino.DominoConfig(lr=0.01, n_params=100, n_modules=4)  # each module: t0·√4 = 10 steps per skill
    assert domino.schedule([0.4, 0.3, 0.2, 0.1], modular) == [(0.0, 10.0)] * 4
    u = domino.unlearned([0.4, 0.3], cfg, [0, 5, 7, 10])
    assert u[:, 1].tolist() == pytest.approx([1.0, 1.0, 0.6, 0.0])


# ---- runs, fits and the CLI ---------------------------------------------------------------------------------


def test_a_theory_run_writes_a_run_directory_like_fit(tmp_path):
    from skilltrain.theory.run import run_theory

    run_dir, summary = run_theory(theory_cfg("recipe=resource_compositional", f"out_dir={tmp_path / 'r'}"))
    assert {"config.yaml", "metrics.csv", "summary.json", "curves.png"} <= {p.name for p in run_dir.iterdir()}
    saved = json.loads((run_dir / "summary.json").read_text())
    assert list(saved["skills"]) == ["T1", "T2", "T3"]
    assert saved["skills"]["T1"]["learned_step"] == saved["skills"]["T2"]["learned_step"]
    assert saved["skills"]["T3"]["learned_step"] > saved["skills"]["T1"]["learned_step"]
    assert saved["metric"] == {"name": "level", "threshold": 0.9, "split": "train", "min_samples": 1}
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"step", "train/loss", "skill/T3/loss", "skill/T3/level"} <= set(header)
    # the learn step is exact: the first step whose skill level reaches the threshold
    u = resource.simulate(torch.full((3,), 1 / 3, dtype=torch.float64), 0.007637626, 0.01, 1000,
                          gates=[None, None, ("and", [0, 1])], a=0.01)
    assert saved["skills"]["T3"]["learned_step"] == int(((1 - u[:, 2]) >= 0.9).nonzero()[0])


@pytest.mark.parametrize("args, message", [
    (["model=geomtry"], "model: unknown theory model 'geomtry' (did you mean 'geometry'?"),
    (["recipe=resource_chian"], "(did you mean 'resource_chain'?"),
    (["recipe=resource_chain", "resource.prerequisites.T3.of=[T7]"], "resource.prerequisites.T3.of: unknown skill 'T7'"),
    (["recipe=geometry_two_task", "geometry.n_parms=10"], "geometry.n_parms: unknown key (did you mean geometry.n_params?)"),
    (["recipe=geometry_two_task", "optim.name=adamm"], "optim.name"),
    (["model=resource", "skills.names=[a,b]", "skills.frequencies=[1.0]"], "skills.frequencies: has 1 values for 2"),
])
def test_bad_theory_input_is_one_line_and_exit_2(args, message, capsys):
    from skilltrain.cli import main

    assert main(["theory", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_fit_theory_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from skilltrain.cli import main

    assert main(["fit-theory"]) == 2
    assert main(["fit-theory", f"run_dir={tmp_path}"]) == 2
    assert main(["fit-theory", f"run_dir={tmp_path}", "model=geometry"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(":")[1].strip() for line in err] == ["run_dir", "run_dir", "model"], err


def test_a_small_scaling_sweep_writes_its_exponents(tmp_path):
    import numpy as np

    from skilltrain.theory.run import run_theory

    args = ["recipe=geometry_scaling", "skills.n=60", "scaling.dims=[8,16,32]", "scaling.alphas=[1.5]", "scaling.seeds=3",
            "steps=300", "scaling.optimizers=[signgd]", "scaling.step_dim=16", f"out_dir={tmp_path / 's'}"]
    run_dir, out = run_theory(theory_cfg(*args))
    saved = json.loads((run_dir / "scaling.json").read_text())
    e = saved["exponents"]["signgd"]["1.5"]
    losses = [e["final_loss_median"][str(n)] for n in (8, 16, 32)]
    assert losses[0] > losses[1] > losses[2]  # more parameters, lower loss
    by_hand = -np.polyfit(np.log([8, 16, 32]), np.log(losses), 1)[0]
    assert e["alpha_N"]["value"] == pytest.approx(by_hand, rel=1e-9)
    assert e["alpha_N"]["ci95"] is None and "too few seeds" in e["alpha_N"]["ci_note"]  # 3 seeds: [min, max] is 75%
    assert e["alpha_S"]["dim"] == 16 and e["domino"] == pytest.approx(0.5) and e["quanta_S"] == pytest.approx(1 / 3)
    assert (run_dir / "scaling.png").is_file()


def test_fit_theory_reads_the_declared_structure_of_a_compositional_task(tmp_path):
    from helpers import fit_quietly

    from skilltrain.theory.fit import fit_resource

    fit_quietly("recipe=compositional", "trainer.max_steps=60", "seed=1", out_dir=tmp_path / "r")
    config = tmp_path / "r" / "config.yaml"  # as a run made before `analysis` existed wrote it
    config.write_text(re.sub(r"analysis:\n(  .*\n)+", "", config.read_text()))
    assert "analysis" not in config.read_text()
    result = fit_resource(tmp_path / "r")
    composite = list(result["r2"])[2]
    assert result["fixed"]["prerequisites"] == {composite: {"op": "and", "of": list(result["r2"])[:2]}}


def test_stop_patience_counts_from_the_last_learn_step_exactly():
    from skilltrain.theory.run import simulate

    for recipe in ("geometry_two_task", "resource_chain"):
        curves = simulate(theory_cfg(f"recipe={recipe}", "stop.when_all_learned=true", "stop.patience=0"))
        assert curves.last_step == max(curves.learned_step), recipe


@pytest.mark.parametrize("args, key", [
    (["recipe=resource_chain", "resource.prerequisites.T3.of=5"], "resource.prerequisites.T3"),
    (["recipe=resource_chain", "resource.prerequisites.T3.of=T2"], "resource.prerequisites.T3"),
    (["recipe=geometry_scaling", "geometry.loss=mse"], "geometry.loss"),
    (["recipe=geometry_scaling", "scaling.dims=[10,10,20]"], "scaling.dims"),
    (["recipe=geometry_two_task", "optim.warmup_steps=10"], "optim.warmup_steps"),
])
def test_more_bad_theory_input(args, key, capsys, tmp_path):
    from skilltrain.cli import main

    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "scaling.json").write_text("{}")
    assert main(["theory", *args, f"out_dir={tmp_path / 'kept'}", "overwrite=true"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {key}:"), err
    assert (tmp_path / "kept" / "scaling.json").is_file()  # refused before anything was written


def test_compare_refuses_a_scaling_sweep_as_an_arm(capsys, tmp_path):
    from skilltrain.cli import main

    assert main(["compare", "recipe=geometry_scaling", "arms=[baseline]", "seeds=1", f"out_dir={tmp_path}"]) == 2
    assert "scaling.dims" in capsys.readouterr().err
