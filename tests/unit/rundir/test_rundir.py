"""The run directory has one owner (skilltrain.rundir): unique directories, atomic writes, overwrite only of a run
and only once the new command is checked, metrics that survive a kill, and reading a run that executes nothing."""

from __future__ import annotations

import ast
import contextlib
import csv
import datetime
import io
import json
import types
from pathlib import Path

import pytest
from helpers import ROOT, fit_quietly, load

from skilltrain.errors import UserError

QUICK = ("recipe=compositional", "trainer.max_steps=20", "trainer.enable_progress_bar=false",
         "logger.wandb.mode=disabled")


def _fit(*args: str):
    from skilltrain.run import fit

    with contextlib.redirect_stdout(io.StringIO()):
        return fit(load(*QUICK, *args), show=False)


def test_two_fits_started_in_the_same_second_get_two_directories(monkeypatch):
    """Two fits without out_dir, started in the same second, each choose `runs/<recipe>/<stamp>`; the second
    finishes while the first is still building its model: each gets its own directory."""
    import skilltrain.run
    from skilltrain.data import datamodule

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(skilltrain.run, "dt", types.SimpleNamespace(datetime=Frozen))
    original = datamodule.SkillDataModule.__init__
    second = []

    def build(self, *args, **kwargs):
        if not second:  # the first fit has chosen its directory; the other one starts and ends now
            second.append(None)
            second[0] = _fit("seed=2")
        original(self, *args, **kwargs)

    monkeypatch.setattr(datamodule.SkillDataModule, "__init__", build)
    first = _fit("seed=1")
    assert first.run_dir != second[0].run_dir
    for result, seed in ((first, 1), (second[0], 2)):
        assert json.loads((result.run_dir / "summary.json").read_text())["seed"] == seed
        assert f"seed: {seed}\n" in (result.run_dir / "config.yaml").read_text()


