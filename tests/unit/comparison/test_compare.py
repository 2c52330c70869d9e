"""The compare command: planning arms × seeds, resuming, failures and bad input, without training a comparison
(real comparisons: tests/e2e/test_compare.py)."""

from __future__ import annotations

import json
import shlex

import pytest

from skilltrain.cli import main
from skilltrain.comparison import next_command, plan
from skilltrain.config import load_config


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


@pytest.mark.parametrize("name", ["all_modes", "jacobian", "modularity"])
def test_every_shipped_arms_file_plans_runnable_arms(name, tmp_path):
    from skilltrain.comparison.plan import arms_file_names

    assert sorted(arms_file_names()) == ["all_modes", "jacobian", "modularity"]  # a new file: add it above
    p = plan([f"recipe={'modularity_regression' if name == 'modularity' else 'domino_2task'}", "seeds=1", f"arms={name}",
              f"out_dir={tmp_path}/c"])  # every arm's config is checked (an unknown mode or aggregator is refused)
    assert list(p.arms)[0] == "baseline" and len(p.arms) > 2


def test_the_jacobian_arms_are_every_aggregator_with_its_defaults(tmp_path):
    from skilltrain.callbacks.jacobian_descent import AGGREGATORS

    p = plan(["recipe=domino_2task", "seeds=1", "arms=jacobian", f"out_dir={tmp_path}/c"])
    assert list(p.arms) == ["baseline", *AGGREGATORS]
    assert all(p.arms[a]["interventions"] == {"jacobian_descent": {"aggregator": a}} for a in AGGREGATORS)


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


def test_arms_that_train_other_skills_cannot_be_compared(capsys, tmp_path):
    assert main(["compare", "recipe=multitask_parity", "arms.a={}", "compare.baseline=a",
                 "arms.b.overrides.data.n_tasks=5", f"compare.out_dir={tmp_path}/c"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "arms.b: must train the same skills and measure them alike as arm a" in err


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
