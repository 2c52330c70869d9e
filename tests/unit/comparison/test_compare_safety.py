"""A comparison's results are never mixed or lost: one command per directory, a rerun pools only runs of the same
resolved config, jobs are submitted once, silent workers fail with their reason, and seeds, settings and names are
one-line errors (with real jobs and workers: tests/e2e/test_compare_safety.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
from helpers import ROOT

import skilltrain.comparison as comparison
from skilltrain.cli import main
from skilltrain.comparison import launch, plan, run_comparison
from skilltrain.comparison.cluster import SubmititLauncher
from skilltrain.errors import UserError

ARGS = ("recipe=domino_2task", "seeds=2", "arms=[baseline]")


def _no_training(monkeypatch):
    """Planning and the directory checks run for real; the runs and the analysis do not."""
    def ran(self):
        raise AssertionError("the runs were started")

    monkeypatch.setattr(launch.Runner, "run", ran)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


# ---- one command per directory --------------------------------------------------------------------------------


def test_a_second_command_on_a_comparison_directory_refuses_naming_the_holder_and_a_dead_holder_is_taken_over(
        tmp_path, monkeypatch, capsys):
    _no_training(monkeypatch)
    directory = tmp_path / "c"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from skilltrain.comparison.lock import hold
        with hold({str(directory)!r}):
            print("held", flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["compare", *ARGS, f"out_dir={directory}"]) == 2
        err = _one_error_line(capsys)
        assert f"'{directory}' is in use by another comparison command: pid {holder.pid} on " in err
        assert not (directory / "baseline").exists()
    finally:
        holder.kill()  # a holder killed outright: the operating system releases its lock
        holder.wait()
    from skilltrain.comparison.lock import hold

    with hold(directory):  # taken over
        assert json.loads((directory / ".lock.json").read_text())["pid"] == os.getpid()


# ---- a rerun pools only runs of the same resolved config -----------------------------------------------------


def test_a_recipe_edited_between_reruns_refuses_and_allow_changed_pools_it_on_the_record(tmp_path, monkeypatch):
    monkeypatch.setattr(launch.Runner, "run", lambda self: True)
    monkeypatch.setattr(comparison, "analyse", lambda plan: {})
    recipe = tmp_path / "mine.yaml"
    original = (ROOT / "recipes" / "domino_2task.yaml").read_text()
    recipe.write_text(original)
    args = [f"recipe={recipe}", "seeds=2", "arms=[baseline,gradient_rescaling]", f"out_dir={tmp_path}/c"]
    run_comparison(args, show=False)
    run_comparison(args, show=False)  # the same config again: continued (no error raised)

    assert "  lr: 1.0e-3\n" in original
    recipe.write_text(original.replace("  lr: 1.0e-3\n", "  lr: 0.00123\n"))  # edited between reruns, same command
    with pytest.raises(UserError) as e:
        run_comparison(args, show=False)
    message = str(e.value)
    assert "\n" not in message and "holds runs of another config" in message
    assert "arm baseline: optim.lr" in message and "0.00123" in message and "compare.allow_changed=true" in message

    run_comparison([*args, "compare.allow_changed=true"], show=False)
    record = json.loads((tmp_path / "c" / "plan.json").read_text())
    assert len(record["allow_changed"]) == 1
    assert any("optim.lr" in change for change in record["allow_changed"][0]["changes"])
    assert record["configs"]["baseline"]["optim"]["lr"] == 0.00123
    run_comparison(args, show=False)  # what is recorded now is the new config: continued without the flag


def test_a_comparison_directory_written_by_an_older_version_is_still_continued(tmp_path, monkeypatch):
    monkeypatch.setattr(launch.Runner, "run", lambda self: True)
    monkeypatch.setattr(comparison, "analyse", lambda plan: {})
    args = [*ARGS, f"out_dir={tmp_path}/c"]
    (tmp_path / "c").mkdir()
    (tmp_path / "c/plan.json").write_text(plan(args).identity)  # plan.json as it was: the command's identity
    run_comparison(args, show=False)
    assert "configs" in json.loads((tmp_path / "c/plan.json").read_text())


# ---- a run's exit before its old summary ---------------------------------------------------------------------


def test_a_failure_is_not_hidden_by_the_summary_of_an_earlier_attempt(tmp_path):
    run = plan([*ARGS, f"out_dir={tmp_path}/c"]).runs[0]
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "summary.json").write_text(json.dumps({"status": "stopped"}))  # an earlier attempt's
    log = tmp_path / "run.log"
    log.write_text("error: ckpt_path: the checkpoint cannot be resumed\n")
    launch.Runner._record(run, 2, log)  # this attempt: the resume failed
    assert run.state == "failed" and run.note.startswith("exit code 2: error: ckpt_path: the checkpoint")


# ---- submitit: intent before submission, jobs the scheduler lost -----------------------------------------------


class _Job:
    def __init__(self, job_id):
        self.job_id = job_id

    def done(self):
        return True

    def result(self):
        return 0


class _Executor:
    """A stand-in for submitit's executor, as a SLURM cluster's would answer; `kill` stops the command while it
    submits (after the scheduler was asked, before the job ids came back)."""

    cluster = "slurm"

    def __init__(self, kill=False):
        self.kill, self.submitted = kill, []

    def batch(self):
        import contextlib

        @contextlib.contextmanager
        def batch():
            yield
            if self.kill:
                raise KeyboardInterrupt

        return batch()

    def submit(self, fn, *args):
        self.submitted.append(args)
        return _Job(str(1000 + len(self.submitted)))


def test_jobs_json_records_the_intent_before_submitting_and_a_rerun_cancels_what_an_interrupted_one_queued(
        tmp_path, monkeypatch):
    from skilltrain.comparison import cluster

    the_plan = plan([*ARGS, "compare.launcher=submitit", f"out_dir={tmp_path}/c"])
    the_plan.directory.mkdir(parents=True)
    killed = SubmititLauncher(the_plan, show=False)
    monkeypatch.setattr(killed, "_executor", lambda: _Executor(kill=True))
    with pytest.raises(KeyboardInterrupt):
        killed.run()
    record = json.loads((tmp_path / "c/jobs.json").read_text())
    assert set(record) == {"baseline/seed1", "baseline/seed2"}
    assert all(v["submitting"] == killed.name for v in record.values())

    cancelled = []
    monkeypatch.setattr(cluster, "cancel_by_name", cancelled.append)
    rerun = SubmititLauncher(the_plan, show=False)
    executor = _Executor()
    monkeypatch.setattr(rerun, "_executor", lambda: executor)
    rerun.run()
    assert cancelled == [killed.name]  # whatever the killed command queued is cancelled before submitting again
    assert len(executor.submitted) == 2
    assert json.loads((tmp_path / "c/jobs.json").read_text()) == {"baseline/seed1": "1001", "baseline/seed2": "1002"}


# ---- local workers: silence, and their parent's death ---------------------------------------------------------


def test_a_worker_that_stops_answering_is_killed_and_its_run_failed_with_the_reason(tmp_path):
    worker = launch.Worker(dict(os.environ), tmp_path / "worker.log", reply_timeout=1.0)
    os.kill(worker.proc.pid, signal.SIGSTOP)  # alive, and silent
    answer = []
    thread = threading.Thread(target=lambda: answer.append(worker.run(["fit", "recipe=domino_2task"], tmp_path / "r.log")),
                              daemon=True)
    thread.start()
    thread.join(120)  # (without a reply timeout it would wait forever)
    try:
        assert not thread.is_alive() and answer == [None]
        assert "stopped answering" in worker.why and "compare.reply_timeout" in worker.why
        assert worker.proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        worker.kill()
        worker.close()


# ---- one-line errors: seeds, settings, names ------------------------------------------------------------------

SUITE = "arms: [baseline]\nseeds: 2\ntasks:\n  d2: {recipe: domino_2task}\n"


@pytest.mark.parametrize("seeds", ["seeds=[]", "seeds=true", "seeds=[1,4294967296]"])
@pytest.mark.parametrize("command", ["compare", "sweep", "benchmark"])
def test_bad_seeds_are_one_line_in_every_command(command, seeds, tmp_path, monkeypatch, capsys):
    _no_training(monkeypatch)

    def ran(*args, **kwargs):
        raise AssertionError("the benchmark's comparisons were started")

    if command == "benchmark":
        monkeypatch.setattr(comparison, "run_comparison", ran)
    (tmp_path / "suite.yaml").write_text(SUITE)
    given = {"compare": ["recipe=domino_2task", "arms=[baseline]"],
             "sweep": ["recipe=domino_2task", "sweep.optim.lr=[0.001,0.002]"],
             "benchmark": [f"suite={tmp_path / 'suite.yaml'}"]}[command]
    assert main([command, *given, seeds, f"out_dir={tmp_path}/out"]) == 2
    err = _one_error_line(capsys)
    assert "seeds" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command, recipe", [("fit", "domino_2task"), ("theory", "geometry_two_task")])
def test_a_seed_outside_0_to_2_to_the_32_is_one_line(command, recipe, tmp_path, capsys):
    assert main([command, f"recipe={recipe}", "seed=4294967296", f"out_dir={tmp_path}/r"]) == 2
    assert "seed: must be in 0…4294967295" in _one_error_line(capsys)
    assert main([command, f"recipe={recipe}", "seed=-1", f"out_dir={tmp_path}/r"]) == 2
    assert "seed: must be in 0…4294967295" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_a_typo_under_compare_names_the_closest_key(tmp_path, capsys):
    assert main(["compare", *ARGS, "compare.wrokers=2", f"out_dir={tmp_path}/c"]) == 2
    err = _one_error_line(capsys)
    assert "compare.wrokers: unknown key" in err and "did you mean 'compare.workers'?" in err
    assert "CompareSettings" not in err
    assert main(["compare", *ARGS, "compare.slurm.lost_aftr=2", f"out_dir={tmp_path}/c"]) == 2
    assert "did you mean 'compare.slurm.lost_after'?" in _one_error_line(capsys)


def test_workers_above_the_cores_warn_and_absurd_numbers_refuse(tmp_path, capsys):
    cores = os.cpu_count() or 1
    plan([*ARGS, f"compare.workers={cores + 1}", f"out_dir={tmp_path}/c"])
    assert f"warning: compare.workers={cores + 1} is more than the {cores} cores" in capsys.readouterr().err
    with pytest.raises(UserError, match="compare.workers: 10000 runs at a time"):
        plan([*ARGS, "compare.workers=10000", f"out_dir={tmp_path}/c"])


def test_arm_and_task_names_are_names_not_paths(tmp_path):
    arms = tmp_path / "arms.yaml"
    arms.write_text('arms:\n  baseline: {}\n  "../x": {}\n')
    with pytest.raises(UserError, match=r"arms: '\.\./x' is not a valid name"):
        plan(["recipe=domino_2task", "seeds=1", f"arms={arms}", f"out_dir={tmp_path}/c"])
    suite = tmp_path / "suite.yaml"
    suite.write_text('arms: [baseline]\ntasks:\n  "../../elsewhere": {recipe: domino_2task}\n')
    from skilltrain.benchmark import load_suite

    with pytest.raises(UserError, match=r"suite.tasks: '\.\./\.\./elsewhere' is not a valid name"):
        load_suite(str(suite))
