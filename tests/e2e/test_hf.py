"""Users' own data through HF datasets end to end: training on it with skill names in logs, export-data, the README's
command, a missing path from the command line."""

from __future__ import annotations

import csv

import pytest
from helpers import fit_quietly, run_cli
from helpers.fixtures import toy_table

from skilltrain.cli import main


def test_parquet_with_string_skills_trains_and_logs_by_skill_name(tmp_path):
    toy_table().to_parquet(tmp_path / "toy.parquet")
    run = tmp_path / "run"
    summary = fit_quietly("recipe=hf_example", f"data.path={tmp_path}/toy.parquet", "data.input_columns=null",
                          "data.label_column=label", "data.eval_split=null", "data.batch_size=256",
                          "trainer.max_steps=600", "model.widths=[32]", "optim.lr=1e-2", out_dir=run)
    assert list(summary["skills"]) == ["and", "xor"]
    assert summary["skills"]["xor"]["frequency"] == pytest.approx(0.8, abs=0.03)
    assert all(s["learned_step"] is not None for s in summary["skills"].values()), summary["skills"]
    header = next(csv.reader((run / "metrics.csv").open()))
    assert {"skill/xor/acc", "skill/and/acc", "skill/xor/val_acc", "skill/and/val_loss"} <= set(header)


def test_export_data_round_trips_through_the_hf_task(tmp_path):
    assert main(["export-data", "recipe=multitask_parity", "data.n_tasks=3", "data.n_samples=3000",
                 "data.eval_samples=50", f"path={tmp_path}/mtp"]) == 0
    import datasets

    exported = datasets.load_from_disk(str(tmp_path / "mtp"))
    assert len(exported["train"]) == 3000 and len(exported["eval"]) == 150
    assert set(exported["train"]["skill"]) == {"task0", "task1", "task2"}
    summary = fit_quietly("recipe=hf_example", f"data.path={tmp_path}/mtp", "trainer.max_steps=30",
                          out_dir=tmp_path / "run")
    assert list(summary["skills"]) == ["task0", "task1", "task2"]
    assert summary["skills"]["task0"]["frequency"] > summary["skills"]["task2"]["frequency"]
    # never overwrites
    assert main(["export-data", "recipe=multitask_parity", "data.n_samples=10", f"path={tmp_path}/mtp"]) == 2


def test_missing_path_is_one_line(tmp_path):
    result = run_cli("fit", "recipe=hf_example", f"data.path={tmp_path}/nothing.parquet")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "data.path: no file or directory" in result.stderr
    result = run_cli("fit", "recipe=hf_example", f"data.path={tmp_path}")  # an empty directory, not a data set
    assert result.returncode == 2 and result.stderr.startswith("error: data.path: could not load")


def test_the_readme_own_data_command_works_on_a_single_split_table(tmp_path):
    """README: `fit recipe=hf_example data.path=my_table.parquet data.input_columns=[…] data.label_column=…` on a
    table without splits: data.eval_fraction of each skill's rows is held out (eval_split=auto finds none)."""
    toy_table().to_parquet(tmp_path / "my_table.parquet")
    result = run_cli("fit", "recipe=hf_example", "data.path=my_table.parquet", "data.input_columns=[is_and,a,b]",
                     "data.label_column=label", "trainer.max_steps=40", "trainer.val_check_interval=20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning" not in result.stderr  # is_and tells the skills apart: no warning about a shared head
    run = tmp_path / result.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert any(r.get("skill/and/val_acc") for r in rows)  # the held-out rows were taken from the table itself


@pytest.mark.parametrize("head, warned", [("auto", True), ("per_skill", False)])
def test_a_shared_head_over_inputs_that_do_not_tell_the_skills_apart_is_warned(head, warned, tmp_path, capsys):
    """Without is_and, 'xor' and 'and' map the same inputs (a, b) to different labels: a shared head cannot learn
    both. One output block per skill can."""
    toy_table(400).drop(columns=["is_and"]).to_parquet(tmp_path / "t.parquet")
    fit_quietly("recipe=hf_example", f"data.path={tmp_path}/t.parquet", "data.input_columns=[a,b]",
                "data.label_column=label", "trainer.max_steps=5", f"model.head={head}", out_dir=tmp_path / "run")
    err = capsys.readouterr().err
    assert ("warning: the inputs do not carry the skill (2 skills) and the output head is shared" in err) == warned, err
