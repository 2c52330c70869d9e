"""Config composition, the recipes, and the one-line errors for bad input."""

from __future__ import annotations

import pytest
from conftest import load, run_cli
from omegaconf import OmegaConf

from skilltrain.cli import main
from skilltrain.config import from_container, recipe_names, to_container


def test_every_recipe_composes_and_round_trips():
    names = recipe_names()
    assert {"compositional", "compositional_control", "domino_2task", "multitask_parity"} <= set(names)
    for name in names:
        cfg = load(f"recipe={name}")
        assert cfg.recipe == name
        again = from_container(to_container(cfg))
        assert to_container(again) == to_container(cfg)


def test_layers_apply_in_order():
    cfg = load("recipe=domino_2task", "presets=[debug]", "trainer.max_steps=7", "data.frequencies=[1.0,0.05]")
    assert cfg.trainer.max_steps == 7  # command line beats the preset
    assert cfg.trainer.val_check_interval == 10  # the preset beats the recipe and the defaults
    assert list(cfg.data.frequencies) == [1.0, 0.05]
    assert cfg.model.dtype == "float64"  # from the recipe
    assert cfg.optim.eps == 1e-8  # from conf/defaults.yaml


def test_task_schema_follows_the_task_name():
    cfg = load("recipe=compositional", "data.name=multitask_parity", "data.n_tasks=4")
    assert cfg.data.n_tasks == 4 and cfg.data.alpha == 1.5


def test_recipe_file_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("data: {name: masked_parity, frequencies: [1.0, 0.5, 0.25]}\nmodel: {name: mlp}\n")
    cfg = load(f"recipe={path}")
    assert list(cfg.data.frequencies) == [1.0, 0.5, 0.25]


BAD = [
    (["data.n_bitz=3"], "data.n_bitz: unknown key (did you mean data.n_bits?)"),
    (["trainer.max_stepz=3"], "trainer.max_stepz: unknown key (did you mean trainer.max_steps?)"),
    (["data.n_tasks=3"], "data.n_tasks is a parameter of task multitask_parity"),
    (["seed=abc"], "seed: expected an integer, got 'abc'"),
    (["optim.lr=fast"], "optim.lr: expected a number, got 'fast'"),
    (["recipe=compositionl"], "recipe: unknown recipe 'compositionl' (did you mean 'compositional'?"),
    (["data.name=multitask_parit"], "data.name: unknown task 'multitask_parit' (did you mean 'multitask_parity'?"),
    (["model.name=mpl"], "model.name: unknown model 'mpl' (did you mean 'mlp'?"),
    (["optim.name=adamm"], "optim.name: unknown optimizer 'adamm' (did you mean 'adam'?"),
    (["data.frequencies=[1.0,-0.1,1]"], "data.frequencies[1]: must be > 0, got -0.1"),
    (["data.frequencies=[1.0,0,1]"], "data.frequencies[1]: must be > 0, got 0.0"),
    (["data.frequencies=[1.0]"], "data.frequencies: expected 3 values (one per skill of compositional_parity), got 1"),
    (["recipe=domino_2task", "data.frequencies=[1.0,1.5]"], "data.frequencies[1]: a loss-mask rate must be in (0, 1], got 1.5"),
    (["data.frequencies=abc"], "data.frequencies: expected a list"),
    (["model.widths=[]"], "model.widths: must list at least one hidden width"),
    (["model.widths=[50,0]"], "model.widths[1]: must be ≥ 1, got 0"),
    (["optim.lr=0"], "optim.lr: must be > 0, got 0.0"),
    (["optim.lr=-1e-3"], "optim.lr: must be > 0, got -0.001"),
    (["optim.name=signgd", "optim.betas=[0.9,0.99]"], "optim.betas: cannot be set with optim.name=signgd"),
    (["metric.name=accuracy"], "metric.name: unknown metric 'accuracy'"),
    (["metric.threshold=2"], "metric.threshold: an accuracy threshold must be in (0, 1], got 2.0"),
    (["logger.wandb.mode=onlin"], "logger.wandb.mode: unknown W&B mode 'onlin' (did you mean 'online'?"),
    (["model.activation=rellu"], "model.activation: unknown activation 'rellu' (did you mean 'relu'?"),
    (["model.dtype=float8"], "model.dtype: unknown dtype 'float8'"),
    (["interventions.foo={}"], "unknown intervention 'foo'"),
    (["presets=[debugg]"], "presets: unknown preset 'debugg' (did you mean 'debug'?"),
    (["trainer=5"], "trainer: expected a mapping of trainer.* keys, got '5'"),
    (["data=3"], "data: expected a mapping of data.* keys, got '3'"),
    (["data.batch_size=20000"], "data.batch_size: 20000 is larger than the training pool data.n_samples=8000"),
    (["data.n_samples=null"], "data.batch_size: must be set when data.n_samples is null"),
    (["recipe=domino_2task", "data.frequencies=[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]"], "data.n_bits: 17 skills of 2"),
    (["foo"], "unexpected argument 'foo': overrides are key=value"),
    (["trainer.devices=[1,2"], "trainer.devices: could not parse the value '[1,2'"),
    (["recipe=/nonexistent.yaml"], "recipe: no recipe file at '/nonexistent.yaml'"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path):
    assert main(["fit", *args]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err
    assert "Traceback" not in err + out
    assert not (tmp_path / "runs").exists()  # nothing was written


def test_unknown_command_suggests_the_closest(capsys):
    assert main(["fot"]) == 2
    assert "unknown command 'fot' (did you mean 'fit'?" in capsys.readouterr().err


def test_bad_input_in_a_real_process_has_no_traceback():
    result = run_cli("fit", "data.n_bitz=3")
    assert result.returncode == 2
    assert result.stderr == "error: data.n_bitz: unknown key (did you mean data.n_bits?)\n"
    assert result.stdout == ""


def test_print_config_is_the_resolved_yaml():
    result = run_cli("print-config", "recipe=domino_2task", "data.frequencies=[1.0,0.05]", "seed=4")
    assert result.returncode == 0, result.stderr
    cfg = OmegaConf.create(result.stdout)
    assert cfg.seed == 4 and list(cfg.data.frequencies) == [1.0, 0.05] and cfg.data.name == "masked_parity"
    assert cfg.trainer.max_steps == 1500 and cfg.optim.name == "adam"


def test_list_names_everything_with_a_description(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["compositional", "domino_2task", "multitask_parity", "masked_parity", "compositional_parity",
                 "mlp", "adam", "signgd", "interventions"]:
        assert name in out
    assert "SignGD: Adam with betas (0, 0)" in out
