"""The public Python API end to end: fit and compare called from Python (the cheap checks of `skilltrain.__all__`
and of importing skilltrain are in tests/unit/api/test_api.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import skilltrain
from skilltrain.errors import UserError

SMALL = ["data.n_samples=2000", "trainer.max_steps=40", "trainer.val_check_interval=20", "trainer.enable_progress_bar=false",
         "logger.wandb.mode=disabled"]


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_a_fit_from_python_keeps_the_callers_matplotlib_backend(tmp_path):
    out = _python("import matplotlib\nmatplotlib.use('svg')\nimport skilltrain\n"
                  f"r = skilltrain.fit('compositional', {SMALL + [f'out_dir={tmp_path}/run']!r}, show=False)\n"
                  "print(matplotlib.get_backend(), r.status)")
    assert out.splitlines()[-1] == "svg completed"
    assert (tmp_path / "run/curves.png").stat().st_size > 10_000


def test_fit_returns_the_run_and_mistakes_raise_user_error(tmp_path):
    run = skilltrain.fit("domino_2task", [*SMALL, f"out_dir={tmp_path}/run"], show=False)
    assert run.status == "completed" and run.run_dir == tmp_path / "run" and run.exit_code == 0
    assert run.summary["steps"] == 40 and list(run.summary["skills"]) == ["x1x2", "x3x4"]
    config = skilltrain.load_config("domino_2task", [*SMALL, f"out_dir={tmp_path}/again", "seed=4"])
    assert skilltrain.fit(config=config, show=False).summary["seed"] == 4
    with pytest.raises(UserError, match=r"optim.lrr: unknown key \(did you mean optim.lr\?\)"):
        skilltrain.fit("domino_2task", ["optim.lrr=1"])


@pytest.mark.slow
def test_compare_returns_the_statistics_as_data(tmp_path):
    result = skilltrain.compare("domino_2task", seeds=2, arms=["baseline", "gradient_rescaling"], workers=2,
                                overrides=[*SMALL, "trainer.max_steps=300"], out_dir=str(tmp_path / "c"), show=False)
    assert result.directory == tmp_path / "c" and result.finished and result.error is None
    rare = result.statistics["skills"]["x3x4"]["gradient_rescaling"]
    assert rare["n"] == 2 and rare["speedup"]["n_pairs"] == 2
    rows = result.table
    assert {(r["quantity"], r["arm"]) for r in rows} >= {("learn_step", "baseline"), ("all_learned_step", "gradient_rescaling")}
