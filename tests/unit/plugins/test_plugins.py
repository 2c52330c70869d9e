"""Users' own entries through plugins: a .py file outside the repository, a module. What a plugin registers gets what a
built-in gets (in other processes and installed packages: tests/e2e/test_plugins.py)."""

from __future__ import annotations

import pytest
from helpers import fit_quietly
from helpers.fixtures import SMALL

from skilltrain.cli import main
from skilltrain.errors import UserError


def test_a_plugin_file_brings_an_intervention_and_a_model(plugin, tmp_path, clean_registries):
    import torch

    summary = fit_quietly(*SMALL, f"plugins=[{plugin}]", "interventions.focus.strength=5", "model.name=tiny",
                          "model.hidden=12", out_dir=tmp_path / "run")
    assert summary["status"] == "completed" and summary["interventions"] == ["focus"]
    header = (tmp_path / "run/metrics.csv").read_text().splitlines()[0]
    assert "intervention/focus/weight/x3x4" in header
    rows = [r.split(",") for r in (tmp_path / "run/metrics.csv").read_text().splitlines()]
    weight = [float(r[rows[0].index("intervention/focus/weight/x3x4")]) for r in rows[1:] if r[rows[0].index("train/loss")]]
    assert weight and set(weight) == {5.0}
    state = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert state["model.inner.weight"].shape == (12, 32)  # the plugin's model, with its own key
    assert f"- {plugin}" in (tmp_path / "run/config.yaml").read_text()  # recorded, for a resume


@pytest.mark.parametrize("args, message", [
    (["interventions.focus.strenght=3"],
     "interventions.focus.strenght: unknown key (did you mean interventions.focus.strength?)"),
    (["interventions.focus.strength=-1"], "interventions.focus.strength: must be > 0, got -1.0"),
    (["interventions.focus.strength=lots"], "interventions.focus.strength: expected a number, got 'lots'"),
    (["interventions.focuss={}"], "unknown intervention 'focuss' (did you mean 'focus'?"),
    (["model.name=tiny", "model.hiden=3"], "model.hiden: unknown key (did you mean model.hidden?)"),
])
def test_a_plugin_entry_gets_the_same_one_line_errors_as_a_builtin(args, message, plugin, tmp_path, capsys,
                                                                      clean_registries):
    assert main(["fit", *SMALL, f"plugins=[{plugin}]", *args, f"out_dir={tmp_path}/run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "run").exists()


def test_list_and_print_config_show_plugin_entries(plugin, capsys, clean_registries):
    assert main(["list", f"plugins=[{plugin}]"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # a long plugin path wraps onto the description's next line
    assert "focus" in out and "weights the last skill by" in out and f"from plugin {plugin}" in out, out
    assert "tiny" in out and "one hidden layer" in out
    assert main(["print-config", *SMALL, f"plugins=[{plugin}]", "interventions.focus={}"]) == 0
    assert "focus:\n    strength: 2.0" in capsys.readouterr().out


@pytest.mark.parametrize("source, message", [
    (None, "plugins: no plugin file"),
    ("import not_a_module_anywhere\n", "plugins: cannot import '{p}' (ModuleNotFoundError: No module named "
                                       "'not_a_module_anywhere' at bad.py:1)"),
    ("x = 1 +\n", "plugins: cannot import '{p}' (SyntaxError"),
    ("import skilltrain\n\n@skilltrain.register_intervention('skill_reweighting', 'mine', None)\nclass Mine:\n    pass\n",
     "plugins: {p}: intervention 'skill_reweighting' is already registered (by skilltrain)"),
])
def test_a_bad_plugin_is_one_line_and_nothing_is_written(source, message, tmp_path, capsys, clean_registries):
    path = tmp_path / "bad.py"
    if source is not None:
        path.write_text(source)
    assert main(["fit", *SMALL, f"plugins=[{path}]", f"out_dir={tmp_path}/run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(p=path) in err, err
    assert not (tmp_path / "run").exists()


def test_a_registration_made_in_this_process_only_is_refused_by_compare(tmp_path, clean_registries):
    """compare's runs are new processes: an intervention registered by the user's own script would be unknown to
    each of them, and every run of its arm would fail. compare says so before running anything."""
    import skilltrain
    from skilltrain.comparison import plan

    @skilltrain.register_intervention("in_my_script", "registered by a script", None)
    class InMyScript(skilltrain.Intervention):
        touches = frozenset({"loss"})

    fit_quietly(*SMALL, "interventions.in_my_script={}", out_dir=tmp_path / "here")  # in this process it works
    with pytest.raises(UserError, match="arm in_my_script: interventions: intervention 'in_my_script' is registered "
                                        "by this process only"):
        plan([*SMALL, "seeds=2", "arms=[baseline,in_my_script]", f"out_dir={tmp_path}/c"])
