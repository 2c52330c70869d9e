"""Config composition, the recipes, print-config and list (bad input in a real process: tests/e2e/test_config.py)."""

from __future__ import annotations

from helpers import load, run_cli
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


def test_null_turns_off_an_intervention_that_the_recipe_enabled(tmp_path):
    path = tmp_path / "with_two.yaml"
    path.write_text("data: {name: masked_parity}\nmodel: {name: mlp}\n"
                    "interventions: {gradient_rescaling: {mode: sign}, skill_reweighting: {}}\n")
    assert set(load(f"recipe={path}").interventions) == {"gradient_rescaling", "skill_reweighting"}
    cfg = load(f"recipe={path}", "interventions.gradient_rescaling=null")
    assert set(cfg.interventions) == {"skill_reweighting"} and cfg.interventions.skill_reweighting.mode == "inverse_frequency"


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
    from skilltrain.cli import COMMANDS, command_summaries

    summaries = dict(command_summaries())
    assert set(summaries) == set(COMMANDS) and all(summaries.values()), summaries  # every command is described
    for command in ("analyze", "sweep", "fit-theory"):
        assert f"{command} " in out and summaries[command].split()[0] in out
