"""The test kit for plugin authors (skilltrain.testing) on whole runs: the example plugin passes `python -m skilltrain
check`; each kind of bug a plugin author makes fails the one check that is about it, in one line saying why."""

from __future__ import annotations

import pytest
from helpers import EXAMPLES, run_cli
from helpers.fixtures import kit_plugin

from skilltrain.testing import CheckFailed, check_intervention, check_model, check_task


def write(tmp_path, bug=None):
    path = tmp_path / f"smooth_{bug or 'good'}.py"
    path.write_text(kit_plugin(bug))
    return path


def test_the_example_plugin_passes_check_from_the_command_line(tmp_path):
    result = run_cli("check", f"plugins=[{EXAMPLES / 'own_intervention.py'}]", "ddp=false", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "intervention loss_power"
    assert [line.split()[:2] for line in lines[1:5]] == [["config", "ok"], ["card", "ok"], ["trains", "ok"],
                                                         ["resumes", "ok"]]
    assert lines[5] == "4 of 4 checks passed (ddp=false: DDP not checked)" and result.stderr == ""


def test_a_plugin_whose_state_is_not_in_its_state_dict_fails_resumes_in_one_line(tmp_path):
    result = run_cli("check", f"plugins=[{write(tmp_path, 'state')}]", "ddp=false", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: intervention smooth · resumes: resumed at step 30, the run differs from one that "
                           "did not stop (model weights differ"), line
    assert line.endswith("keep every tensor or number it updates in state_dict() and restore it in load_state_dict()")
    assert "  trains   ok" in result.stdout and "  resumes  FAILED: resumed at step 30" in result.stdout


def test_a_plugin_that_logs_nothing_fails_trains(tmp_path, clean_registries):
    with pytest.raises(CheckFailed) as failed:
        check_intervention("smooth", plugins=[write(tmp_path, "logged")], checks=["trains", "resumes"])
    assert str(failed.value) == ("intervention smooth · trains: no intervention/smooth/… column in metrics.csv: logged() "
                                 "returned nothing at the log steps (return a dict of the values to follow, such as its "
                                 "weights)")
    assert failed.value.results[1].skipped == "trains failed"


def test_a_plugin_that_raises_fails_trains_naming_its_line(tmp_path, clean_registries):
    path = write(tmp_path, "raises")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "no weights today" in text)
    with pytest.raises(CheckFailed) as failed:
        check_intervention("smooth", plugins=[path], checks=["trains"])
    assert str(failed.value) == f"intervention smooth · trains: ValueError: no weights today (at {path.name}:{line})"


def test_a_good_plugin_with_state_passes_trains_and_resumes(tmp_path, clean_registries):
    results = check_intervention("smooth", {"decay": 0.8}, plugins=[write(tmp_path)], checks=["trains", "resumes"])
    assert [(r.check, r.failed) for r in results] == [("trains", False), ("resumes", False)]


@pytest.mark.ddp
def test_a_plugin_whose_state_follows_its_own_rank_fails_ddp(tmp_path, clean_registries):
    with pytest.raises(CheckFailed) as failed:
        check_intervention("smooth", plugins=[write(tmp_path, "local")], checks=["ddp"])
    assert str(failed.value) == ("intervention smooth · ddp: rank 0 and rank 1 hold different smooth state from step 0 "
                                 "(smooth.mean): compute it from the all-reduced `stats`, not from the rank's own batch")


FORGETFUL_MODEL = '''
from dataclasses import dataclass

from torch import nn

import skilltrain


@dataclass
class WarmConfig(skilltrain.ModelConfig):
    name: str = "warm"


@skilltrain.register_model("warm", "an MLP whose output warms up over its first calls", WarmConfig)
class Warm(nn.Module):
    def __init__(self, cfg, task, n_outputs):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(task.n_inputs, 32), nn.ReLU(), nn.Linear(32, n_outputs))
        self.calls = 0  # a plain attribute: not in the state_dict, so a resume starts it again at 0

    def forward(self, x):
        if self.training:
            self.calls += 1
        return self.net(x) * min(1.0, self.calls / 50)
'''


def test_a_model_with_state_outside_its_state_dict_fails_resumes(tmp_path, clean_registries):
    path = tmp_path / "warm.py"
    path.write_text(FORGETFUL_MODEL)
    with pytest.raises(CheckFailed) as failed:
        check_model("warm", plugins=[path], checks=["trains", "resumes"])
    assert str(failed.value).startswith("model warm · resumes: resumed at step 30, the run differs from one that did "
                                        "not stop (model weights differ")
    assert str(failed.value).endswith("keep its state in parameters or buffers, and draw randomness from torch's generator")


def test_the_example_task_passes_on_its_recipe(clean_registries):
    results = check_task("sparse_majority", plugins=[EXAMPLES / "own_task.py"], recipe=str(EXAMPLES / "majority.yaml"),
                         ddp=False)
    assert [(r.check, r.failed) for r in results] == [("config", False), ("trains", False), ("resumes", False)]
