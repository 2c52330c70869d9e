"""Scaling sweeps end to end: a width sweep and a training-set sweep."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest


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


@pytest.mark.slow
def test_a_sweep_over_the_training_set_measures_the_sample_complexity(tmp_path):
    from skilltrain.cli import main

    out = tmp_path / "s"
    assert main(["sweep", "recipe=rhm_cnn", "sweep.data.n_samples=[32,1024]", "seeds=1", "trainer.max_steps=300",
                 "trainer.val_check_interval=100", f"out_dir={out}"]) == 0
    saved = json.loads((out / "sweep.json").read_text())
    (measured,) = saved["sample_complexity"]
    errors = []
    for point in ("n_samples-32", "n_samples-1024"):  # 1 − accuracy at the last evaluation, mean over the 4 classes
        with open(out / point / "seed1" / "metrics.csv", newline="") as f:  # seeds=1: seed 1
            values = [r for r in csv.DictReader(f) if r["val/loss"]][-1]
        assert values["step"] == "300"
        errors.append(1 - np.mean([float(values[f"skill/class{c}/val_acc"]) for c in range(4)]))
    assert measured["median_error"] == pytest.approx(errors) and measured["threshold"] == pytest.approx(0.075)
    assert errors[0] > 0.3 and errors[1] < 0.075 and measured["where"] == "grid"  # 8 samples a class vs 256
    assert measured["P_star"] == pytest.approx(32 * 32 ** ((errors[0] - 0.075) / (errors[0] - errors[1])))
    assert (out / "sample_complexity.png").is_file() and "sample complexity" in (out / "sweep.md").read_text()
