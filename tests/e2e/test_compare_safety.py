"""A comparison's results are never mixed or lost, with real jobs and workers: lost and still-queued jobs under
submitit's local executor, a fit stuck in a step, a worker whose comparison was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from skilltrain.comparison import launch, plan
from skilltrain.comparison.cluster import SubmititLauncher


def test_a_job_the_scheduler_lost_fails_after_lost_after_with_the_reason(tmp_path, monkeypatch):
    """submitit's local executor, with the jobs' state as a scheduler that lost them reports it: UNKNOWN."""
    the_plan = plan(["recipe=domino_2task", "seeds=1", "arms=[baseline]", "compare.launcher=submitit",
                     "compare.slurm.cluster=local", "compare.slurm.lost_after=0.005", f"out_dir={tmp_path}/c"])
    the_plan.directory.mkdir(parents=True)
    seen = []

    def unknown(job):
        seen.append(job)
        return "UNKNOWN"

    monkeypatch.setattr(SubmititLauncher, "_state", staticmethod(unknown))
    launcher = SubmititLauncher(the_plan, show=False)
    try:
        assert launcher.run() is False
    finally:
        for job in seen:  # the lost job was cancelled; make sure its process is gone
            if job._process is not None:
                try:
                    job._process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    job._process.kill()
    run = the_plan.runs[0]
    assert run.state == "failed" and "the scheduler lost it (state UNKNOWN" in run.note
    assert "compare.slurm.lost_after" in run.note
    assert json.loads((tmp_path / "c/jobs.json").read_text())["baseline/seed1"] == seen[0].job_id


def test_a_job_the_queue_still_lists_is_not_cancelled_as_lost(tmp_path, monkeypatch):
    """submitit says UNKNOWN also when SLURM's accounting does not answer: a job squeue still lists is left to run."""
    the_plan = plan(["recipe=domino_2task", "seeds=1", "arms=[baseline]", "compare.launcher=submitit",
                     "compare.slurm.cluster=local", "compare.slurm.lost_after=0.001", "trainer.max_steps=30",
                     f"out_dir={tmp_path}/c"])
    the_plan.directory.mkdir(parents=True)
    monkeypatch.setattr(SubmititLauncher, "_state", staticmethod(lambda job: "UNKNOWN"))
    monkeypatch.setattr(SubmititLauncher, "_still_queued", staticmethod(lambda job: True))
    assert SubmititLauncher(the_plan, show=False).run() is True
    run = the_plan.runs[0]
    assert run.state == "done", run.note


HANG = """
import time
from pathlib import Path

import lightning as L


class Hang(L.Callback):
    \"\"\"A deadlock inside a step: the process and its threads alive, the step never ending.\"\"\"

    def __init__(self, marker: str):
        self.marker = marker

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 3:
            Path(self.marker).touch()
            time.sleep(90)  # (long enough to be stuck; bounded, so that a worker that misses it ends the test)
"""


@pytest.mark.slow
def test_a_fit_stuck_inside_a_step_is_killed_and_its_run_failed_with_the_reason(tmp_path):
    """The worker's signs of life come from a thread, so they also say how long the fit has gone without progress:
    a fit that stopped moving is killed after compare.reply_timeout, although its worker still answers."""
    (tmp_path / "hang.py").write_text(HANG)
    worker = launch.Worker(dict(os.environ, WANDB_MODE="disabled"), tmp_path / "worker.log", reply_timeout=300.0)
    try:
        # A first request that fails fast (exit 2) lets the worker pay its imports under the long timeout.
        assert worker.run(["fit", "recipe=no_such_recipe"], tmp_path / "warm.log") == 2
        worker.reply_timeout = 10.0  # then a short one: 10 s without a step
        spec = f"{{class_path: {tmp_path}/hang.py:Hang, init_args: {{marker: {tmp_path}/stuck}}}}"
        code = worker.run(["fit", "recipe=domino_2task", "trainer.max_steps=20", "trainer.enable_progress_bar=false",
                           f"callbacks=[{spec}]", f"out_dir={tmp_path}/run"], tmp_path / "run.log")
        assert (tmp_path / "stuck").exists(), (tmp_path / "run.log").read_text()[-2000:]  # it trained, then hung
        assert code is None, (tmp_path / "run.log").read_text()[-2000:]
        assert worker.why == "no progress for 0.167 minutes (compare.reply_timeout): killed"
        assert worker.proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        worker.kill()
        worker.close()

    run = types.SimpleNamespace(state="pending", note="")  # how the comparison records (and counts) it
    launch.Runner._record(run, code, tmp_path / "run.log", worker.why)
    assert run.state == "failed" and run.note.startswith("no progress for 0.167 minutes")


@pytest.mark.slow
def test_a_worker_whose_comparison_was_killed_stops_training(tmp_path):
    request = {"command": "fit", "log": str(tmp_path / "run.log"),
               "args": ["recipe=domino_2task", "trainer.max_steps=1000000", "trainer.enable_progress_bar=false",
                        f"out_dir={tmp_path}/run"]}
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import json, os, sys, time
        from pathlib import Path
        from skilltrain.comparison.launch import Worker
        w = Worker(dict(os.environ), Path({str(tmp_path / 'worker.log')!r}))
        w.proc.stdin.write(json.dumps({request!r}) + "\\n")
        w.proc.stdin.flush()
        print(w.proc.pid, flush=True)
        time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    try:
        for _ in range(600):  # until the fit is training
            if (tmp_path / "run" / "metrics.csv").exists():
                break
            time.sleep(0.2)
        parent.kill()  # the comparison dies without a word
        parent.wait()
        for _ in range(600):
            if not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the orphaned worker kept training")
    finally:
        try:
            os.kill(worker, signal.SIGKILL)
        except ProcessLookupError:
            pass
