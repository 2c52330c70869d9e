"""The experiment layer: compare's command line and API, sweep and benchmark all plan through one typed request."""

import pytest

import skilltrain
from skilltrain.benchmark import benchmark
from skilltrain.comparison import plan
from skilltrain.errors import UserError
from skilltrain.sweep import sweep


def test_a_comparison_directory_keeps_its_name_for_the_same_command():
    # the name is the hash of what defines the comparison: a rerun after an upgrade must find (and resume) it
    the_plan = plan(["recipe=domino_2task", "seeds=3", "arms=[baseline,gradient_rescaling]"])
    assert the_plan.directory.name == "domino_2task-0ffdf6e3"


def test_the_api_and_the_command_line_plan_the_same_comparison():
    cli = plan(["recipe=domino_2task", "seeds=2", "arms.baseline={}", "arms.fast.overrides.optim.lr=0.1"])
    api = skilltrain.compare("domino_2task", seeds=2, arms={"baseline": None, "fast": {"overrides": {"optim.lr": 0.1}}},
                             overrides=["compare.dry_run=true"], show=False)
    assert api.directory == cli.directory
    assert len(api.commands) == len(cli.runs) == 4
    assert all("optim.lr=0.1" in c for c in api.commands if "/fast/" in c)


def test_a_sweep_takes_its_directory_from_compare_out_dir(tmp_path, capsys):
    code = sweep(["recipe=domino_2task", "sweep.optim.lr=[0.01,0.1]", "seeds=1", f"compare.out_dir={tmp_path}/s",
                  "compare.dry_run=true"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(out) == 2 and all(f"out_dir={tmp_path}/s/lr-0p" in line for line in out)


def _suite(tmp_path, second_overrides: dict) -> str:
    import yaml

    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"arms": ["baseline"], "seeds": 1, "tasks": {
        "first": {"recipe": "domino_2task", "overrides": {"trainer.max_steps": 5}},
        "second": {"recipe": "domino_2task", "overrides": second_overrides}}}))
    return str(path)


def test_a_benchmark_checks_every_task_before_any_runs(tmp_path):
    # a mistake in the last task is one line before anything runs, not an error after the first tasks trained
    with pytest.raises(UserError, match="optim.name"):
        benchmark([f"suite={_suite(tmp_path, {'optim.name': 'nosuch'})}", f"out_dir={tmp_path}/b"])
    assert not (tmp_path / "b").exists()


def test_a_benchmark_dry_run_prints_every_tasks_runs(tmp_path, capsys):
    code = benchmark([f"suite={_suite(tmp_path, {'optim.lr': 0.01})}", f"out_dir={tmp_path}/b", "compare.dry_run=true"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split("out_dir=")[1].split()[0] for line in out] == [f"{tmp_path}/b/first/baseline/seed1",
                                                                      f"{tmp_path}/b/second/baseline/seed1"]
    assert not (tmp_path / "b").exists()
