"""Limits and mistakes that used to hang, swamp the machine or be silently ignored: one `error:` line, exit code 2,
nothing written (checked by `print-config`, which composes the config exactly as `fit` does before anything else);
more than the cores but not absurd: a warning. Ctrl-C during start-up: exit 130 and one line."""

from __future__ import annotations

import os

import pytest
from helpers import load

from skilltrain.cli import main

LAUNCHERS = ("SLURM_NTASKS", "SLURM_JOB_NUM_NODES", "SLURM_NNODES", "TORCHELASTIC_RUN_ID", "WORLD_SIZE",
             "LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "JSM_NAMESPACE_SIZE", "NODE_RANK", "LOCAL_RANK")


@pytest.fixture(autouse=True)
def two_cores_no_launcher(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for variable in LAUNCHERS:
        monkeypatch.delenv(variable, raising=False)


CASES = {
    "nodes without a launcher": (["trainer.num_nodes=2"], "trainer.num_nodes: 2 nodes, but no launcher started this "
                                                          "process"),
    "CPU processes far beyond the cores": (["trainer.accelerator=cpu", "trainer.devices=64"],
                                           "trainer.devices: 64 CPU processes on 2 cores is more than 4 per core"),
    "threads far beyond the cores": (["trainer.threads=9"], "trainer.threads: 9 threads on 2 cores is more than 4 per core"),
    "a parameter the mode does not use": (
        ["interventions.skill_reweighting.mode=self", "interventions.skill_reweighting.exponent=2"],
        "interventions.skill_reweighting.exponent: not used by mode=self, which would ignore it (exponent is for mode "
        "balanced_sampling; mode self takes no parameters)"),
    "a parameter of another mode": (
        ["interventions.gradient_rescaling.mode=sign", "interventions.gradient_rescaling.alpha=0.5"],
        "interventions.gradient_rescaling.alpha: not used by mode=sign"),
    "a routing parameter of the other mode": (
        ["interventions.modular_routing.mode=oracle", "interventions.modular_routing.top_k=2"],
        "interventions.modular_routing.top_k: not used by mode=oracle, which would ignore it (top_k is for mode learned; "
        "mode oracle takes split_inputs)"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_refused_in_one_line(case, tmp_path, capsys):
    args, message = CASES[case]
    code = main(["print-config", "recipe=compositional", *args])
    out, err = capsys.readouterr()
    assert code == 2, (out[-300:], err[-300:])
    assert err.count("\n") == 1 and err.startswith(f"error: {message}"), err
    assert out == "" and not list(tmp_path.iterdir())


def test_nodes_beyond_what_the_launcher_provides(monkeypatch):
    from skilltrain.errors import UserError

    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "1")
    with pytest.raises(UserError, match="trainer.num_nodes: 2 nodes, but SLURM provides 1"):
        load("trainer.num_nodes=2")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    assert load("trainer.num_nodes=2").trainer.num_nodes == 2  # srun on two nodes: accepted


def test_more_than_the_cores_is_a_warning(capsys):
    cfg = load("trainer.accelerator=cpu", "trainer.devices=3", "trainer.threads=5")
    assert (cfg.trainer.devices, cfg.trainer.threads) == (3, 5)
    err = capsys.readouterr().err
    assert "warning: trainer.devices=3: more CPU processes than the 2 cores" in err
    assert "warning: trainer.threads=5: more threads than the 2 cores" in err


def test_the_python_api_refuses_an_unused_parameter_too():
    import skilltrain
    from skilltrain.errors import UserError
    from skilltrain.module import SkillModule

    task = SkillModule(load("recipe=domino_2task", "model.widths=[6]")).task
    with pytest.raises(UserError, match="exponent: not used by mode=self"):
        skilltrain.intervention("skill_reweighting", task, mode="self", exponent=2.0)
    assert skilltrain.intervention("skill_reweighting", task, mode="balanced_sampling", exponent=2.0).params.exponent == 2


def test_ctrl_c_during_start_up_is_one_line_and_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt  # as a Ctrl-C while Lightning is still being imported

    monkeypatch.setattr("skilltrain.config.load_config", interrupted)
    try:
        code = main(["fit", "recipe=compositional"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C during start-up escaped main() (a traceback)")
    err = capsys.readouterr().err
    assert code == 130
    assert err == "stopped by Ctrl-C (SIGINT) before fit started its work\n"
