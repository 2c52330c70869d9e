"""The compare command: planning arms × seeds, resuming, failures, and a real (small) comparison end to end."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_cli

from skilltrain.cli import main
from skilltrain.comparison import next_command, plan
from skilltrain.config import load_config

SMALL = ("recipe=domino_2task", "data.n_samples=2000", "data.frequencies=[1.0,0.2]", "trainer.max_steps=400",
         "trainer.val_check_interval=100", "checkpoint.every_n_steps=100")


def test_arms_shorthand_seeds_and_paired_runs(tmp_path):
    p = plan(["recipe=domino_2task", "seeds=3", "arms=[baseline,gradient_rescaling]", f"compare.out_dir={tmp_path}/c",
              "optim.lr=2e-3"])
    assert list(p.arms) == ["baseline", "gradient_rescaling"] and p.seeds == [1, 2, 3]
    assert p.arms["gradient_rescaling"] == {"interventions": {"gradient_rescaling": {}}, "overrides": {}}
    assert len(p.runs) == 6 and {(r.arm, r.seed) for r in p.runs} == {(a, s) for a in p.arms for s in (1, 2, 3)}
    run = next(r for r in p.runs if r.arm == "gradient_rescaling" and r.seed == 2)
    assert "optim.lr=2e-3" in run.args and "seed=2" in run.args and 'interventions.gradient_rescaling={}' in run.args
    assert f"out_dir={tmp_path}/c/gradient_rescaling/seed2" in run.args
    assert "logger.wandb.group=compare-c" in run.args and "logger.wandb.job_type=gradient_rescaling" in run.args


def test_arms_mapping_with_overrides_and_an_arms_file(tmp_path):
    p = plan(["recipe=grokking", "seeds=[3,7]", "arms.adam={}", "arms.signgd.overrides.optim.name=signgd",
              f"compare.out_dir={tmp_path}/c", "compare.baseline=adam"])
    assert p.seeds == [3, 7] and p.arms["signgd"]["overrides"] == {"optim": {"name": "signgd"}}
    assert any('optim.name="signgd"' in a for a in next(r for r in p.runs if r.arm == "signgd").args)
    arms_file = tmp_path / "arms.yaml"
    arms_file.write_text("arms:\n  base: {}\n  online:\n    interventions:\n      skill_reweighting: {mode: online, lr: 2.0}\n")
    p = plan(["recipe=multitask_parity", "seeds=2", f"arms={arms_file}", "compare.baseline=base"])
    run = next(r for r in p.runs if r.arm == "online")
    assert 'interventions.skill_reweighting.mode="online"' in run.args and "interventions.skill_reweighting.lr=2.0" in run.args


def test_the_comparison_directory_follows_the_command():
    a = plan(["recipe=domino_2task", "seeds=2", "arms=[baseline,skill_reweighting]"]).directory
    b = plan(["recipe=domino_2task", "seeds=2", "arms=[baseline,skill_reweighting]"]).directory
    c = plan(["recipe=domino_2task", "seeds=3", "arms=[baseline,skill_reweighting]"]).directory
    assert a == b != c and str(a).startswith("runs/compare/domino_2task-")


@pytest.mark.parametrize("args, message", [
    (["arms=[baseline,skill_reweighing]"], "arms: unknown arm 'skill_reweighing' (did you mean 'skill_reweighting'?"),
    (["arms=[]"], "arms: needs arms to run"),
    (["arms=[baseline,gradient_rescaling]", "compare.baseline=base"], "compare.baseline: unknown baseline arm 'base'"),
    (["arms=[baseline,gradient_rescaling]", "compare.wrkers=2"], "compare.wrkers"),
    (["arms=[baseline,gradient_rescaling]", "seeds=0"], "seeds: must be ≥ 1"),
    (["arms.a={}", "arms.b.overrides.optim.lr=-1", "compare.baseline=a"], "arm b: optim.lr: must be > 0, got -1.0"),
    (["arms.a={}", "arms.b.interventions.gradient_rescaling.mode=bogus", "compare.baseline=a"],
     "arm b: interventions.gradient_rescaling.mode"),
    (["arms.a={}", "arms.b.overide.x=1", "compare.baseline=a"], "arms.b.overide: unknown key"),
    (["seeds=2"], "arms: is required"),
])
def test_bad_comparisons_are_one_line(args, message, capsys, tmp_path):
    assert main(["compare", "recipe=domino_2task", f"compare.out_dir={tmp_path}/c", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "c").exists()


def test_resume_logic_skips_finished_runs_resumes_stopped_ones_and_restarts_the_rest(tmp_path):
    p = plan(["recipe=domino_2task", "seeds=3", "arms=[baseline,gradient_rescaling]", f"compare.out_dir={tmp_path}/c"])
    done, diverged, stopped, broken, _, fresh = p.runs
    for run, status in ((done, "completed"), (diverged, "diverged"), (stopped, "stopped")):
        (run.run_dir / "checkpoints").mkdir(parents=True)
        (run.run_dir / "summary.json").write_text(json.dumps({"status": status}))
    (stopped.run_dir / "checkpoints/last.ckpt").write_bytes(b"x")
    broken.run_dir.mkdir(parents=True)  # started, then crashed before any summary
    assert next_command(done) == [] and next_command(diverged) == []
    assert next_command(stopped) == ["fit", "ckpt_path=last", f"out_dir={stopped.run_dir}", "trainer.enable_progress_bar=false"]
    assert next_command(broken)[-1] == "overwrite=true" and next_command(broken)[1:-1] == broken.args
    assert next_command(fresh) == ["fit", *fresh.args]


def test_dry_run_prints_one_runnable_fit_command_per_run(capsys, tmp_path):
    assert main(["compare", "recipe=domino_2task", "seeds=2", "arms.base={}", "compare.baseline=base",
                 "arms.rare.overrides.data.frequencies=[1.0,0.05]", "compare.dry_run=true",
                 f"compare.out_dir={tmp_path}/c"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("python -m skilltrain fit recipe=domino_2task") for line in lines)
    words = shlex.split(lines[-1])  # as a shell would split it
    assert "data.frequencies=[1.0,0.05]" in words
    cfg = load_config(words[4:])  # the printed arguments are a valid config
    assert list(cfg.data.frequencies) == [1.0, 0.05] and cfg.seed == 2
    assert not (tmp_path / "c").exists()


def test_a_comparison_directory_is_continued_only_by_its_own_command(capsys, tmp_path):
    args = ["recipe=domino_2task", "seeds=2", "arms=[baseline]", f"compare.out_dir={tmp_path}/c"]
    (tmp_path / "c").mkdir()
    (tmp_path / "c/plan.json").write_text(plan(args).identity)  # as a first run of this command leaves it
    assert main(["compare", *args, "compare.dry_run=true"]) == 0
    capsys.readouterr()
    assert main(["compare", *args, "seed=3", "compare.dry_run=true"]) == 2  # other overrides: other runs
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a comparison made by another command" in err


def test_comparison_runs_end_once_every_skill_is_learned_unless_asked_not_to(tmp_path):
    p = plan(["recipe=domino_2task", "seeds=1", "arms=[baseline]", f"out_dir={tmp_path}/a"])
    assert "stop.when_all_learned=true" in p.runs[0].args
    p = plan(["recipe=domino_2task", "seeds=1", "arms=[baseline]", "compare.stop_early=false", f"out_dir={tmp_path}/b"])
    assert not any(a.startswith("stop.") for a in p.runs[0].args)
    p = plan(["recipe=domino_2task", "seeds=1", "arms=[baseline]", "stop.when_all_learned=false", f"out_dir={tmp_path}/c"])
    assert "stop.when_all_learned=false" in p.runs[0].args and "stop.when_all_learned=true" not in p.runs[0].args


def test_out_dir_is_the_comparison_directory(capsys, tmp_path):
    p = plan(["recipe=domino_2task", "seeds=2", "arms=[baseline]", f"out_dir={tmp_path}/mine"])
    assert p.directory == tmp_path / "mine"
    assert all(r.run_dir.parent.parent == tmp_path / "mine" for r in p.runs)
    assert not any(a.startswith("out_dir=") and "mine/" not in a for r in p.runs for a in r.args)
    assert main(["compare", "recipe=domino_2task", "seeds=2", "arms=[baseline]", f"out_dir={tmp_path}/a",
                 f"compare.out_dir={tmp_path}/b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out_dir: " in err and "disagree" in err


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


def test_arms_that_train_other_skills_cannot_be_compared(capsys, tmp_path):
    assert main(["compare", "recipe=multitask_parity", "arms.a={}", "compare.baseline=a",
                 "arms.b.overrides.data.n_tasks=5", f"compare.out_dir={tmp_path}/c"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "arms.b: must train the same skills and measure them alike as arm a" in err


@pytest.mark.slow
def test_a_small_comparison_end_to_end_with_a_diverging_arm(tmp_path):
    args = ["compare", *SMALL, "seeds=2", "arms.baseline={}", "arms.rescaled.interventions.gradient_rescaling={}",
            "arms.unstable.overrides.optim.lr=1e3", "compare.workers=2", f"compare.out_dir={tmp_path}/c"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"comparison_dir: {tmp_path}/c"
    out = tmp_path / "c"
    for name in ("comparison.json", "comparison.csv", "comparison.md", "curves.png", "learn_steps.png", "timeline.png"):
        assert (out / name).is_file(), name
    comparison = json.loads((out / "comparison.json").read_text())
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
    proc = subprocess.Popen([sys.executable, "-m", "skilltrain", "compare", *common, f"compare.out_dir={tmp_path}/cut"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def a_second_run_is_under_way():  # one run finished, another one checkpointed and not finished
        done = list((tmp_path / "cut").glob("*/seed*/summary.json"))
        going = [c for c in (tmp_path / "cut").glob("*/seed*/checkpoints/last.ckpt")
                 if not (c.parent.parent / "summary.json").exists()]
        return done and going

    start = time.time()
    while not a_second_run_is_under_way():
        assert time.time() - start < 300 and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
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


@pytest.mark.filterwarnings("ignore:You passed `deterministic=True` and `benchmark=True`")
def test_a_worker_restores_the_process_wide_torch_settings_a_run_changed(tmp_path):
    """trainer.deterministic / trainer.benchmark make Lightning change torch for the whole process; in a worker the
    next run must not inherit them."""
    import torch

    from skilltrain.worker import run_one

    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    code, healthy = run_one(["recipe=compositional", "trainer.max_steps=3", "trainer.deterministic=true",
                             "trainer.benchmark=true", "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled",
                             f"out_dir={tmp_path}/run"])
    assert code == 0 and healthy
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before == (False, False)


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
    setup = subprocess.run(["bash", str(Path(__file__).parent / "helpers" / "slurm_setup.sh"), "/tmp/skilltrain-slurm"],
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