def _metrics(path: Path, rows: int) -> str:
    lines = ["skill/a/loss,step,train/loss,val/loss"]
    lines += [f"0.{i},{i * 10},0.{i},{'0.5' if i % 2 else ''}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path.read_text()


def test_a_kill_during_a_resumes_metrics_rewrite_loses_no_history(tmp_path, monkeypatch):
    from skilltrain.loggers import RunCSVLogger

    before = _metrics(tmp_path / "metrics.csv", 6)

    def killed(self, rows):
        raise KeyboardInterrupt  # the process dies part-way through writing the kept rows

    monkeypatch.setattr(csv.DictWriter, "writerows", killed)
    with pytest.raises(KeyboardInterrupt):
        RunCSVLogger(tmp_path, resume_at={"step": 30, "val_step": 30}).experiment  # noqa: B018 (starts the writer)
    assert (tmp_path / "metrics.csv").read_text() == before


def test_overwrite_of_a_folder_that_is_not_a_run_refuses_and_deletes_nothing(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(UserError, match="not a skilltrain run directory"):
        _fit(f"out_dir={mine}", "overwrite=true")
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    (tmp_path / "notes.txt").write_text("mine too")  # out_dir=. (the working directory, tmp_path here)
    with pytest.raises(UserError, match="not a skilltrain run directory"):
        _fit("out_dir=.", "overwrite=true")
    assert (tmp_path / "notes.txt").read_text() == "mine too"


@pytest.mark.parametrize("mistake", ["trainer.precision=17", "logger.extra=[{class_path: no_such_module.Logger}]"],
                         ids=["trainer flag", "logger"])
def test_a_bad_overwrite_keeps_the_finished_run(tmp_path, mistake):
    """Lightning's flags and the loggers are checked only when they are built: the old run is replaced only
    after that."""
    run = tmp_path / "run"
    fit_quietly(*QUICK, out_dir=run)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(UserError):
        _fit(f"out_dir={run}", "overwrite=true", mistake)
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before


def test_a_mistake_found_while_the_trainer_sets_up_puts_the_replaced_run_back(tmp_path, monkeypatch):
    """The data module is checked inside trainer.fit (its shards against the processes): the run overwrite=true
    replaces is kept aside until the new one trains, and comes back when the new one fails to start."""
    from skilltrain.data.datamodule import SkillDataModule

    run = tmp_path / "run"
    fit_quietly(*QUICK, out_dir=run)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}

    def too_small(self, stage):
        raise UserError("data.eval_samples: the held-out set has 1 rows for 2 processes")

    monkeypatch.setattr(SkillDataModule, "setup", too_small)
    with pytest.raises(UserError):
        _fit(f"out_dir={run}", "overwrite=true")
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing left aside


def test_overwrite_replaces_a_run_made_before_the_marker_and_leaves_nothing_aside(tmp_path):
    run = tmp_path / "run"
    fit_quietly(*QUICK, out_dir=run)
    (run / ".run_id").unlink()  # a run directory as older versions wrote it
    result = _fit(f"out_dir={run}", "overwrite=true", "trainer.max_steps=10")
    assert result.status == "completed" and result.summary["steps"] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_torn_metrics_row_is_dropped_with_a_warning_and_the_resume_works(tmp_path, capsys):
    run = tmp_path / "run"
    fit_quietly(*QUICK, "trainer.log_every_n_steps=5", out_dir=run)
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(lines[:-1]) + lines[-1][:7])  # a write cut short mid-row
    capsys.readouterr()
    result = _fit("ckpt_path=last", f"out_dir={run}", "trainer.max_steps=40")
    assert result.status == "completed" and result.summary["steps"] == 40
    assert "the last row was cut short" in capsys.readouterr().err
    with open(run / "metrics.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["train/loss"]]
    assert steps == sorted(steps) and steps[-1] >= 35


EVIL = """
from pathlib import Path
Path(__file__).with_name("EXECUTED").write_text("imported")


class Evil:
    def __init__(self):
        Path(__file__).with_name("EXECUTED").write_text("instantiated")
"""


def _booby_trapped_run(tmp_path) -> Path:
    """A finished run whose config names a plugin, a callback and a logger that would each leave a file."""
    from omegaconf import OmegaConf

    run = tmp_path / "sent_to_you"
    fit_quietly(*QUICK, "trainer.log_every_n_steps=2", out_dir=run)
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL)
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.plugins = [str(evil)]
    cfg.callbacks = [{"class_path": f"{evil}:Evil", "init_args": {}}]
    cfg.logger.extra = [{"class_path": f"{evil}:Evil", "init_args": {}}]
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return run


@pytest.mark.usefixtures("clean_registries")
@pytest.mark.slow  # computes for long; trains no run
def test_analyze_and_fit_theory_of_a_run_execute_nothing_it_names(tmp_path, capsys):
    from skilltrain.cli import main

    run = _booby_trapped_run(tmp_path)
    assert main(["analyze", f"run_dir={run}", "n_probe=40"]) == 0, capsys.readouterr().err
    assert main(["fit-theory", f"run_dir={run}"]) == 0, capsys.readouterr().err
    assert not (tmp_path / "EXECUTED").exists()


