"""Every file in examples/ runs as its docstring says (small sizes), so the examples cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import EXAMPLES, run_cli


def run_script(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.slow
def test_own_intervention_as_a_plugin_in_fit_and_in_compare_through_the_api(tmp_path):
    fit = run_cli("fit", "recipe=domino_2task", f"plugins=[{EXAMPLES}/own_intervention.py]",
                  "interventions.loss_power.power=2", "trainer.max_steps=30", f"out_dir={tmp_path}/run")
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert "intervention/loss_power/weight/x3x4" in (tmp_path / "run/metrics.csv").read_text().splitlines()[0]
    result = run_script(str(EXAMPLES / "own_intervention.py"), "--seeds", "2", "--steps", "300", "--out-dir",
                        str(tmp_path / "c"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rare skill x3x4: median learn step" in result.stdout
    comparison = json.loads((tmp_path / "c/comparison.json").read_text())
    assert comparison["arms"] == ["baseline", "loss_power"] and comparison["seeds"]["loss_power"] == [1, 2]


@pytest.mark.slow
def test_own_model_as_a_plugin(tmp_path):
    result = run_cli("fit", "recipe=compositional", f"plugins=[{EXAMPLES}/own_model.py]", "model.name=residual_mlp",
                     "model.width=16", "data.n_samples=500", "trainer.max_steps=20", f"out_dir={tmp_path}/run")
    assert result.returncode == 0, result.stderr[-2000:]
    import torch

    state = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert "model.blocks.1.1.weight" in state  # two residual blocks, as the example's defaults say


@pytest.mark.slow
def test_own_task_with_its_recipe(tmp_path):
    result = run_cli("fit", f"recipe={EXAMPLES}/majority.yaml", "trainer.max_steps=300", f"out_dir={tmp_path}/run",
                     cwd=tmp_path)  # the recipe finds its plugin next to itself, from any directory
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert list(summary["skills"]) == ["vote0", "vote1", "vote2", "vote3"]
    assert summary["skills"]["vote0"]["learned_step"] is not None  # the most frequent vote is learned early


@pytest.mark.slow
def test_plain_lightning_script(tmp_path):
    result = run_script(str(EXAMPLES / "plain_lightning.py"), "--max-steps", "600", "--intervention",
                        "gradient_rescaling", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines() if line.startswith(("frequent", "rare")))
    assert lines["frequent"].startswith("learned at step ") and lines["rare"].startswith("learned at step ")
    assert "None" not in lines["frequent"] and "None" not in lines["rare"]


def test_the_optimizers_plugin_by_hand_and_in_a_theory_run(tmp_path, clean_registries, monkeypatch):
    """Lion's first step is −lr·sign(g); AdEMAMix's first is −lr·(g + α(1 − β3)·g)/(|g| + eps)."""
    import importlib.util

    import torch

    from skilltrain.registry import OPTIMIZERS

    for name in ("lion", "ademamix"):  # an earlier test may have registered docs' or this example's (restored after)
        OPTIMIZERS._entries.pop(name, None)
    spec = importlib.util.spec_from_file_location("st_example_optimizers", EXAMPLES / "optimizers.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    g = torch.tensor([0.5, -2.0, 1e-3])
    p = torch.zeros(3, requires_grad=True)
    p.grad = g.clone()
    module.Lion([p], lr=0.1).step()
    assert p.detach().tolist() == pytest.approx([-0.1, 0.1, -0.1])
    q = torch.zeros(3, requires_grad=True)
    q.grad = g.clone()
    module.AdEMAMix([q], lr=0.1, alpha=2.0).step()
    expected = -0.1 * (g + 2.0 * (1 - 0.9999) * g) / (g.abs() + 1e-8)
    assert torch.allclose(q.detach(), expected, rtol=1e-5)
    result = run_cli("theory", "recipe=geometry_two_task", f"plugins=[{EXAMPLES}/optimizers.py]", "optim.name=lion",
                     "optim.lr=3e-4", f"out_dir={tmp_path}/run")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["all_learned_step"] is not None


@pytest.mark.slow
def test_rhm_sample_complexity_on_a_small_grid(tmp_path, monkeypatch, capsys):
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("st_example_rhm", EXAMPLES / "rhm_sample_complexity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "FAMILIES", [(3, [3, 4], [32, 4096]), (4, [2], [32, 4096])])  # 6 runs, not 126
    assert module.main([f"out_dir={tmp_path}", "seeds=1", "trainer.max_steps=300", "trainer.val_check_interval=100"]) == 0
    saved = json.loads((tmp_path / "rhm_sample_complexity.json").read_text())
    rows, fit = saved["rows"], saved["fit"]
    assert [(r["L"], r["m"], r["prediction"], r["distinct_inputs"]) for r in rows] == [
        (3, 3, 108, 4 * 3**7), (3, 4, 256, 4 * 4**7), (4, 2, 64, 4 * 2**15)]  # n_c·m^L; n_c·m^(2^L − 1)
    for r in rows:  # each row is its sweep's measurement, from 8 samples a class (chance) to 1024 (learned)
        sweep = json.loads((tmp_path / f"L{r['L']}" / "sweep.json").read_text())
        (same,) = [g for g in sweep["sample_complexity"] if g.get("data.m", 2) == r["m"]]
        assert r["P_star"] == same["P_star"] and r["where"] == "grid" and same["median_error"][0] > 0.3
    slope = np.polyfit(np.log([r["prediction"] for r in rows]), np.log([r["P_star"] for r in rows]), 1)[0]
    assert fit["b"] == pytest.approx(slope) and fit["rows_fitted"] == 3 and fit["ci95"] is None  # one seed
    assert (tmp_path / "rhm_sample_complexity.png").is_file()
    assert f"b = {fit['b']:.2f} (too few seeds for an interval" in capsys.readouterr().out
