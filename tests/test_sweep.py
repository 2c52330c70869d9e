"""Scaling sweeps: the grid, the power-law fit against a hand computation, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skilltrain.sweep import fit_power_law, parse, point_name


def test_a_power_law_is_fitted_in_log_log_with_a_bootstrap_over_seeds():
    x = np.array([10.0, 100.0, 1000.0])
    clean = 3.0 * x**-0.5
    losses = np.stack([clean * f for f in (0.9, 1.0, 1.1)], axis=1)  # seeds scale the loss: the slope stays 0.5
    fit = fit_power_law(x, losses)
    assert fit["value"] == pytest.approx(0.5, abs=1e-9) and fit["r2"] == pytest.approx(1.0)
    assert fit["ci95"] == pytest.approx([0.5, 0.5], abs=1e-9) and fit["prefactor"] == pytest.approx(3.0)
    noisy = losses * np.array([[1.0, 1.3, 0.8], [1.0, 0.7, 1.2], [1.0, 1.1, 0.9]])
    fit = fit_power_law(x, noisy)
    assert fit["ci95"][0] < fit["value"] < fit["ci95"][1]
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
])
def test_bad_sweeps_are_one_line_and_exit_2(args, key, capsys):
    from skilltrain.cli import main

    assert main(["sweep", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {key}:"), err


@pytest.mark.slow
def test_a_width_sweep_fits_alpha_n_to_the_parameter_counts(tmp_path):
    from skilltrain.cli import main

    out = tmp_path / "s"
    assert main(["sweep", "recipe=domino_2task", "sweep.model.widths=[[8],[16],[32]]", "seeds=2", "trainer.max_steps=200",
                 f"out_dir={out}"]) == 0
    saved = json.loads((out / "sweep.json").read_text())
    e = saved["exponents"]["alpha_N"]
    widths = {"widths-8": 8, "widths-16": 16, "widths-32": 32}
    assert saved["parameters"] == {n: float(32 * w + w + w * 2 + 2) for n, w in widths.items()}  # 32→w→2 MLP
    x = np.array([saved["parameters"][n] for n in widths])
    overall = np.array([[v for v in saved["losses"][n]["overall"]] for n in widths])
    assert e["value"] == pytest.approx(-np.polyfit(np.log(x), np.log(np.median(overall, axis=1)), 1)[0], rel=1e-9)
    assert set(e["per_skill"]) == {"x1x2", "x3x4"} and (out / "sweep.png").is_file() and (out / "sweep.md").is_file()
    assert json.loads((out / "comparison.json").read_text())["baseline"] == "widths-8"
