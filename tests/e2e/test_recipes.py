"""Every shipped recipe composes, builds its task and model, and runs a few steps end to end."""

from __future__ import annotations

import pytest
from helpers import fit_quietly

from skilltrain.cli import main
from skilltrain.config import recipe_names


@pytest.mark.slow
@pytest.mark.parametrize("recipe", recipe_names())
def test_every_recipe_runs(recipe, tmp_path):
    extra = []
    if recipe == "hf_example":  # its data set is made first, as the README says
        assert main(["export-data", "recipe=multitask_parity", "data.n_tasks=3", "data.n_samples=600",
                     "data.eval_samples=20", "data.batch_size=100", f"path={tmp_path}/data"]) == 0
        extra = [f"data.path={tmp_path}/data"]
    summary = fit_quietly(f"recipe={recipe}", "trainer.max_steps=4", "trainer.val_check_interval=2",
                          "trainer.log_every_n_steps=2", *extra, out_dir=tmp_path / "run")
    assert summary["status"] == "completed" and summary["steps"] == 4 and summary["recipe"] == recipe
    assert summary["skills"] and all(s["final_loss"] is not None for s in summary["skills"].values())
