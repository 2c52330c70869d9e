"""The task zoo: a short fit on each task."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import fit_quietly, load
from omegaconf import OmegaConf

from skilltrain.data import build_task


def task_of(name, *args, seed=0, dtype=torch.float64):
    """Task `name` with its own defaults (a recipe holding only the task and an MLP), plus the overrides."""
    Path("zoo.yaml").write_text(f"data: {{name: {name}}}\nmodel: {{name: mlp}}\n")  # in the test's own tmp_path
    cfg = load("recipe=zoo.yaml", *args)
    return build_task(OmegaConf.to_object(cfg.data), seed, dtype), cfg


GRAPH = "data.graph={both: {op: and, of: [p0, p1]}, either: {op: or, of: [p2, p3]}, top: {op: xor, of: [both, either, p1]}}"
GR = "data.structure=graph"


# ---- a few training steps on each task ------------------------------------------------------------------------

FITS = {
    "compositional_sparse_parity": ["data.name=compositional_sparse_parity", "data.batch_size=256"],
    "dependency_graph": ["data.name=dependency_graph", GR, GRAPH],
    "two_skill_regression": ["data.name=two_skill_regression", "metric.name=loss", "metric.threshold=1e-3",
                             "data.n_samples=1000"],
    "modular_addition": ["data.name=modular_addition", "data.skills=residue"],
    "rhm": ["data.name=rhm", "data.token_form=true"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FITS))
def test_a_model_trains_on_each_zoo_task(name, tmp_path):
    summary = fit_quietly("recipe=compositional", *FITS[name], "trainer.max_steps=20", "trainer.val_check_interval=10",
                          "model.dtype=float32", out_dir=tmp_path / "run")
    assert summary["status"] == "completed" and summary["steps"] == 20
    task, _ = task_of(name, *FITS[name][1:])
    assert list(summary["skills"]) == task.skills
    assert all(s["final_loss"] is not None and math.isfinite(s["final_loss"]) for s in summary["skills"].values())
