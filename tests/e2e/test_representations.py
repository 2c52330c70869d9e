"""skilltrain.analysis.representations on trained runs: analyze on a run and on a comparison, the learn-step
checkpoints, and which runs may be compared."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers import fit_quietly
from omegaconf import OmegaConf

from skilltrain.analysis.representations import (
    REPORT_FILE,
    analyze_run,
    cka_matrix,
)
from skilltrain.errors import UserError

# ---- a trained run ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_analyze_run_writes_cka_probes_and_effective_dimension_of_a_trained_run(tmp_path):
    args = ("recipe=domino_2task", "trainer.max_steps=40", "data.n_samples=1000")
    a, b = tmp_path / "a", tmp_path / "b"
    fit_quietly(*args, "seed=0", out_dir=a)
    fit_quietly(*args, "seed=1", out_dir=b)

    result = analyze_run(a, other=b, n_probe=400)
    assert set(result) == {"cka", "probes", "effective_dim", "checkpoint"}
    assert json.loads((a / REPORT_FILE).read_text()) == result
    assert (a / "cka.png").stat().st_size > 0 and (a / "probes.png").stat().st_size > 0
    layers = ["layers.0", "layers.1", "layers.2"]  # the MLP [32, 50, 2]: Linear, ReLU, Linear
    cka = result["cka"]
    assert cka["layers"] == cka["other_layers"] == layers and cka["n_samples"] == 400
    kinds = {"layers.0": "Linear", "layers.1": "ReLU", "layers.2": "Linear"}  # what each layer is, beside its path
    assert cka["layer_kinds"] == cka["other_layer_kinds"] == result["probes"]["layer_kinds"] == kinds
    assert len(cka["matrix"]) == 3 and all(len(row) == 3 for row in cka["matrix"])
    assert all(0 <= v <= 1 for row in cka["matrix"] for v in row)
    assert any(v < 0.999 for row in cka["matrix"] for v in row)  # another seed: not the same representations
    probes = result["probes"]
    assert probes["skills"] == ["x1x2", "x3x4"] and probes["metric"] == "accuracy"
    assert all(0 <= probes["held_out"][layer][s] <= 1 for layer in layers for s in probes["skills"])
    assert set(result["effective_dim"]["overall"]) == set(layers)
    assert all(1 <= v <= 50 for v in result["effective_dim"]["overall"].values())

    alone = analyze_run(a, n_probe=400)  # against itself
    matrix = torch.tensor(alone["cka"]["matrix"], dtype=torch.float64)
    assert alone["cka"]["other"] == str(a) and torch.allclose(matrix.diagonal(), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(matrix, matrix.T) and matrix[0, 0] != matrix[0, 2]
    assert alone["probes"] == probes  # the probe set does not depend on the other run

    renamed = tmp_path / "renamed"  # the same weights, but its skills are called differently: another task
    shutil.copytree(b, renamed)
    config = OmegaConf.load(renamed / "config.yaml")
    config.data.skill_names = ["p", "q"]
    OmegaConf.save(config, renamed / "config.yaml")
    with pytest.raises(UserError, match="same task") as error:
        analyze_run(a, other=renamed, n_probe=400)
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="not a skilltrain training run"):
        analyze_run(a, other=tmp_path)


@pytest.mark.slow
def test_a_comparison_reports_representations_per_arm_and_against_the_baseline(tmp_path):
    from skilltrain.comparison import run_comparison

    result = run_comparison(["recipe=domino_2task", "arms=[baseline,modular_routing]", "seeds=2", "trainer.max_steps=60",
                             "analysis.representations=true", "checkpoint.at_learn_steps=true", "compare.stop_early=false",
                             f"out_dir={tmp_path / 'c'}"], show=False)
    rep = result.statistics["representations"]
    assert rep["layers"]["baseline"] == ["layers.0", "layers.1", "layers.2"]
    assert all(0 <= v <= 1 + 1e-9 for v in rep["cross_seed_cka"]["baseline"].values())
    versus = rep["vs_baseline"]["modular_routing"]
    assert versus["seeds"] == [1, 2] and len(versus["matrix"]) == 3 and len(versus["matrix"][0]) == len(versus["layers"])
    assert [pair[0] for pair in versus["same_layer"]] == ["layers.0", "layers.1", "layers.2"]  # matched by position
    assert set(rep["probes"]["baseline"]["held_out"]["layers.1"]) == {"x1x2", "x3x4"}
    assert "## Representations" in (tmp_path / "c" / "comparison.md").read_text()
    assert (tmp_path / "c" / "representations.png").is_file()


def test_learn_step_checkpoints_are_kept_and_analysed(tmp_path):
    from skilltrain.analysis.representations import analyze_run
    from skilltrain.errors import UserError

    summary = fit_quietly("recipe=domino_2task", "trainer.max_steps=450", "checkpoint.at_learn_steps=true", "seed=0",
                          out_dir=tmp_path / "r")
    learned = [s for s, v in summary["skills"].items() if v["learned_step"] is not None]
    kept = {p.name for p in (tmp_path / "r/checkpoints").glob("learned-*.ckpt")}
    assert learned and kept == {f"learned-{s}.ckpt" for s in learned}
    first = learned[0]
    saved = torch.load(tmp_path / f"r/checkpoints/learned-{first}.ckpt", weights_only=True)
    step = summary["skills"][first]["learned_step"]
    assert step <= saved["global_step"] <= step + 10  # kept at the logging boundary at or after the learn step
    result = analyze_run(tmp_path / "r", checkpoint=f"learned-{first}")
    assert result["checkpoint"] == f"learned-{first}" and (tmp_path / f"r/representations-learned-{first}.json").is_file()
    with pytest.raises(UserError, match="ckpt: unknown checkpoint"):
        analyze_run(tmp_path / "r", checkpoint="learned-nothing")


def test_a_resumed_run_keeps_the_checkpoints_of_skills_learned_after_the_resume(tmp_path):
    import contextlib
    import io

    from helpers import load

    from skilltrain.run import fit

    run = tmp_path / "r"
    fit_quietly("recipe=domino_2task", "trainer.max_steps=40", "checkpoint.at_learn_steps=true", "seed=0", out_dir=run)
    assert not list((run / "checkpoints").glob("learned-*.ckpt"))  # nothing learned in 40 steps
    with contextlib.redirect_stdout(io.StringIO()):
        fit(load("ckpt_path=last", f"out_dir={run}", "trainer.max_steps=450", "trainer.enable_progress_bar=false"))
    summary = json.loads((run / "summary.json").read_text())
    learned = {s for s, v in summary["skills"].items() if v["learned_step"] is not None}
    assert learned and {p.name for p in (run / "checkpoints").glob("learned-*.ckpt")} == {f"learned-{s}.ckpt" for s in learned}


TINY_PARITY = ("recipe=multitask_parity", "trainer.max_steps=5", "data.batch_size=64", "data.eval_samples=50",
               "model.widths=[16]", "trainer.val_check_interval=5")
TINY_RHM = ("recipe=rhm_cnn", "trainer.max_steps=5", "data.n_samples=64", "data.eval_samples=16", "model.width=16")


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A comparison's layout of tiny multitask_parity runs (baseline and a higher-lr arm, seeds 0 and 1 with one data
    seed, and a baseline seed 2 whose data seed is its run seed: another task), each analysed; two RHM runs."""
    root = tmp_path_factory.mktemp("tiny")
    for arm, extra in (("baseline", ()), ("arm", ("optim.lr=0.01",))):
        for s in (0, 1):
            fit_quietly(*TINY_PARITY, *extra, f"seed={s}", "data.seed=5", out_dir=root / f"c/{arm}/seed{s}")
            analyze_run(root / f"c/{arm}/seed{s}", n_probe=60)
    fit_quietly(*TINY_PARITY, "seed=2", out_dir=root / "c/baseline/seed2")
    analyze_run(root / "c/baseline/seed2", n_probe=60)
    for s in (0, 1):
        fit_quietly(*TINY_RHM, f"seed={s}", out_dir=root / f"rhm{s}")
    return root


