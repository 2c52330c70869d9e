"""Every kind of bad input: one `error:` line, exit code 2, no traceback, and every existing file left as it was.

Cases cover the command line, config keys and values, recipes, frequencies, model/data shape mismatches,
intervention parameters, users' data sets and skill ids, and checkpoint paths (missing, corrupt, from another run).
They run against a workspace holding two finished runs, a corrupt checkpoint, bad recipe files and bad data sets.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from helpers import fit_quietly

from skilltrain.cli import main


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("workspace")
    fit_quietly("recipe=compositional", "trainer.max_steps=20", out_dir=root / "done")
    fit_quietly("recipe=domino_2task", "trainer.max_steps=20", out_dir=root / "other")
    (root / "corrupt").mkdir()
    (root / "corrupt/config.yaml").write_bytes((root / "done/config.yaml").read_bytes())
    (root / "corrupt/checkpoints").mkdir()
    (root / "corrupt/checkpoints/last.ckpt").write_bytes((root / "done/checkpoints/last.ckpt").read_bytes()[:500])
    (root / "broken.yaml").write_text("data: {name: masked_parity\nmodel: [")
    (root / "typo.yaml").write_text("data: {name: masked_parity, n_bitz: 8}\nmodel: {name: mlp}\n")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.integers(0, 2, 200).astype(float), "b": rng.integers(0, 2, 200).astype(float),
                          "skill": rng.choice(["xor", "and"], 200), "label": rng.integers(0, 2, 200)})
    table.to_parquet(root / "good.parquet")
    table.rename(columns={"label": "lable"}).to_parquet(root / "no_label.parquet")
    table.assign(skill=np.where(table["skill"] == "xor", 0, -1)).to_parquet(root / "negative_id.parquet")
    table.assign(skill=np.where(table["skill"] == "xor", 0, 5)).to_parquet(root / "id_out_of_range.parquet")
    table.assign(skill=table["skill"].where(table.index != 3, None)).to_parquet(root / "missing_skill.parquet")
    table.assign(a=table["a"].astype(str)).to_parquet(root / "text_input.parquet")
    table.assign(label=table["label"] + 5).to_parquet(root / "label_range.parquet")
    table.assign(skill=np.where(table["skill"] == "xor", 0, 1)).to_parquet(root / "int_ids.parquet")
    return root


HF = ("recipe=hf_example", "data.input_columns=null", "data.label_column=label", "data.eval_split=null")

CASES = {
    # the command line
    "unknown command": (["fot"], "unknown command 'fot' (did you mean 'fit'?"),
    "not key=value": (["fit", "foo"], "unexpected argument 'foo': overrides are key=value"),
    "unparsable value": (["fit", "trainer.devices=[1,2"], "trainer.devices: could not parse the value '[1,2'"),
    "export without path": (["export-data", "recipe=multitask_parity"], "export-data needs path=<directory>"),
    "list with arguments": (["list", "recipes"], "list takes only plugins=[...]"),
    # config keys and types
    "unknown key": (["fit", "data.n_bitz=3"], "data.n_bitz: unknown key (did you mean data.n_bits?)"),
    "unknown trainer flag": (["fit", "trainer.max_stepz=3"], "trainer.max_stepz: unknown key (did you mean trainer.max_steps?)"),
    "another task's key": (["fit", "data.n_tasks=3"],
                           "data.n_tasks is a parameter of task hidden_task_parity / multitask_parity"),
    "integer expected": (["fit", "seed=abc"], "seed: expected an integer, got 'abc'"),
    "number expected": (["fit", "optim.lr=fast"], "optim.lr: expected a number, got 'fast'"),
    "section as a scalar": (["fit", "trainer=5"], "trainer: expected a mapping of trainer.* keys, got '5'"),
    "threads": (["fit", "trainer.threads=0"], "trainer.threads: must be auto or a number of threads ≥ 1, got 0"),
    "threads word": (["fit", "trainer.threads=many"], "trainer.threads: must be auto or a number of threads ≥ 1, got many"),
    "negative patience": (["fit", "stop.patience=-1"], "stop.patience: must be ≥ 0, got -1"),
    "unknown scheduler": (["fit", "optim.scheduler=cosin"], "optim.scheduler: unknown scheduler 'cosin' (did you mean 'cosine'?"),
    "data as a scalar": (["fit", "data=3"], "data: expected a mapping of data.* keys, got '3'"),
    "interventions as a scalar": (["fit", "interventions=3"], "interventions: expected a mapping of interventions.* keys"),
    # unknown names
    "unknown recipe": (["fit", "recipe=compositionl"], "recipe: unknown recipe 'compositionl' (did you mean 'compositional'?"),
    "unknown task": (["fit", "data.name=multitask_parit"], "data.name: unknown task 'multitask_parit' (did you mean"),
    "unknown model": (["fit", "model.name=mpl"], "model.name: unknown model 'mpl' (did you mean 'mlp'?"),
    "unknown optimizer": (["fit", "optim.name=adamm"], "optim.name: unknown optimizer 'adamm' (did you mean 'adam'?"),
    "unknown preset": (["fit", "presets=[debugg]"], "presets: unknown preset 'debugg' (did you mean 'debug'?"),
    "unknown metric": (["fit", "metric.name=accuracy"], "metric.name: unknown metric 'accuracy'"),
    "unknown W&B mode": (["fit", "logger.wandb.mode=onlin"], "logger.wandb.mode: unknown W&B mode 'onlin' (did you mean"),
    "unknown activation": (["fit", "model.activation=rellu"], "model.activation: unknown activation 'rellu' (did you mean"),
    "unknown dtype": (["fit", "model.dtype=float8"], "model.dtype: unknown dtype 'float8'"),
    # invalid values
    "zero learning rate": (["fit", "optim.lr=0"], "optim.lr: must be > 0, got 0.0"),
    "negative learning rate": (["fit", "optim.lr=-1e-3"], "optim.lr: must be > 0, got -0.001"),
    "empty widths": (["fit", "model.widths=[]"], "model.widths: must list at least one hidden width"),
    "zero width": (["fit", "model.widths=[50,0]"], "model.widths[1]: must be ≥ 1, got 0"),
    "accuracy threshold above 1": (["fit", "metric.threshold=2"],
                                   "metric.threshold: an accuracy threshold must be in (0, 1]"),
    "betas with signgd": (["fit", "optim.name=signgd", "optim.betas=[0.9,0.99]"],
                          "optim.betas: cannot be set with optim.name=signgd"),
    "no steps": (["fit", "trainer.max_steps=0"], "trainer.max_steps: must be ≥ 1, got 0"),
    "batch larger than the pool": (["fit", "data.batch_size=20000"], "data.batch_size: 20000 is larger than the training pool"),
    "streaming without a batch size": (["fit", "data.n_samples=null"],
                                       "data.batch_size: must be set when data.n_samples is null"),
    "divergence factor below 1": (["fit", "diverge_factor=0.5"], "diverge_factor: must be > 1 or null"),
    "gradient accumulation": (["fit", "trainer.accumulate_grad_batches=4"], "trainer.accumulate_grad_batches: must be 1"),
    "unknown strategy": (["fit", "trainer.strategy=dpp", "out_dir={tmp}/new"],
                         "trainer.strategy: You selected an invalid strategy"),
    "invalid precision": (["fit", "trainer.precision=17", "out_dir={tmp}/new"], "trainer.precision: Precision 17 is invalid"),
    "invalid max_time": (["fit", "trainer.max_time=soon", "out_dir={tmp}/new"], "trainer.max_time:"),
    "accuracy of a regression task": (["fit", "recipe=modularity_regression", "metric.name=acc"],
                                      "metric.name: task two_skill_regression has regression skills without accuracy"),
    # frequencies
    "negative frequency": (["fit", "data.frequencies=[1.0,-0.1,1]"], "data.frequencies[1]: must be > 0, got -0.1"),
    "zero frequency": (["fit", "data.frequencies=[1.0,0,1]"], "data.frequencies[1]: must be > 0, got 0.0"),
    "frequencies of the wrong length": (["fit", "data.frequencies=[1.0]"], "data.frequencies: expected 3 values"),
    "mask rate above 1": (["fit", "recipe=domino_2task", "data.frequencies=[1.0,1.5]"],
                          "data.frequencies[1]: a loss-mask rate must be in (0, 1], got 1.5"),
    "frequencies for a fixed data set": (["fit", "recipe=grokking", "data.frequencies=[1.0]"], "data.frequencies: must be null"),
    "too many skills for the bits": (["fit", "recipe=domino_2task", "data.n_bits=4", "data.frequencies=[1,1,1]"],
                                     "data.n_bits: 3 skills of 2 disjoint bits need n_bits ≥ 6, got 4"),
    # model/data shape mismatches
    "transformer on vector inputs": (["fit", "model.name=transformer"], "a transformer needs token inputs"),
    "embedding MLP on vector inputs": (["fit", "model.name=embedding_mlp"], "embedding_mlp needs token inputs"),
    "modules narrower than the skills": (["fit", "model.name=modular_mlp", "model.widths=[2]"],
                                         "model.widths[0]: must be ≥ the number of skills (3)"),
    "width not a multiple of heads": (["fit", "recipe=rhm_transformer", "model.width=30"],
                                      "model.width: must be a positive multiple of model.heads=4, got 30"),
    "more samples than distinct inputs": (["fit", "recipe=rhm_transformer", "data.m=2", "data.L=2"], "data.n_samples:"),
    # intervention parameters
    "unknown intervention": (["fit", "interventions.foo={}"], "unknown intervention 'foo'"),
    "unknown intervention mode": (["fit", "interventions.gradient_rescaling.mode=grad_nrm"], "unknown mode 'grad_nrm'"),
    "intervention parameter out of range": (["fit", "interventions.skill_reweighting.floor=0"],
                                            "interventions.skill_reweighting.floor: must be in (0, 1)"),
    "intervention on the wrong model": (["fit", "recipe=rhm_transformer", "interventions.modular_routing={}"],
                                        "interventions.modular_routing: turns an MLP into modules"),
    "sampling a full batch": (["fit", "recipe=modularity_regression", "interventions.skill_reweighting.mode=balanced_sampling"],
                              "a full-batch pool (data.batch_size=null) draws every row every step"),
    # recipes
    "missing recipe file": (["fit", "recipe=/nonexistent.yaml"], "recipe: no recipe file at '/nonexistent.yaml'"),
    "recipe file with broken YAML": (["fit", "recipe={ws}/broken.yaml"], "not valid YAML"),
    "recipe file with a typo": (["fit", "recipe={ws}/typo.yaml"], "data.n_bitz: unknown key (from recipe file"),
    # users' data sets and skill ids
    "data set without its label column": (["fit", *HF, "data.path={ws}/no_label.parquet"],
                                          "data.label_column: no column 'label' (did you mean 'lable'?"),
    "negative skill id": (["fit", *HF, "data.path={ws}/negative_id.parquet"], "data.skill_column: skill id -1 is negative"),
    "skill id out of range": (["fit", *HF, "data.path={ws}/id_out_of_range.parquet", "data.skill_names=[x,y]"],
                              "data.skill_column: skill id 5 is out of range"),
    "missing skill": (["fit", *HF, "data.path={ws}/missing_skill.parquet"], "data.skill_column: row 3 has no skill"),
    "text input column": (["fit", *HF, "data.path={ws}/text_input.parquet", "data.input_columns=[a,b]"],
                          "data.input_columns: column 'a' is not numeric"),
    "label out of range": (["fit", *HF, "data.path={ws}/label_range.parquet", "data.n_classes=2"],
                           "data.label_column: label 6 is out of range for data.n_classes=2"),
    "a named skill with no rows": (["fit", *HF, "data.path={ws}/int_ids.parquet", "data.skill_names=[xor,and,or]"],
                                   "data.skill_column: skill 'or' has no rows in the training split"),
    "accuracy of a regression data set": (["fit", *HF, "data.path={ws}/good.parquet", "data.kind=regression"],
                                          "metric.name: task hf has regression skills without accuracy"),
    "missing data file": (["fit", *HF, "data.path={ws}/nothing.parquet"], "data.path: no file or directory"),
    # intervention parameters that only the run can check
    "more experts per sample than experts": (["fit", "interventions.modular_routing.mode=learned",
                                              "interventions.modular_routing.top_k=4"],
                                             "interventions.modular_routing.top_k: must be ≤ the number of experts (3)"),
    "grad_norm in float16": (["fit", "interventions.gradient_rescaling.mode=grad_norm", "trainer.precision=16-mixed"],
                             "trainer.precision: 16-mixed cannot be used with interventions.gradient_rescaling.mode=grad_norm"),
    # checkpoints and run directories
    "out_dir is a file": (["fit", "out_dir={ws}/broken.yaml"], "out_dir: '{ws}/broken.yaml' is a file, not a directory"),
    "resume without a run directory": (["fit", "ckpt_path=last"], "ckpt_path=last needs out_dir=<run directory>"),
    "resume a directory that is no run": (["fit", "ckpt_path=last", "out_dir={ws}/nothing"], "does not exist"),
    "missing checkpoint": (["fit", "ckpt_path={ws}/done/checkpoints/step7.ckpt"], "ckpt_path: no checkpoint at"),
    "corrupt checkpoint": (["fit", "ckpt_path=last", "out_dir={ws}/corrupt"], "cannot read"),
    "checkpoint of another run": (["fit", "ckpt_path={ws}/other/checkpoints/last.ckpt", "out_dir={ws}/done"],
                                  "is from another run (recipe domino_2task, seed 0)"),
    "resume with another task": (["fit", "ckpt_path=last", "out_dir={ws}/done", "data.n_bits=16"],
                                 "data: cannot change when resuming a run"),
    "resume with other presets": (["fit", "ckpt_path=last", "out_dir={ws}/done", "presets=[debug]"],
                                  "presets: cannot change when resuming a run"),
    "an existing run directory": (["fit", "out_dir={ws}/done"], "already exists and is not empty"),
    "several ranks without out_dir": (["fit", "recipe=compositional"], "out_dir: must be set when an external launcher"),
    "rank 0 of several without out_dir": (["fit", "recipe=compositional"], "out_dir: must be set when an external launcher"),
    "export over existing files": (["export-data", "recipe=compositional", "path={ws}/done"], "export-data never overwrites"),
}


def snapshot(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_the_matrix_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input(case, ws, tmp_path, capsys, monkeypatch):
    args, message = CASES[case]
    if case == "several ranks without out_dir":
        monkeypatch.setenv("SLURM_NTASKS", "4")  # as srun starts rank 2 of 4
        monkeypatch.setenv("SLURM_PROCID", "2")
    if case == "rank 0 of several without out_dir":  # as torchrun starts rank 0 of 2: it must not run alone
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "0")
    args = [a.replace("{ws}", str(ws)).replace("{tmp}", str(tmp_path)) for a in args]
    before = snapshot(ws)
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, (out[-500:], err[-1500:])
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert message.replace("{ws}", str(ws)) in err, err
    assert "Traceback" not in out + err
    assert snapshot(ws) == before  # nothing existing was touched
    assert not list(tmp_path.iterdir())  # and nothing new was written (a run directory made for it is removed)
