"""The test kit for plugin authors (skilltrain.testing), its fast checks: a plugin's settings compose and build it
(`config`), its method card is complete (`card`); `python -m skilltrain check`'s bad input. The checks that train:
tests/e2e/test_testing_kit.py."""

from __future__ import annotations

import pytest
from helpers.fixtures import kit_plugin

from skilltrain.cli import main
from skilltrain.testing import CheckFailed, check_intervention


def write(tmp_path, bug=None):
    path = tmp_path / f"smooth_{bug or 'good'}.py"
    path.write_text(kit_plugin(bug))
    return path


def test_a_good_plugin_passes_the_config_and_card_checks(tmp_path, clean_registries):
    results = check_intervention("smooth", {"decay": 0.5}, plugins=[write(tmp_path)], checks=["config", "card"])
    assert [(r.check, r.problem, r.skipped) for r in results] == [("config", None, None), ("card", None, None)]


def test_an_incomplete_card_fails_the_card_check_in_one_line(tmp_path, clean_registries):
    with pytest.raises(CheckFailed) as failed:
        check_intervention("smooth", plugins=[write(tmp_path, "card")], checks=["config", "card"])
    assert str(failed.value) == ("intervention smooth · card: Smooth's docstring (its method card) lacks the paragraph "
                                 "'Formula.' (each starts a paragraph)")


def test_a_bad_setting_fails_the_config_check_and_skips_the_rest(tmp_path, clean_registries):
    results = check_intervention("smooth", {"decay": "fast"}, plugins=[write(tmp_path)], strict=False,
                                 checks=["config", "card", "trains"])
    assert results[0].check == "config" and "interventions.smooth.decay" in results[0].problem
    assert "\n" not in results[0].problem
    assert [(r.check, r.skipped) for r in results[1:]] == [("card", "config failed"), ("trains", "config failed")]


def test_an_unknown_check_is_one_line_with_did_you_mean(tmp_path, clean_registries):
    from skilltrain.errors import UserError

    with pytest.raises(UserError, match="resumes"):
        check_intervention("smooth", plugins=[write(tmp_path)], checks=["resume"])


@pytest.mark.parametrize("args, message", [
    ([], "plugins: is required"),
    (["plugins=[{plugin}]", "ddp=maybe"], "ddp: expected true or false, got 'maybe'"),
    (["plugins=[{plugin}]", "checks=[card,resume]"], "did you mean 'resumes'"),
    (["plugins=[{empty}]"], "register no intervention, model, task or optimizer"),
    (["plugins=[{plugin}]", "checks=[]"], "checks: leaves no check to run"),
    (["plugins=[{plugin}]", "ddp=false", "checks=[ddp]"], "checks: leaves no check to run (ddp=false takes away ddp"),
    (["plugins=[{plugin}]", "out_dir={tmp}"], "is not empty: the checks write their runs there"),
])
def test_check_command_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys, clean_registries):
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    plugin = write(tmp_path)
    code = main(["check", *(a.format(plugin=plugin, empty=empty, tmp=tmp_path) for a in args)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_a_typo_in_a_setting_fails_the_config_check_exit_1(tmp_path, capsys, clean_registries):
    code = main(["check", f"plugins=[{write(tmp_path)}]", "interventions.smooth.decy=0.5", "checks=[config]"])
    out, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: intervention smooth · config: interventions.smooth.decy") and "did you mean" in err
    assert out.splitlines()[0] == "intervention smooth" and out.splitlines()[1].startswith("  config   FAILED: ")


def test_an_entry_registered_in_this_process_only_cannot_take_the_ddp_check(clean_registries):
    import skilltrain

    @skilltrain.register_intervention("here_only", "registered by the test itself")
    class HereOnly(skilltrain.LossWeighting):
        def loss_weights(self, module, losses, mask, stats):
            return None

    (result,) = check_intervention("here_only", checks=["ddp"], strict=False)
    assert result.problem == ("intervention here_only is registered by this process, not by a plugin: the DDP "
                              "processes cannot import it (name its file or module in plugins=[...])")


def test_the_kit_is_reached_from_the_package_as_the_docs_write_it():
    """In a fresh process (this one imported skilltrain.testing already), without importing torch."""
    import subprocess
    import sys

    code = "import sys, skilltrain; print(skilltrain.testing.check_intervention.__name__, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["check_intervention", "False"], done.stderr[-2000:]
