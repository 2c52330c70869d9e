"""Exact resume: baseline and every intervention mode, from a finished segment, after SIGKILL and after SIGTERM."""

from __future__ import annotations

import json
import signal
import sys
import time

import pytest
import torch
from helpers import SHORT_RUN, Background, fit_quietly, load, run_cli, same_run

from skilltrain.run import fit

BASE = SHORT_RUN

# Interventions resume exactly too: tests/e2e/test_every_intervention.py, for every registered mode.
ARMS = {
    "baseline": (),
    "dropout_transformer": ("data.token_form=true", "model.name=transformer", "model.width=16", "model.heads=2",
                            "model.depth=1", "model.dropout=0.1"),
    "step_schedule_with_warmup": ("optim.scheduler=step", "optim.step_size=7", "optim.warmup_steps=10"),
}


@pytest.mark.parametrize("arm", list(ARMS), ids=list(ARMS))
def test_resume_is_exact(arm, tmp_path):
    args = (*BASE, *ARMS[arm])
    fit_quietly(*args, "trainer.max_steps=60", out_dir=tmp_path / "whole")
    fit_quietly(*args, "trainer.max_steps=30", out_dir=tmp_path / "parts")  # stops at 30 (an evaluation step)
    fit(load("ckpt_path=last", f"out_dir={tmp_path}/parts", "trainer.max_steps=60", "trainer.enable_progress_bar=false"))
    same_run(tmp_path / "whole", tmp_path / "parts")


def test_resume_is_exact_for_learned_routing_in_the_control_form(tmp_path):
    """Its per-skill routing statistics (control form only) are logged too: a resumed run logs the same."""
    args = ("recipe=multitask_parity", "data.n_tasks=4", "data.batch_size=128", "trainer.log_every_n_steps=5",
            "trainer.val_check_interval=10", "interventions.modular_routing.mode=learned", "seed=3")
    fit_quietly(*args, "trainer.max_steps=40", out_dir=tmp_path / "whole")
    fit_quietly(*args, "trainer.max_steps=20", out_dir=tmp_path / "parts")
    fit(load("ckpt_path=last", f"out_dir={tmp_path}/parts", "trainer.max_steps=40", "trainer.enable_progress_bar=false"))
    same_run(tmp_path / "whole", tmp_path / "parts")
    header = (tmp_path / "whole/metrics.csv").read_text().splitlines()[0]
    assert "intervention/modular_routing/entropy/task0" in header and "intervention/modular_routing/load/task3/e3" in header


def test_a_resume_continues_the_w_and_b_run_and_overwrite_starts_a_new_one(tmp_path):
    fit_quietly("recipe=compositional", "trainer.max_steps=10", out_dir=tmp_path / "run")
    first = (tmp_path / "run/.run_id").read_text()
    fit(load("ckpt_path=last", f"out_dir={tmp_path}/run", "trainer.max_steps=20", "trainer.enable_progress_bar=false"))
    assert (tmp_path / "run/.run_id").read_text() == first
    assert json.loads((tmp_path / "run/summary.json").read_text())["run_id"] == first
    fit_quietly("recipe=compositional", "trainer.max_steps=10", "overwrite=true", out_dir=tmp_path / "run")
    assert (tmp_path / "run/.run_id").read_text() != first


def _start(tmp_path, name, *extra) -> Background:
    """A run in a subprocess, long enough to be stopped part-way."""
    return Background([sys.executable, "-m", "skilltrain", "fit", *BASE, "trainer.max_steps=400",
                       "trainer.enable_progress_bar=false", "interventions.skill_reweighting.mode=online",
                       f"out_dir={tmp_path}/{name}", *extra], tmp_path, name)


