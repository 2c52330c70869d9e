"""A regular (non-editable) install maps callbacks/, recipes/ and conf/ into the skilltrain namespace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import ROOT


@pytest.mark.slow
def test_non_editable_install_has_recipes_and_no_bare_callbacks_module(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    assert not (target / "callbacks").exists() and not (target / "recipes").exists() and not (target / "conf").exists()
    assert (target / "skilltrain/callbacks/skill_progress.py").is_file()
    assert (target / "skilltrain/recipes/compositional.yaml").is_file()
    assert (target / "skilltrain/conf/defaults.yaml").is_file()
    assert (target / "skilltrain/conf/presets/debug.yaml").is_file()
    assert (target / "skilltrain/conf/arms/all_modes.yaml").is_file()
    assert (target / "skilltrain/recipes/theory/resource_chain.yaml").is_file()
    code = ("import skilltrain, skilltrain.callbacks; from skilltrain.config import load_config, recipe_names;"
            "from skilltrain.theory.config import load_theory_config;"
            "assert skilltrain.__file__.startswith(%r), skilltrain.__file__;"
            "assert load_theory_config(['recipe=resource_chain']).steps == 5000;"
            "print(sorted(recipe_names())); print(load_config(['recipe=compositional','presets=[debug]']).trainer.max_steps)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code % str(target)], check=True, capture_output=True, text=True,
                         env=env, cwd=tmp_path).stdout
    assert "'compositional'" in out and "'domino_2task'" in out and out.strip().endswith("50")
