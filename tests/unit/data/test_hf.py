"""Users' own data through HF datasets: every bad data set's one line (training on it: tests/e2e/test_hf.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.fixtures import toy_table

from skilltrain.cli import main


def write(tmp_path, frame: pd.DataFrame, name: str = "bad.parquet") -> str:
    path = tmp_path / name
    frame.to_parquet(path)
    return str(path)


BAD_DATA = {
    "missing skill column": (lambda t: t.drop(columns=["skill"]), [], "data.skill_column: no column 'skill'"),
    "missing input column": (lambda t: t, ["data.input_columns=[a,c]"], "data.input_columns: no column 'c'"),
    "negative label": (lambda t: t.assign(label=t["label"] - 1), [], "data.label_column: label -1 is negative"),
    "fractional label": (lambda t: t.assign(label=t["label"] + 0.5), [], "classification labels must be integers"),
    "empty parquet file": (lambda t: t.iloc[:0], [], "data.path: could not load"),
    "skill with one row": (lambda t: pd.concat([t, t.iloc[:1].assign(skill="lonely")]), [],
                           "data.skill_column: skill 'lonely' has 1 row; it needs ≥ 2 to hold one out"),
    "NaN input": (lambda t: t.assign(a=t["a"].where(t.index != 5, np.nan)), [], "inputs contain NaN"),
}


@pytest.mark.parametrize("case", list(BAD_DATA), ids=list(BAD_DATA))
def test_every_bad_data_set_is_one_line_and_exit_2(case, tmp_path, capsys):
    change, extra, message = BAD_DATA[case]
    table = toy_table(200)
    path = write(tmp_path, change(table))
    code = main(["fit", "recipe=hf_example", f"data.path={path}", "data.input_columns=null", "data.eval_split=null",
                 "data.label_column=label", "trainer.max_steps=5", f"out_dir={tmp_path}/run", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ")
    if message:
        assert message in err
    assert not (tmp_path / "run").exists()


def test_an_empty_data_set_is_one_line(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("a,b,skill,label\n")  # a header and no rows
    assert main(["fit", "recipe=hf_example", f"data.path={tmp_path}/empty.csv", "data.label_column=label",
                 "data.input_columns=null", "data.eval_split=null"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: data.path: could not load '{tmp_path}/empty.csv'")


def test_a_local_path_that_does_not_exist_is_one_line_without_asking_the_hub(tmp_path, capsys):
    assert main(["fit", "recipe=hf_example", f"data.path={tmp_path}/exported/mine"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: data.path: no file or directory '{tmp_path}/exported/mine'\n"