def _wait_for_checkpoint(tmp_path, name, run: Background):
    run.wait_until((tmp_path / name / "checkpoints/last.ckpt").exists, "its first checkpoint")
    time.sleep(0.3)  # a few more steps: the kill lands between checkpoints


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    fit_quietly(*BASE, "trainer.max_steps=400", "interventions.skill_reweighting.mode=online", out_dir=tmp_path / "whole")
    run = _start(tmp_path, "killed")
    _wait_for_checkpoint(tmp_path, "killed", run)
    run.proc.kill()
    run.proc.wait()
    assert run.proc.returncode == -signal.SIGKILL
    step = torch.load(tmp_path / "killed/checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert 0 < step < 400 and step % 20 == 0  # the last periodic checkpoint, intact
    result = run_cli("fit", "ckpt_path=last", f"out_dir={tmp_path}/killed")
    assert result.returncode == 0, result.stderr[-1500:]
    same_run(tmp_path / "whole", tmp_path / "killed")


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_resumes_exactly(tmp_path):
    fit_quietly(*BASE, "trainer.max_steps=400", "interventions.skill_reweighting.mode=online", out_dir=tmp_path / "whole")
    run = _start(tmp_path, "stopped")
    _wait_for_checkpoint(tmp_path, "stopped", run)
    run.proc.send_signal(signal.SIGTERM)
    out, err = run.finish()
    assert run.proc.returncode == 143, err[-1500:]
    assert "Traceback" not in err and "note: stopped by SIGTERM at step" in err
    assert out.strip().splitlines()[-1] == f"run_dir: {tmp_path}/stopped"
    summary = json.loads((tmp_path / "stopped/summary.json").read_text())
    assert summary["status"] == "stopped" and summary["steps"] < 400
    ckpt = torch.load(tmp_path / "stopped/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["global_step"] == summary["steps"]  # checkpointed where it stopped
    result = run_cli("fit", "ckpt_path=last", f"out_dir={tmp_path}/stopped")
    assert result.returncode == 0, result.stderr[-1500:]
    same_run(tmp_path / "whole", tmp_path / "stopped")


def test_divergence_is_reported_and_the_last_good_checkpoint_kept(tmp_path, capsys):
    from skilltrain.cli import main

    code = main(["fit", "recipe=compositional", "optim.lr=1e3", f"out_dir={tmp_path}/run", "checkpoint.every_n_steps=1",
                 "trainer.max_steps=50", "trainer.enable_progress_bar=false"])
    captured = capsys.readouterr()
    assert code == 3
    assert "error: training diverged at step 1: the loss went non-finite or exploded in skills" in captured.err
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["status"] == "diverged" and summary["message"].startswith("training diverged at step 1")
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 1  # the state before the bad step: never a diverged one
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_overwrite_replaces_a_run_only_when_asked(tmp_path):
    fit_quietly("recipe=compositional", "trainer.max_steps=10", out_dir=tmp_path / "run")
    (tmp_path / "run/marker").write_text("old run")
    assert run_cli("fit", "recipe=compositional", "trainer.max_steps=10", f"out_dir={tmp_path}/run").returncode == 2
    assert (tmp_path / "run/marker").exists()
    fit_quietly("recipe=compositional", "trainer.max_steps=10", "overwrite=true", out_dir=tmp_path / "run")
    assert not (tmp_path / "run/marker").exists() and (tmp_path / "run/summary.json").exists()


def test_a_schedule_shaped_by_the_budget_keeps_its_budget_on_resume(tmp_path, capsys):
    """A cosine schedule decays over trainer.max_steps: extending the run would make the rest follow another curve."""
    from skilltrain.cli import main

    fit_quietly(*BASE, "optim.scheduler=cosine", "optim.warmup_steps=5", "trainer.max_steps=30", out_dir=tmp_path / "run")
    assert main(["fit", "ckpt_path=last", f"out_dir={tmp_path}/run", "trainer.max_steps=60"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trainer.max_steps: cannot change when resuming a run whose optim.scheduler=cosine" in err


def test_a_run_written_by_an_older_skilltrain_is_refused_in_one_line(tmp_path, capsys):
    from skilltrain.cli import main

    fit_quietly(*BASE, "trainer.max_steps=10", out_dir=tmp_path / "run")
    config = (tmp_path / "run/config.yaml").read_text()
    (tmp_path / "run/config.yaml").write_text(config.replace("  min_samples: 200\n", "").replace("plugins: []\n", ""))
    assert main(["fit", "ckpt_path=last", f"out_dir={tmp_path}/run", "trainer.max_steps=20"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "was written by an older skilltrain (its saved config has no metric.min_samples, plugins)" in err


@pytest.mark.slow
def test_a_cluster_job_warned_of_its_time_limit_stops_with_a_checkpoint_that_compare_resumes(tmp_path):
    """SLURM (through submitit) sends SIGUSR2 before a job's time limit; the job's fit stops as on SIGTERM, and the
    comparison's next command for that run is a resume, not a restart from scratch."""
    from skilltrain.comparison.plan import Run, next_command

    fit_quietly(*BASE, "trainer.max_steps=400", "interventions.skill_reweighting.mode=online", out_dir=tmp_path / "whole")
    args = [*BASE, "trainer.max_steps=400", "trainer.enable_progress_bar=false",
            "interventions.skill_reweighting.mode=online", f"out_dir={tmp_path}/job"]
    job = ("import sys; from skilltrain.comparison.cluster import fit_job; "
           f"sys.exit(fit_job({args!r}, threads=1))")
    run = Background([sys.executable, "-c", job], tmp_path, "job")
    _wait_for_checkpoint(tmp_path, "job", run)
    run.proc.send_signal(signal.SIGUSR2)
    out, err = run.finish()
    assert run.proc.returncode == 143 and "Traceback" not in err, err[-1500:]
    summary = json.loads((tmp_path / "job/summary.json").read_text())
    assert summary["status"] == "stopped" and summary["steps"] < 400
    assert torch.load(tmp_path / "job/checkpoints/last.ckpt", weights_only=True)["global_step"] == summary["steps"]
    command = next_command(Run("baseline", 1, args, tmp_path / "job"))
    assert command[:2] == ["fit", "ckpt_path=last"]
    result = run_cli(*command)
    assert result.returncode == 0, result.stderr[-1500:]
    same_run(tmp_path / "whole", tmp_path / "job")
