"""End-to-end fits: what a run learns, what it leaves behind, determinism, never overwriting a run."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch
from helpers import fit_quietly, run_cli

from skilltrain.config import from_container

SUMMARY_KEYS = {"recipe", "seed", "interventions", "steps", "wall_seconds", "samples_per_second", "skills",
                "all_learned_step", "learn_order", "status"}


def test_compositional_learns_parts_then_composite(tmp_path):
    run = tmp_path / "run"
    summary = fit_quietly("recipe=compositional", "seed=1", out_dir=run)

    assert SUMMARY_KEYS <= summary.keys()
    assert summary["status"] == "completed" and summary["steps"] == 1000 and summary["recipe"] == "compositional"
    assert list(summary["skills"]) == ["x3x4", "x1x2", "x1x2x3x4"]  # the task's declared order
    for s in summary["skills"].values():
        assert s.keys() == {"frequency", "learned_step", "learned_samples", "learned_window", "learned_resolution", "final_loss",
                            "final_metric"}
        assert s["learned_samples"] == 8000 and s["learned_window"] == [s["learned_step"]] * 2  # full batch: exact
        assert s["final_metric"] >= 0.99 and s["final_loss"] < 0.01
    t = {k: v["learned_step"] for k, v in summary["skills"].items()}
    assert t["x1x2x3x4"] >= 1.3 * max(t["x3x4"], t["x1x2"])  # the composite comes after its parts
    assert summary["learn_order"][-1] == "x1x2x3x4" and summary["all_learned_step"] == t["x1x2x3x4"]
    assert summary["wall_seconds"] > 0 and summary["samples_per_second"] > 0

    for name in ("config.yaml", "metrics.csv", "curves.png", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    acc = {int(r["step"]): float(r["skill/x1x2x3x4/acc"]) for r in rows if r.get("skill/x1x2x3x4/acc")}
    assert all(a < 0.9 for step, a in acc.items() if step < t["x1x2x3x4"])  # learned_step is the first crossing
    assert any(a >= 0.9 for step, a in acc.items() if step >= t["x1x2x3x4"])
    assert any(r.get("skill/x1x2/val_acc") for r in rows)  # held-out curves are logged too

    cfg = from_container(__import__("omegaconf").OmegaConf.load(run / "config.yaml"))
    assert cfg.seed == 1 and cfg.data.name == "compositional_parity"
    ckpt = torch.load(run / "checkpoints/last.ckpt", weights_only=True)  # plain containers only
    assert ckpt["global_step"] == 1000 and ckpt["hyper_parameters"]["config"]["seed"] == 1


def test_same_seed_gives_an_identical_run(tmp_path):
    args = ("recipe=domino_2task", "seed=3", "trainer.max_steps=60", "trainer.val_check_interval=20")
    fit_quietly(*args, out_dir=tmp_path / "a")
    fit_quietly(*args, out_dir=tmp_path / "b")
    fit_quietly(*args[:1], "seed=4", *args[2:], out_dir=tmp_path / "c")
    weights = [torch.load(tmp_path / r / "checkpoints/last.ckpt", weights_only=True)["state_dict"] for r in "abc"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    assert (tmp_path / "a/metrics.csv").read_text() == (tmp_path / "b/metrics.csv").read_text()


def test_an_existing_run_directory_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    fit_quietly("recipe=compositional", "trainer.max_steps=20", out_dir=run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    result = run_cli("fit", "recipe=compositional", "trainer.max_steps=20", f"out_dir={run}")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "already exists and is not empty; choose another out_dir, resume it with ckpt_path=last, " in result.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_cli_fit_prints_the_table_and_run_dir_last(tmp_path):
    result = run_cli("fit", "recipe=domino_2task", "seed=2", "trainer.max_steps=700", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("run_dir: runs/domino_2task/")
    run = tmp_path / lines[-1].split(": ", 1)[1]
    summary = json.loads((run / "summary.json").read_text())
    assert "learned step" in result.stdout and "x3x4" in result.stdout
    t1, t2 = summary["skills"]["x1x2"]["learned_step"], summary["skills"]["x3x4"]["learned_step"]
    assert t1 is not None and t2 is not None and 1.2 < t2 / t1 < 5  # Domino: far below 1/p2 = 10
    assert summary["skills"]["x3x4"]["frequency"] == 0.1


def test_multitask_parity_learns_frequent_tasks_first(tmp_path):
    summary = fit_quietly("recipe=multitask_parity", "data.n_tasks=4", "trainer.max_steps=1500", "seed=1",
                          out_dir=tmp_path / "run")
    steps = [summary["skills"][f"task{i}"]["learned_step"] for i in range(4)]
    assert all(s is not None for s in steps[:3]), steps
    assert steps[0] < steps[2]  # the most frequent task before the third
    assert summary["skills"]["task0"]["frequency"] > summary["skills"]["task3"]["frequency"]


@pytest.mark.slow
def test_unreachable_wandb_falls_back_to_offline_and_training_goes_on(tmp_path):
    result = run_cli("fit", "presets=[debug]", "logger.wandb.mode=online", "logger.wandb.init_timeout=5",
                     f"out_dir={tmp_path}/run", env={"WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": "a" * 40,
                                                     "WANDB_MODE": None})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning: W&B online did not start" in result.stderr and "logging offline instead" in result.stderr
    assert "Traceback" not in result.stderr
    assert list((tmp_path / "run/wandb").glob("offline-run-*")) and (tmp_path / "run/metrics.csv").is_file()
    assert json.loads((tmp_path / "run/summary.json").read_text())["status"] == "completed"


def test_a_run_can_end_once_every_skill_is_learned(tmp_path):
    summary = fit_quietly("recipe=compositional", "stop.when_all_learned=true", "stop.patience=20", out_dir=tmp_path / "run")
    assert summary["status"] == "completed" and summary["all_learned_step"] == 415  # seed 0, as without stopping
    assert summary["steps"] == 435 and summary["max_steps"] == 1000  # 20 steps of patience after the last skill
    assert summary["message"].startswith("every skill learned by step 415; ended at step 435")
    rows = (tmp_path / "run/metrics.csv").read_text().splitlines()
    assert max(int(r.split(",")[rows[0].split(",").index("step")]) for r in rows[1:]) < 440


def test_threads_are_chosen_by_the_work_and_restored_after_a_fit(tmp_path, monkeypatch):
    from skilltrain.threads import SMALL_WORK, choose_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("SKILLTRAIN_MAX_THREADS", raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 0.0, 0.0))
    assert choose_threads("auto", 1_800, 8_000) == 1  # the main job: 1.4e7 < SMALL_WORK
    assert 100_000 * 512 * 13 > SMALL_WORK and choose_threads("auto", 100_000, 512 * 13) == 5  # 8 cores, 2.6 busy
    monkeypatch.setattr(os, "getloadavg", lambda: (7.9, 0.0, 0.0))
    assert choose_threads("auto", 100_000, 512 * 13) == 1  # all busy: never 0
    monkeypatch.setenv("SKILLTRAIN_MAX_THREADS", "4")  # a comparison worker's share: exactly that, whatever the load
    assert choose_threads("auto", 100_000, 512 * 13) == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert choose_threads("auto", 100_000, 512 * 13) == 4
    assert choose_threads(3, 10, 10) == 3
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fit_quietly("recipe=compositional", "trainer.max_steps=5", "trainer.threads=1", out_dir=tmp_path / "run")
        assert torch.get_num_threads() == 2  # a fit in a user's process leaves the process as it found it
    finally:
        torch.set_num_threads(before)


def test_a_run_without_plots_writes_everything_but_its_figure(tmp_path):
    fit_quietly("recipe=domino_2task", "trainer.max_steps=20", "analysis.plots=none", out_dir=tmp_path / "bare")
    fit_quietly("recipe=domino_2task", "trainer.max_steps=20", out_dir=tmp_path / "default")
    bare = {p.name for p in (tmp_path / "bare").iterdir()}
    assert "curves.png" not in bare and {"summary.json", "metrics.csv", "config.yaml", "checkpoints"} <= bare
    assert (tmp_path / "default" / "curves.png").stat().st_size > 10_000  # a single fit still draws its curves
