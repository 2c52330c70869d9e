"""The public Python API: what `skilltrain.__all__` names, checking an intervention's parameters for your own
trainer, and importing skilltrain as a library without side effects (fit and compare from Python: tests/e2e/test_api.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import skilltrain
from skilltrain.errors import UserError


def test_every_public_name_resolves():
    for name in skilltrain.__all__:
        assert getattr(skilltrain, name) is not None, name
    assert callable(skilltrain.compare) and skilltrain.compare.__module__ == "skilltrain.api"  # not the comparison module


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_importing_skilltrain_and_listing_load_no_heavy_library():
    heavy = "('torch', 'lightning', 'wandb', 'datasets', 'scipy', 'matplotlib')"
    assert _python(f"import sys, skilltrain; print([m for m in {heavy} if m in sys.modules])") == "[]"
    listed = _python("import contextlib, io, sys\nfrom skilltrain.cli import main\n"
                     "with contextlib.redirect_stdout(io.StringIO()): main(['list'])\n"
                     "print([m for m in ('lightning', 'wandb', 'datasets') if m in sys.modules])")
    assert listed == "[]"


def test_an_intervention_for_your_own_trainer_checks_its_parameters():
    task = skilltrain.Task.from_skills(["a", "b"], form="control", frequencies=[0.9, 0.1])
    iv = skilltrain.intervention("skill_reweighting", task, mode="inverse_frequency")
    assert isinstance(iv, skilltrain.LossWeighting) and iv.name == "skill_reweighting"
    assert iv.state_key == "intervention/skill_reweighting"
    with pytest.raises(UserError, match="interventions.skill_reweighting.mode: unknown mode 'onlne' .did you mean 'online'"):
        skilltrain.intervention("skill_reweighting", task, mode="onlne")
    with pytest.raises(UserError, match="interventions.skill_reweighting.floor: must be in"):
        skilltrain.intervention("skill_reweighting", task, mode="online", floor=2)
    with pytest.raises(UserError, match="flor: unknown key"):
        skilltrain.intervention("skill_reweighting", task, flor=0.1)