@pytest.mark.usefixtures("clean_registries")
def test_a_run_that_needs_its_plugins_says_how_to_import_them(tmp_path, capsys):
    from omegaconf import OmegaConf

    from skilltrain.cli import main

    run = _booby_trapped_run(tmp_path)
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.data.name = "evil_task"  # as if the plugin registered the run's task
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    assert main(["analyze", f"run_dir={run}", "n_probe=40"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "plugins=[...] or trust_plugins=true" in err, err
    assert not (tmp_path / "EXECUTED").exists()
    assert main(["analyze", f"run_dir={tmp_path}/nothing_here"]) == 2
    assert "does not exist" in capsys.readouterr().err


RUN_FILES = ("summary.json", "metrics.csv", "config.yaml", "last.ckpt")


def _named_files(path: Path) -> list[tuple[int, str]]:
    """(line, file name) of every string literal (docstrings aside) that names a run directory's file."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, name) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            for name in RUN_FILES if name in node.value]


def test_only_rundir_names_the_run_directorys_files():
    root = ROOT
    sources = [p for folder in ("skilltrain", "callbacks") for p in sorted((root / folder).rglob("*.py"))]
    assert any(p.name == "run.py" for p in sources)
    named = [f"{p.relative_to(root)}:{line}: {name}" for p in sources if p.name != "rundir.py"
             for line, name in _named_files(p)]
    assert not named, named


def test_a_directory_is_claimed_by_one_run_only(tmp_path, monkeypatch):
    """The unit under the fit test above: an exclusive mkdir for a default directory, an exclusive marker for
    out_dir."""
    from skilltrain.rundir import RunDir

    base = tmp_path / "runs/compositional/20260102-030405"
    made = [RunDir.create(None, base).path for _ in range(3)]
    assert [p.name for p in made] == ["20260102-030405", "20260102-030405-1", "20260102-030405-2"]
    chosen = RunDir(tmp_path / "chosen")
    chosen.make()
    monkeypatch.setattr(RunDir, "check_target", staticmethod(lambda *args, **kwargs: None))  # both saw it empty
    chosen.release()  # (the lock refuses first while the maker holds it; the marker refuses even after)
    with pytest.raises(UserError, match="taken by another run"):
        RunDir(chosen.path).make()


def _finished_run(path: Path) -> dict:
    """A finished run's files (as a fit leaves them, without the cost of one); {relative path: bytes}."""
    from skilltrain.config import to_yaml

    (path / "checkpoints").mkdir(parents=True)
    config = to_yaml(load(*QUICK, f"out_dir={path}"))
    for name, text in {".run_id": "abc123", "config.yaml": config, "summary.json": "{}\n",
                       "metrics.csv": "step,train/loss\n0,1.0\n", "checkpoints/last.ckpt": "weights"}.items():
        (path / name).write_text(text)
    return _files(path)


def _files(path: Path) -> dict:
    return {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command", [("overwrite=true",), ("ckpt_path=last",)], ids=["overwrite", "resume"])
def test_a_run_that_another_process_writes_is_refused_and_kept(tmp_path, command):
    """One writer per run directory: a fit still training in it (a comparison's orphaned worker, a second shell)
    holds it; `overwrite=true` or a resume refuses with one line naming the holder, and nothing of it moves."""
    import os
    import socket

    from skilltrain.files import try_lock

    run = tmp_path / "run"
    _finished_run(run)
    held = try_lock(run)  # the other writer (flock: another open file, refused as another process would be)
    try:
        before = _files(run)
        with pytest.raises(UserError, match="in use by another run") as refused:
            _fit(f"out_dir={run}", *command)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in str(refused.value)
        assert "\n" not in str(refused.value)
        assert _files(run) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing moved aside
    finally:
        held.release()


def test_a_fit_holds_its_run_until_it_ends_however_it_ends(tmp_path):
    """The lock lasts the fit: held while it trains, free once it completed or failed (and, like every OS lock,
    free when its process is killed)."""
    import lightning as L

    from skilltrain.files import is_locked

    seen = []

    class Look(L.Callback):
        def __init__(self, fail: bool = False):
            self.fail = fail

        def on_train_batch_end(self, trainer, *args):
            seen.append(is_locked(trainer.default_root_dir))
            if self.fail:
                raise RuntimeError("a bug in a callback")

    from skilltrain.run import fit

    run = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        fit(load(*QUICK, f"out_dir={run}", "trainer.max_steps=3"), callbacks=[Look()], show=False)
    assert seen and all(seen) and not is_locked(run)
    assert not (run / ".lock.json").exists()  # no stale holder beside a free lock
    seen.clear()
    with pytest.raises(RuntimeError), contextlib.redirect_stdout(io.StringIO()):
        fit(load(*QUICK, "out_dir=" + str(tmp_path / "other"), "trainer.max_steps=3"), callbacks=[Look(fail=True)],
            show=False)
    assert seen == [True] and not is_locked(tmp_path / "other")
