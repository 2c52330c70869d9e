"""The compare command end to end: real (small) comparisons, an interrupted one resumed, a long-lived worker, and the
submitit and single-node SLURM launchers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from helpers import HELPERS, Background, run_cli

SMALL = ("recipe=domino_2task", "data.n_samples=2000", "data.frequencies=[1.0,0.2]", "trainer.max_steps=400",
         "trainer.val_check_interval=100", "checkpoint.every_n_steps=100")


@pytest.mark.slow
@pytest.mark.parametrize("arms", [("arms.baseline={}",), ()], ids=["beside a good arm", "alone"])
def test_an_arm_without_a_finished_run_fails_the_comparison(arms, tmp_path):
    result = run_cli("compare", *SMALL, "trainer.max_steps=20", "seeds=1", *arms,
                     "arms.broken.overrides.trainer.precision=bogus", "compare.baseline=" + ("baseline" if arms else "broken"),
                     f"compare.out_dir={tmp_path}/c")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: arm broken has no finished run (seed 1: exit code 2: error: trainer.precision"), last
    assert (tmp_path / "c/comparison.json").is_file()  # what could be measured is still written


@pytest.mark.slow
def test_a_small_comparison_end_to_end_with_a_diverging_arm(tmp_path):
    args = ["compare", *SMALL, "seeds=2", "arms.baseline={}", "arms.rescaled.interventions.gradient_rescaling={}",
            "arms.unstable.overrides.optim.lr=1e3", "compare.workers=2", f"compare.out_dir={tmp_path}/c"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"comparison_dir: {tmp_path}/c"
    out = tmp_path / "c"
    for name in ("comparison.json", "comparison.csv", "comparison.md", "curves.png", "learn_steps.png", "timeline.png",
                 "tradeoff.png"):
        assert (out / name).is_file(), name
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison["tradeoffs"]) == {"rescaled", "unstable"}  # every arm but the baseline, on one plot
    # lr=1e3 diverges on both seeds at once: counted, every skill censored at the budget, never dropped
    assert comparison["excluded"] == [] and comparison["diverged"]["unstable"] == [1, 2]
    unstable = comparison["skills"]["x1x2"]["unstable"]
    assert (unstable["n"], unstable["n_censored"], unstable["n_diverged"]) == (2, 2, 2)
    assert unstable["speedup"]["median"] < 1 and comparison["budget"]["unstable"] == 400  # slower than any learned run
    rare = comparison["skills"]["x3x4"]
    assert rare["baseline"]["n"] == 2 and rare["rescaled"]["speedup"]["median"] > 1
    assert "Diverged (counted: skills not learned before diverging are censored" in result.stdout
    assert "unstable seeds 1, 2." in result.stdout
    md = (out / "comparison.md").read_text()
    assert "| x3x4 learn step | rescaled |" in md
    assert "| x3x4 learn step | unstable | >400 [>400, >400] | 2/2 (2 diverged) |" in md
    again = run_cli(*args)  # the same command again: nothing left to run, the same statistics
    assert again.returncode == 0 and "6 runs finished earlier (kept), 0 to run" in again.stderr
    assert json.loads((out / "comparison.json").read_text())["skills"] == comparison["skills"]


@pytest.mark.slow
def test_an_interrupted_comparison_resumes_to_the_uninterrupted_result(tmp_path):
    # full budgets (no early stop): runs long enough to be interrupted between a checkpoint and their end
    common = [*SMALL, "seeds=2", "arms=[baseline,skill_reweighting]", "compare.workers=1", "compare.stop_early=false"]
    whole = run_cli("compare", *common, f"compare.out_dir={tmp_path}/whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    # Ctrl-C's SIGINT, as a terminal sends it: a shell without job control starts background jobs with SIGINT ignored,
    # and Python keeps it ignored (no KeyboardInterrupt), so the child gets the default disposition back
    run = Background([sys.executable, "-m", "skilltrain", "compare", *common, f"compare.out_dir={tmp_path}/cut"],
                     tmp_path, "cut", preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def a_second_run_is_under_way():  # one run finished, another one checkpointed and not finished
        done = list((tmp_path / "cut").glob("*/seed*/summary.json"))
        going = [c for c in (tmp_path / "cut").glob("*/seed*/checkpoints/last.ckpt")
                 if not (c.parent.parent / "summary.json").exists()]
        return done and going

    run.wait_until(a_second_run_is_under_way, "second run under way", 300)
    run.proc.send_signal(signal.SIGINT)
    out, err = run.finish(timeout=300)
    assert run.proc.returncode == 130, err[-2000:]
    assert "run the same command again to continue" in err
    assert not (tmp_path / "cut/comparison.json").exists()
    rerun = run_cli("compare", *common, f"compare.out_dir={tmp_path}/cut")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "to run" in rerun.stderr and "0 to run" not in rerun.stderr and "4 to run" not in rerun.stderr
    resumed = [p.read_text() for p in (tmp_path / "cut/logs").glob("*-seed*.log") if "ckpt_path=last" in p.read_text()]
    assert resumed and all(log.count("=" * 30) == 2 for log in resumed)  # both attempts' output kept, in order
    a = json.loads((tmp_path / "whole/comparison.json").read_text())
    b = json.loads((tmp_path / "cut/comparison.json").read_text())
    assert a["skills"] == b["skills"] and a["all_learned"] == b["all_learned"]


@pytest.mark.slow
def test_a_worker_runs_fit_after_fit_and_nothing_leaks_between_them(tmp_path):
    """The same run twice in one long-lived worker process, a different one in between: identical results."""
    import torch

    from skilltrain.comparison.launch import Worker

    worker = Worker({**__import__("os").environ, "WANDB_MODE": "disabled"}, tmp_path / "worker.log")
    try:
        common = ["trainer.max_steps=60", "data.batch_size=256", "trainer.enable_progress_bar=false"]
        runs = [("a", ["recipe=domino_2task", "seed=3", "interventions.skill_reweighting.mode=online", *common]),
                ("between", ["recipe=multitask_parity", "data.n_tasks=3", "seed=5", *common]),
                ("again", ["recipe=domino_2task", "seed=3", "interventions.skill_reweighting.mode=online", *common])]
        for name, args in runs:
            assert worker.run(["fit", *args, f"out_dir={tmp_path}/{name}"], tmp_path / f"{name}.log") == 0, \
                (tmp_path / f"{name}.log").read_text()[-2000:]
        assert worker.alive() and "run_dir:" in (tmp_path / "again.log").read_text()
    finally:
        worker.close()
    first, again = (torch.load(tmp_path / n / "checkpoints/last.ckpt", weights_only=True) for n in ("a", "again"))
    assert all(torch.equal(first["state_dict"][k], again["state_dict"][k]) for k in first["state_dict"])
    assert (tmp_path / "a/metrics.csv").read_text() == (tmp_path / "again/metrics.csv").read_text()


@pytest.mark.slow
def test_a_comparison_through_submitit_as_a_job_array(tmp_path):
    """compare.launcher=submitit with submitit's local executor: the same submission a SLURM cluster would get (a
    job array, one fit per job, logs in the comparison directory); run again, it collects without resubmitting."""
    args = ["compare", *SMALL, "trainer.max_steps=200", "seeds=2", "arms=[baseline,gradient_rescaling]",
            "compare.launcher=submitit", "compare.slurm.cluster=local", "compare.slurm.time=10",
            f"compare.out_dir={tmp_path}/c"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "0 runs finished earlier (kept), 4 submitted, 0 waited for" in result.stderr
    comparison = json.loads((tmp_path / "c/comparison.json").read_text())
    assert comparison["excluded"] == [] and comparison["seeds"] == {"baseline": [1, 2], "gradient_rescaling": [1, 2]}
    jobs = json.loads((tmp_path / "c/jobs.json").read_text())
    assert sorted(jobs) == ["baseline/seed1", "baseline/seed2", "gradient_rescaling/seed1", "gradient_rescaling/seed2"]
    assert list((tmp_path / "c/jobs").glob("*/*_log.out"))  # the scheduler's logs, in the comparison directory
    again = run_cli(*args)
    assert again.returncode == 0 and "4 runs finished earlier (kept), 0 submitted" in again.stderr
    bad = run_cli(*args[:-2], "compare.slurm.cluster=slrum", f"compare.out_dir={tmp_path}/d")
    assert bad.returncode == 2 and "compare.slurm.cluster: unknown cluster 'slrum' (did you mean 'slurm'?" in bad.stderr


def _single_node_slurm() -> str | None:
    """Start a one-node SLURM on this machine (installing Debian's packages if need be, as root); None when it runs,
    else why not."""
    import os
    import shutil

    if shutil.which("slurmctld") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return "SLURM is not installed and this is not a root Debian machine"
        install = subprocess.run("apt-get update -qq && apt-get install -y -qq slurm-wlm munge", shell=True,
                                 capture_output=True, text=True, timeout=600)
        if install.returncode:
            return f"apt-get install slurm-wlm munge failed: {install.stderr[-300:]}"
    setup = subprocess.run(["bash", str(HELPERS / "slurm_setup.sh"), "/tmp/skilltrain-slurm"],
                           capture_output=True, text=True, timeout=120)
    return None if setup.returncode == 0 else f"slurm did not start: {setup.stderr[-300:]}"


@pytest.mark.slow
def test_a_comparison_on_a_real_single_node_slurm(tmp_path):
    why = _single_node_slurm()
    if why:
        pytest.skip(why)
    result = run_cli("compare", *SMALL, "trainer.max_steps=100", "seeds=2", "arms=[baseline,gradient_rescaling]",
                     "compare.launcher=submitit", "compare.slurm.cluster=slurm", "compare.slurm.cpus_per_task=1",
                     "compare.slurm.time=10", f"compare.out_dir={tmp_path}/c")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = json.loads((tmp_path / "c/jobs.json").read_text())
    array = {job_id.split("_")[0] for job_id in jobs.values()}
    assert len(jobs) == 4 and len(array) == 1  # one SLURM job array, one task per run
    comparison = json.loads((tmp_path / "c/comparison.json").read_text())
    assert comparison["excluded"] == [] and comparison["seeds"]["gradient_rescaling"] == [1, 2]
