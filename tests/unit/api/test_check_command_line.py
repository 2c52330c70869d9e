"""skilltrain.cli.check_command_line: a command line checked as its command checks it, nothing run. What it refuses
the command refuses with the same line; what it accepts, the command gets past its checks with."""

from __future__ import annotations

import pytest
from helpers import EXAMPLES

from skilltrain.cli import check_command_line, main
from skilltrain.errors import UserError

REFUSED = [
    ["fit", "data.n_bitz=3"],
    ["print-config", "recipe=no_such_recipe"],
    ["export-data", "recipe=domino_2task"],
    ["theory", "recipe=geometry_two_task", "steps=-1"],
    ["compare", "recipe=domino_2task", "arms.a={}", "seeds=2"],
    ["compare", "recipe=domino_2task", "arms=[baseline]", "compare.slurm.additional_parameters={qos:high}"],
    ["sweep", "recipe=domino_2task", "seeds=2"],
    ["benchmark", "suite=no_such_suite"],
    ["analyze", "run_dir=runs/a", "n_probe=many"],
    ["discover", "run_dir=runs/a", "method=magic"],
    ["fit-theory", "run_dir=runs/a", "eta=-1"],
    ["list", "recipe=x"],
    ["no-such-command"],
]


@pytest.mark.parametrize("argv", REFUSED, ids=[" ".join(a) for a in REFUSED])
def test_what_the_check_refuses_the_command_refuses_with_the_same_line(argv, capsys, clean_registries):
    with pytest.raises(UserError) as refused:
        check_command_line(argv)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {refused.value}"


def test_the_checks_read_and_write_nothing_of_a_run(tmp_path, clean_registries):
    """A run directory that does not exist is no error: the check stops before the command would read it."""
    assert check_command_line(["analyze", "run_dir=runs/a", "other=runs/b"]) == "analyze: runs/a"
    assert check_command_line(["discover", "run_dir=runs/a", "k=10", "export=data/found"]) == "discover: runs/a"
    assert check_command_line(["fit-theory", "run_dir=runs/a", "collapse=true"]) == "fit-theory: runs/a"
    assert check_command_line(["fit", "recipe=domino_2task", "out_dir=runs/x"]) == "fit: recipe domino_2task"
    assert check_command_line(["compare", "recipe=domino_2task", "arms=[baseline,gradient_rescaling]", "seeds=3"]) \
        == "compare: 2 arms × 3 seeds of domino_2task"
    assert check_command_line(["sweep", "recipe=multitask_parity", "sweep.model.widths=[[16],[32]]", "seeds=2"]) \
        == "sweep: 2 grid points × 2 seeds"
    assert check_command_line(["list", f"plugins=[{EXAMPLES / 'own_intervention.py'}]"]) == "list"
    assert check_command_line(["--help"]) == "the usage"
    assert list(tmp_path.iterdir()) == []
