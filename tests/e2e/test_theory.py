"""skilltrain.theory end to end: the Resource model fitted back to its own runs, theory arms in compare, and
`analysis.theory` fitted to each run of a real comparison."""

from __future__ import annotations

import json

import pytest


def theory_cfg(*args: str):
    from skilltrain.theory.config import load_theory_config

    return load_theory_config(list(args))


def test_fitting_the_resource_model_to_its_own_run_recovers_its_parameters(tmp_path):
    """resource_chain: η = 1e-3, N0 = 1e-3 with p = [0.3, 1, 3]; the fit normalises p (Σ = 4.3), so N0 / 4.3."""
    from skilltrain.theory.fit import fit_resource
    from skilltrain.theory.run import run_theory

    run_dir, _ = run_theory(theory_cfg("recipe=resource_chain", f"out_dir={tmp_path / 'r'}"))
    result = fit_resource(run_dir, collapse=True)
    assert result["eta"]["value"] == pytest.approx(1e-3, rel=0.05)
    assert result["n0"]["value"] == pytest.approx(1e-3 / 4.3, rel=0.2)
    assert result["eta"]["interval"][0] <= 1e-3 <= result["eta"]["interval"][1]
    assert min(result["r2"].values()) > 0.99
    assert result["fixed"]["prerequisites"] == {"T2": {"op": "and", "of": ["T1"]}, "T3": {"op": "and", "of": ["T2"]}}
    for skill, steps in result["learn_steps"].items():
        assert abs(steps["predicted_u_0.1"] - steps["measured_u_0.1"]) <= 20, skill
    assert (run_dir / "theory_fit.png").is_file() and (run_dir / "theory_collapse.png").is_file()


@pytest.mark.slow
def test_theory_arms_in_compare_give_the_papers_two_task_ratios(tmp_path):
    """SGD learns the rare task p1/p2 = 9× later than the frequent one; SignGD about 2× (the Domino effect)."""
    from skilltrain.comparison import run_comparison

    result = run_comparison(["recipe=geometry_two_task", "arms=[baseline,sgd]", "seeds=2", f"out_dir={tmp_path / 'c'}"],
                            show=False)
    assert result.finished and not result.error
    steps = result.statistics["skills"]
    sgd = steps["rare"]["sgd"]["median"] / steps["frequent"]["sgd"]["median"]
    signgd = steps["rare"]["baseline"]["median"] / steps["frequent"]["baseline"]["median"]
    assert sgd == pytest.approx(9, rel=0.1) and 1.5 < signgd < 2.2
    assert (tmp_path / "c" / "curves.png").is_file()
    assert main_exit(["compare", "recipe=geometry_two_task", "arms=[baseline,gradient_rescaling]"]) == 2


def main_exit(argv):
    from skilltrain.cli import main

    return main(argv)


@pytest.mark.slow
def test_analysis_theory_fits_a_real_run_and_compare_reports_it_per_arm(tmp_path):
    from skilltrain.comparison import run_comparison

    result = run_comparison(["recipe=domino_2task", "arms=[baseline]", "seeds=2", "analysis.theory=resource",
                             "compare.stop_early=false", "trainer.max_steps=800", f"out_dir={tmp_path / 'c'}"], show=False)
    fit = json.loads((tmp_path / "c" / "baseline" / "seed1" / "theory_fit.json").read_text())
    assert set(fit["r2"]) == {"x1x2", "x3x4"} and min(fit["r2"].values()) > 0.5
    assert fit["fixed"]["p"] == pytest.approx({"x1x2": 1 / 1.1, "x3x4": 0.1 / 1.1})
    per_arm = result.statistics["theory_fit"]["baseline"]
    assert per_arm["n"] == 2 and per_arm["eta"]["q1"] <= per_arm["eta"]["median"] <= per_arm["eta"]["q3"]
    assert "Resource model fitted to each run" in (tmp_path / "c" / "comparison.md").read_text()


def test_fit_theory_leaves_out_cells_a_run_did_not_measure(tmp_path):
    """A skill absent from a logged batch is NaN in metrics.csv: the fit leaves that cell out, nothing else."""
    from skilltrain.theory.fit import fit_resource
    from skilltrain.theory.run import run_theory

    run_dir, _ = run_theory(theory_cfg("recipe=resource_chain", f"out_dir={tmp_path / 'r'}"))
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    column = lines[0].split(",").index("skill/T2/loss")
    cells = lines[40].split(",")
    cells[column] = "nan"
    lines[40] = ",".join(cells)
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    result = fit_resource(run_dir)
    assert result["eta"]["value"] == pytest.approx(1e-3, rel=0.05) and min(result["r2"].values()) > 0.99


@pytest.mark.parametrize("collapse", [False, True])
def test_fit_theory_names_the_plots_it_drew(collapse, tmp_path, capsys):
    from skilltrain.cli import main
    from skilltrain.theory.run import run_theory

    run_dir, _ = run_theory(theory_cfg("recipe=resource_chain", f"out_dir={tmp_path / 'r'}"))
    assert main(["fit-theory", f"run_dir={run_dir}", f"collapse={str(collapse).lower()}"]) == 0
    out = capsys.readouterr().out
    if collapse:
        assert f"plots: {run_dir / 'theory_fit.png'}, {run_dir / 'theory_collapse.png'}" in out
        assert (run_dir / "theory_collapse.png").is_file()
    else:
        assert "(collapse=true adds theory_collapse.png)" in out and not (run_dir / "theory_collapse.png").exists()