@pytest.mark.slow
def test_analyze_refuses_runs_whose_task_is_drawn_from_another_data_seed(tiny_runs):
    runs = tiny_runs / "c/baseline"
    for run, other, drawn in ((runs / "seed0", runs / "seed2", "subsets"), (tiny_runs / "rhm0", tiny_runs / "rhm1", "rules")):
        with pytest.raises(UserError, match=f"different tasks .*data seed .* draws its {drawn}.*same task") as error:
            analyze_run(run, other=other, n_probe=60)
        assert "\n" not in str(error.value) and "data.seed" in str(error.value)
    assert analyze_run(runs / "seed0", other=runs / "seed1", n_probe=60)["cka"]["other"] == str(runs / "seed1")


@pytest.mark.slow
def test_a_comparison_pairs_only_runs_of_one_task_and_says_what_their_seeds_differ_in(tiny_runs):
    from skilltrain.analysis.representations import compare_representations, comparison_markdown

    rep = compare_representations(tiny_runs / "c", {"baseline": [0, 1, 2], "arm": [0, 1]}, "baseline", n_probe=60)
    assert rep["cross_seed_pairs"] == {"baseline": [[0, 1]], "arm": [[0, 1]]}  # seed 2 trained other parities
    assert "initialisation and batch sampling" in rep["seeds_differ_in"]["baseline"]
    assert "data seed 5" in rep["seeds_differ_in"]["baseline"]
    assert any("baseline: seed 2" in n and "subsets" in n for n in rep["notes"])
    assert "initialisation and batch sampling" in comparison_markdown(rep)


