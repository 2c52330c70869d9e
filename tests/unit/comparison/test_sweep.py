"""Scaling sweeps: the grid, the power-law fit against a hand computation, and bad input (real sweeps:
tests/e2e/test_sweep.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skilltrain.sweep import fit_power_law, parse, point_name


def test_a_power_law_is_fitted_in_log_log_with_an_interval_over_seeds():
    x = np.array([10.0, 100.0, 1000.0])
    clean = 3.0 * x**-0.5
    losses = np.stack([clean * f for f in (0.9, 1.0, 1.1, 0.95, 1.05)], axis=1)  # seeds scale the loss: slope 0.5
    fit = fit_power_law(x, losses)
    assert fit["value"] == pytest.approx(0.5, abs=1e-9) and fit["r2"] == pytest.approx(1.0)
    assert fit["ci95"] == pytest.approx([0.5, 0.5], abs=1e-9) and fit["prefactor"] == pytest.approx(3.0)
    assert fit["ci_level"] == pytest.approx(0.9375) and fit["floor"] == 0.0  # 5 seeds: [min, max] has 93.75%
    noisy = losses * np.array([[1.0, 1.3, 0.8, 1.1, 0.9], [1.0, 0.7, 1.2, 0.9, 1.1], [1.0, 1.1, 0.9, 1.0, 1.0]])
    fit = fit_power_law(x, noisy)
    assert fit["ci95"][0] < fit["value"] < fit["ci95"][1]
    few = fit_power_law(x, losses[:, :3])  # 3 seeds: no interval can have its coverage
    assert few["value"] == pytest.approx(0.5) and few["ci95"] is None and "too few seeds" in few["ci_note"]
    assert fit_power_law(x, np.zeros((3, 2)))["value"] is None  # no positive loss: no exponent, said so
    assert fit_power_law(np.array([5.0, 5.0]), np.ones((2, 2)))["value"] is None  # one x value: no slope


def test_a_masked_weight_counts_its_unmasked_entries(tmp_path):
    import torch

    from skilltrain.sweep import parameter_count

    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    state = {"model.block.weight": torch.zeros(2, 2), "model.block.mask": mask, "model.block.bias": torch.zeros(2),
             "model.head.weight": torch.zeros(1, 2)}
    (tmp_path / "checkpoints").mkdir()
    torch.save({"state_dict": state}, tmp_path / "checkpoints" / "last.ckpt")
    assert parameter_count(tmp_path) == 2 + 2 + 2


def test_the_grid_and_its_names():
    axes, rest = parse(["recipe=domino_2task", "sweep.model.widths=[[16],[32]]", "sweep.optim.lr=[0.001,0.01]", "seeds=2"])
    assert axes == {"model.widths": [[16], [32]], "optim.lr": [0.001, 0.01]} and rest == ["recipe=domino_2task", "seeds=2"]
    assert point_name({"model.widths": [16], "optim.lr": 0.001}) == "widths-16_lr-0p001"  # no dot: a dotlist key


@pytest.mark.parametrize("args, key", [
    (["recipe=domino_2task"], "sweep"),
    (["recipe=domino_2task", "sweep.model.widths=[[16]]"], "sweep.model.widths"),
    (["recipe=domino_2task", "sweep.model.widths=16"], "sweep.model.widths"),
    (["recipe=domino_2task", "sweep.model.widths=[[8],[16]]", "arms=[baseline]"], "arms"),
    (["recipe=domino_2task", "sweep.seed=[1,2]"], "sweep.seed"),
    (["recipe=domino_2task", "sweep.optim.name=[adam,sgd]"], "sweep.optim.name"),  # refused before anything runs
    (["recipe=domino_2task", "sweep=[1,2]"], "sweep"),
    (["recipe=rhm_cnn", "sweep.data.n_samples=[128,null]", "sweep.data.m=[3,4]"], "sweep.data.n_samples"),
    (["recipe=domino_2task", "sweep.optim.lr=[nan,0.1]", "sweep.model.depth=[2,3]"], "sweep.optim.lr"),  # "nan": no value
    (["recipe=domino_2task", "sweep.optim.lr=[0.1,0.2]", "sweep.floor=-1"], "sweep.floor"),
])
def test_bad_sweeps_are_one_line_and_exit_2(args, key, capsys):
    from skilltrain.cli import main

    assert main(["sweep", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {key}:"), err


def test_sample_complexity_is_where_the_median_error_falls_to_a_tenth_of_chance_and_stays():
    from skilltrain.analysis.sample_complexity import crossing, sample_complexity, threshold

    assert threshold(4) == pytest.approx(0.075) and threshold(2) == pytest.approx(0.05)
    sizes = np.array([100.0, 200.0, 400.0, 800.0])
    # between 200 (0.3) and 400 (0.05): a fraction (0.3 − 0.075) / 0.25 = 0.9 of the way in log P
    assert crossing(sizes, np.array([0.5, 0.3, 0.05, 0.0]), 0.075) == (pytest.approx(200 * 2**0.9), "grid")
    # a dip below that comes back up is not generalisation: the crossing is the last one
    assert crossing(sizes, np.array([0.5, 0.05, 0.2, 0.0]), 0.075) == (pytest.approx(400 * 2**0.625), "grid")
    assert crossing(sizes, np.array([0.05, 0.04, 0.0, 0.0]), 0.075) == (None, "below")
    assert crossing(sizes, np.array([0.5, 0.4, 0.3, 0.2]), 0.075) == (None, "above")
    assert crossing(sizes, np.array([0.5, np.nan, 0.05, 0.0]), 0.075)[0] == pytest.approx(100 * 4**(0.425 / 0.45))
    same = np.repeat(np.array([[0.5], [0.3], [0.05], [0.0]]), 5, axis=1)  # five identical seeds: no spread
    measured = sample_complexity(list(sizes), same, 0.075)
    assert measured["P_star"] == pytest.approx(200 * 2**0.9) and measured["ci95"] == pytest.approx([200 * 2**0.9] * 2)
    assert measured["ci_level"] == pytest.approx(0.9375)
    spread = same + np.array([[0.0] * 5, [0.0, -0.2, 0.1, 0.0, 0.0], [0.0, 0.0, 0.1, 0.0, 0.0], [0.0] * 5])
    lo, hi = sample_complexity(list(sizes), spread, 0.075)["ci95"]  # [min, max] of the seeds' own P*
    assert lo == pytest.approx(200 * 2**0.5) and hi == pytest.approx(400 * 2**((0.15 - 0.075) / 0.15))
    three = sample_complexity(list(sizes), same[:, :3], 0.075)
    assert three["ci95"] is None and "too few seeds" in three["note"]
    never = sample_complexity(list(sizes), np.full((4, 2), 0.5), 0.075)
    assert never["P_star"] is None and never["where"] == "above" and "P* > 800" in never["note"]


def test_sample_complexity_per_setting_counts_every_class_alike_and_says_which_runs_are_left_out(tmp_path):
    """A grid of m × P written by hand (no training): per-class accuracies at the last evaluation, one run diverged,
    one setting with no finished run, and skewed class frequencies."""
    from helpers import load
    from omegaconf import OmegaConf

    from skilltrain.sweep import analyse_sweep

    skills = [f"class{c}" for c in range(4)]
    frequencies = [0.94, 0.02, 0.02, 0.02]
    accuracy = {(3, 100): [1.0, 0.0, 0.0, 0.0],  # always class0: 6% of the weighted error, but chance's balanced error
                (3, 400): [1.0, 1.0, 1.0, 0.9]}
    axes = {"data.m": [3, 4], "data.n_samples": [100, 400]}
    grid = [{"data.m": m, "data.n_samples": p} for m in (3, 4) for p in (100, 400)]
    names = [point_name(point) for point in grid]
    diverged = {names[1]: [3], names[2]: [1, 2, 3], names[3]: [1, 2, 3]}  # m=4: nothing finished
    for point, name in zip(grid, names):
        for seed in (1, 2, 3):
            run = tmp_path / name / f"seed{seed}"
            run.mkdir(parents=True)
            cfg = load("recipe=rhm_cnn", f"data.m={point['data.m']}", f"data.n_samples={point['data.n_samples']}",
                       f"data.frequencies={frequencies}", f"seed={seed}")
            OmegaConf.save(cfg, run / "config.yaml")
            (run / "summary.json").write_text(json.dumps({"skills": {s: {"frequency": f} for s, f in zip(skills, frequencies)}}))
            acc = accuracy.get((point["data.m"], point["data.n_samples"]), [0.25] * 4)
            header = ["step", "val/loss", *(f"skill/{s}/val_{k}" for s in skills for k in ("acc", "loss"))]
            row = [100, 0.5, *(v for a in acc for v in (a, 0.5))]
            (run / "metrics.csv").write_text(",".join(header) + "\n" + ",".join(map(str, row)) + "\n")
    (tmp_path / "comparison.json").write_text(json.dumps({
        "skills": skills, "seeds_planned": [1, 2, 3], "seeds": {n: [1, 2, 3] for n in names}, "diverged": diverged}))
    result = analyse_sweep(tmp_path, axes, grid, names)
    m3, m4 = result["sample_complexity"]
    assert m3["data.m"] == 3 and m3["P"] == [100, 400] and m3["runs"] == [3, 2] and m3["threshold"] == pytest.approx(0.075)
    assert m3["median_error"] == pytest.approx([0.75, 0.025])  # balanced: the skew does not hide the constant guess
    assert m3["P_star"] == pytest.approx(100 * 4 ** ((0.75 - 0.075) / (0.75 - 0.025))) and m3["where"] == "grid"
    assert "400 (2 of 3)" in m3["note"]
    assert m4["data.m"] == 4 and m4["P_star"] is None and m4["where"] == "no data" and m4["runs"] == [0, 0]
    markdown = (tmp_path / "sweep.md").read_text()
    assert "| 4 | — | no data | — |" in markdown and (tmp_path / "sample_complexity.png").is_file()


def test_a_power_law_with_an_irreducible_floor_is_fitted_when_asked():
    """L = 0.2 + 3·x^(−0.5): a pure power law bends (α too small); subtracting the given or fitted floor recovers 0.5."""
    x = np.array([10.0, 100.0, 1000.0, 10000.0, 100000.0])
    losses = np.stack([0.2 + 3.0 * x**-0.5 * f for f in (0.9, 1.0, 1.1, 0.95, 1.05)], axis=1)
    pure = fit_power_law(x, losses)
    assert pure["value"] < 0.3 and pure["floor"] == 0.0
    given = fit_power_law(x, losses, 0.2)
    assert given["value"] == pytest.approx(0.5, abs=1e-6) and given["floor_method"] == "given"
    fitted = fit_power_law(x, losses, "fit")
    assert fitted["floor_method"] == "fitted" and fitted["floor"] == pytest.approx(0.2, rel=0.02)
    assert fitted["value"] == pytest.approx(0.5, abs=0.02)
