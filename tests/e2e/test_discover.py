"""Discovery end to end: a run records its probe set, `discover` clusters it, the clusters train a new run."""

from __future__ import annotations

import json

import torch
from helpers import fit_quietly, run_cli

TINY = ("recipe=multitask_parity", "data.n_tasks=2", "data.n_bits=8", "data.k=2", "data.batch_size=128",
        "data.eval_samples=50", "model.widths=[32]", "trainer.log_every_n_steps=10", "trainer.val_check_interval=20",
        "discover.record=true", "discover.n_samples=120", "seed=4")


def test_record_discover_export_and_train_on_the_discovered_skills(tmp_path):
    run = tmp_path / "run"
    fit_quietly(*TINY, "trainer.max_steps=40", out_dir=run)
    recording = torch.load(run / "discover_losses.pt", weights_only=True)
    probe = torch.load(run / "discover_probe.pt", weights_only=True)
    assert recording["steps"] == [0, 10, 20, 30, 40] and recording["losses"].shape == (5, 120)
    assert probe["x"].shape == (120, 10) and probe["skill_names"] == ["task0", "task1"]

    export = tmp_path / "found"
    done = run_cli("discover", f"run_dir={run}", "method=both", "k=2", f"export={export}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "against the true skills: ARI" in done.stdout and f"discovered: {run}/discovered.json" in done.stdout
    result = json.loads((run / "discovered.json").read_text(),
                        parse_constant=lambda t: (_ for _ in ()).throw(ValueError(t)))  # strict JSON only
    assert result["method"] == "both" and result["k"] == 2 and len(result["clusters"]) == 120
    assert set(result["input_baseline"]) == {"ari", "nmi"} and (run / "discovered.png").stat().st_size > 0
    assert sum(c["size"] for c in result["cluster_info"]) == 120

    summary = fit_quietly("recipe=hf_example", f"data.path={export}", "data.batch_size=32", "trainer.max_steps=4",
                          "trainer.val_check_interval=2", "trainer.log_every_n_steps=2", out_dir=tmp_path / "again")
    assert sorted(summary["skills"]) == sorted(set(result["clusters"]))
    assert summary["status"] == "completed"


def test_a_resumed_run_continues_the_same_recording(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    fit_quietly(*TINY, "trainer.max_steps=40", out_dir=whole)
    fit_quietly(*TINY, "trainer.max_steps=20", out_dir=parts)
    fit_quietly(*TINY, "trainer.max_steps=40", "ckpt_path=last", out_dir=parts)
    a, b = (torch.load(d / "discover_losses.pt", weights_only=True) for d in (whole, parts))
    assert b["steps"] == a["steps"] == [0, 10, 20, 30, 40]
    assert torch.allclose(a["losses"], b["losses"])


def test_discover_refuses_bad_runs_in_one_line(tmp_path):
    plain = tmp_path / "plain"
    fit_quietly(*(a for a in TINY if not a.startswith("discover.")), "trainer.max_steps=10", out_dir=plain)
    for args, message in ((("run_dir=" + str(plain),), "has no recording for discovery"),
                          ((f"run_dir={tmp_path}/nowhere",), "does not exist"),
                          (("run_dir=" + str(plain), "k=x"), "k: expected auto or a number")):
        done = run_cli("discover", *args, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr


def test_labels_hidden_end_to_end_mixes_over_found_skills_and_scores_the_true_ones(tmp_path):
    """Record → discover (export) → train with online mixing over the discovered clusters (data.mix_column=skill)
    while the run's skills, its logs and learn steps, are the true ones (data.skill_column=true_skill)."""
    run, export = tmp_path / "run", tmp_path / "found"
    fit_quietly(*TINY, "trainer.max_steps=40", out_dir=run)
    done = run_cli("discover", f"run_dir={run}", "method=loss_curves", "k=3", f"export={export}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads((run / "discovered.json").read_text())["clusters"]

    summary = fit_quietly("recipe=hf_example", f"data.path={export}", "data.skill_column=true_skill",
                          "data.mix_column=skill", "interventions.skill_reweighting.mode=online", "data.batch_size=32",
                          "trainer.max_steps=30", "trainer.val_check_interval=10", "trainer.log_every_n_steps=10",
                          out_dir=tmp_path / "mixed")
    assert sorted(summary["skills"]) == ["task0", "task1"]  # learn steps of the true tasks
    header = (tmp_path / "mixed" / "metrics.csv").read_text().splitlines()[0].split(",")
    rates = sorted(h.rsplit("/", 1)[1] for h in header if h.startswith("intervention/skill_reweighting/rate/"))
    assert rates == sorted(set(found)) == ["c0", "c1", "c2"]  # the mixture: over the discovered clusters
    assert {"skill/task0/val_acc", "skill/task1/val_acc"} <= set(header)
