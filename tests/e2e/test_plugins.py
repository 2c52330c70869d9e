"""Users' own entries through plugins in every process skilltrain starts: a resume in a new process, compare's seeds,
an installed package's entry point."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import run_cli
from helpers.fixtures import PLUGIN, SMALL


@pytest.mark.slow
def test_a_resume_in_a_new_process_imports_the_plugin_again(plugin, tmp_path):
    first = run_cli("fit", *SMALL, f"plugins=[{plugin}]", "interventions.focus={}", "trainer.max_steps=20",
                    f"out_dir={tmp_path}/run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    again = run_cli("fit", "ckpt_path=last", f"out_dir={tmp_path}/run", "trainer.max_steps=40", cwd=plugin.parent.parent.parent)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["steps"] == 40 and summary["interventions"] == ["focus"]


@pytest.mark.slow
def test_compare_runs_every_seed_with_the_plugin(plugin, tmp_path):
    result = run_cli("compare", *SMALL, "trainer.max_steps=300", f"plugins=[{plugin}]", "arms=[baseline,focus]", "seeds=3",
                     "compare.workers=2", f"out_dir={tmp_path}/c", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    comparison = json.loads((tmp_path / "c/comparison.json").read_text())
    assert comparison["excluded"] == [] and comparison["seeds"]["focus"] == [1, 2, 3]
    assert comparison["skills"]["x3x4"]["focus"]["n"] == 3


def _wheel(tmp_path: Path) -> Path:
    """A wheel of a tiny package whose `skilltrain.plugins` entry point registers an intervention."""
    files = {
        "skilltrain_extra/__init__.py": PLUGIN.replace('"focus"', '"focus_ep"').replace('"tiny"', '"tiny_ep"'),
        "skilltrain_extra-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: skilltrain-extra\nVersion: 0.1\n",
        "skilltrain_extra-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "skilltrain_extra-0.1.dist-info/entry_points.txt": "[skilltrain.plugins]\nextra = skilltrain_extra\n",
    }
    record = []
    path = tmp_path / "skilltrain_extra-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(text.encode())}")
        record.append("skilltrain_extra-0.1.dist-info/RECORD,,")
        z.writestr("skilltrain_extra-0.1.dist-info/RECORD", "\n".join(record) + "\n")
    return path


@pytest.mark.slow
def test_an_installed_package_registers_through_its_entry_point(tmp_path):
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                              str(site), str(_wheel(tmp_path))], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    env = {"PYTHONPATH": str(site)}
    listed = run_cli("list", env=env)
    assert listed.returncode == 0 and "focus_ep" in listed.stdout and "entry point extra" in listed.stdout, listed.stderr
    result = run_cli("fit", *SMALL, "interventions.focus_ep.strength=3", "model.name=tiny_ep", f"out_dir={tmp_path}/run",
                     env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "run/summary.json").read_text())["interventions"] == ["focus_ep"]
    assert "focus_ep" not in run_cli("list").stdout  # not installed: not there
