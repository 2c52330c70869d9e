"""`data.mix_column`: data-sampling interventions mix over another column's groups, while the skills (logs, learn
steps) stay the skill column's (end to end with discovered skills: tests/e2e/test_discover.py)."""

from __future__ import annotations

import pytest
import torch
from helpers.fixtures import toy_table

from skilltrain.cli import main
from skilltrain.data import build_task
from skilltrain.data.hf import HFConfig
from skilltrain.data.stream import TrainStream, make_pool_and_eval

ARGS = ("data.input_columns=[is_and,a,b]", "data.label_column=label", "data.eval_split=null")


def table_with_groups(tmp_path, n: int = 400) -> str:
    """The toy table plus a `group` column cutting across its skills: g0 = even rows, g1 = odd rows."""
    table = toy_table(n)
    table["group"] = ["g0" if i % 2 == 0 else "g1" for i in range(n)]
    path = tmp_path / "grouped.parquet"
    table.to_parquet(path)
    return str(path)


def grouped_task(path: str, **extra):
    cfg = HFConfig(path=path, input_columns=["is_and", "a", "b"], label_column="label", eval_split=None,
                   mix_column="group", **extra)
    cfg.validate()
    return build_task(cfg, seed=0)


def test_the_stream_draws_by_group_rates_and_the_skills_stay_the_skill_column(tmp_path):
    task = grouped_task(table_with_groups(tmp_path))
    assert task.skills == ["and", "xor"] and task.mix_groups == ["g0", "g1"]
    assert task.mixing == (["g0", "g1"], pytest.approx([0.5, 0.5]))
    pool, held_out = make_pool_and_eval(task, None, 0, 0)
    stream = TrainStream(task, pool, batch_size=64, seed=1)
    stream.set_rates([1.0, 0.0])  # only g0: both skills still come, from the even rows only
    batch = stream.batch(0)
    assert (batch["mix"] == 0).all() and set(batch["skill"].tolist()) == {0, 1}
    stream.set_rates([0.0, 1.0])
    assert (stream.batch(1)["mix"] == 1).all()
    with pytest.raises(ValueError, match="expected 2 finite"):
        stream.set_rates([1.0, 0.0, 0.0])


def test_online_mixing_mixes_over_the_groups_and_logs_the_true_skills(tmp_path):
    path = table_with_groups(tmp_path)
    assert main(["fit", "recipe=hf_example", f"data.path={path}", *ARGS, "data.mix_column=group", "data.batch_size=64",
                 "interventions.skill_reweighting.mode=online", "trainer.max_steps=20", "trainer.log_every_n_steps=10",
                 "trainer.val_check_interval=10", "trainer.enable_progress_bar=false",
                 f"out_dir={tmp_path}/run"]) == 0
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"intervention/skill_reweighting/rate/g0", "intervention/skill_reweighting/rate/g1"} <= set(header)
    assert "skill/xor/val_acc" in header and "skill/and/val_acc" in header
    assert not any("rate/xor" in h or "skill/g0" in h for h in header)


def test_group_statistics_are_the_rows_of_each_group(tmp_path):
    from skilltrain.module import SkillModule

    task = grouped_task(table_with_groups(tmp_path))
    module = SkillModule(model=torch.nn.Linear(3, 2), task=task)
    losses = torch.tensor([[1.0, 0.0], [0.0, 3.0], [0.0, 5.0]])  # rows' own-skill losses: 1, 3, 5
    mask = losses != 0
    stats = module.group_statistics(losses, None, mask, torch.tensor([0, 1, 0]))
    assert stats["mask_loss"].tolist() == [3.0, 3.0] and stats["count"].tolist() == [2.0, 1.0]


BAD = {
    "no such column": (["data.mix_column=grup"], "data.mix_column: no column 'grup' (did you mean 'group'?"),
    "the label column": (["data.mix_column=label"], "data.mix_column: 'label' is the label column"),
    "one group": (["data.mix_column=one"], "data.mix_column: has 1 group; mixing needs ≥ 2"),
    "floats": (["data.mix_column=a"], "data.mix_column: values must be all strings or all integers"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_bad_mix_column_is_one_line(case, tmp_path, capsys):
    extra, message = BAD[case]
    table = toy_table(200).assign(group="g0", one="g")
    table.to_parquet(tmp_path / "t.parquet")
    code = main(["fit", "recipe=hf_example", f"data.path={tmp_path}/t.parquet", *ARGS, *extra, "trainer.max_steps=2",
                 f"out_dir={tmp_path}/run"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()