@pytest.mark.slow
def test_a_comparisons_medians_over_two_seeds_are_the_mean_of_the_two_not_the_lower(tiny_runs):
    from skilltrain.analysis.representations import (
        capture,
        compare_representations,
        load_run,
        model_inputs,
        probe_batches,
    )

    directory = tiny_runs / "c"
    rep = compare_representations(directory, {"baseline": [0, 1], "arm": [0, 1]}, "baseline", n_probe=60)
    batches = probe_batches(load_run(directory / "baseline/seed0").task, 60, 0)
    x, skill = torch.cat([b["x"] for b in batches]), torch.cat([b["skill"] for b in batches])
    acts = {}
    for arm in ("baseline", "arm"):
        for s in (0, 1):
            module = load_run(directory / f"{arm}/seed{s}")
            acts[arm, s] = capture(module.model, model_inputs(module, x, skill))
    per_seed = [cka_matrix(acts["baseline", s], acts["arm", s])[2] for s in (0, 1)]
    assert rep["vs_baseline"]["arm"]["seeds"] == [0, 1]
    assert torch.allclose(torch.tensor(rep["vs_baseline"]["arm"]["matrix"], dtype=torch.float64),
                          (per_seed[0] + per_seed[1]) / 2, atol=1e-12)
    reports = [json.loads((directory / f"arm/seed{s}" / REPORT_FILE).read_text())["probes"]["held_out"] for s in (0, 1)]
    for layer, row in rep["probes"]["arm"]["held_out"].items():
        for skill_name, value in row.items():
            assert value == pytest.approx((reports[0][layer][skill_name] + reports[1][layer][skill_name]) / 2)


@pytest.mark.slow
def test_when_skills_are_classes_the_probe_reads_the_class_across_skills(tiny_runs):
    probes = analyze_run(tiny_runs / "rhm0", n_probe=60)["probes"]
    assert probes["skills"] == ["class0", "class1", "class2", "class3"]
    # each skill's samples are one class: a probe would score 1.0 on any features
    assert all(v is None for row in probes["held_out"].values() for v in row.values())
    assert probes["notes"] and "the skill is the class" in probes["notes"][0]
    across = probes["across_skills"]
    assert across["chance"] == 0.25 and set(across["held_out"]) == set(probes["layers"])
    assert all(0 <= v <= 1 for v in across["held_out"].values())
    assert probes["n_distinct_inputs"] <= 240  # drawn with replacement; held-out inputs are kept apart from fit rows
