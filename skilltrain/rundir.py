"""The run directory: the one owner of its format, for `fit` and `theory` runs alike.

    <run_dir>/.run_id         the run's id (its W&B run id); its presence marks the directory as a skilltrain run
    <run_dir>/config.yaml     the resolved config
    <run_dir>/metrics.csv     per-skill curves (fit: Lightning's CSV rows; theory: step, train/loss, skill/<name>/…)
    <run_dir>/summary.json    machine-readable results (skilltrain.report; a theory run's in the same shape)
    <run_dir>/curves.png      per-skill curves, learn steps marked
    <run_dir>/checkpoints/    last.ckpt (+ periodic ones, learned-<skill>.ckpt with checkpoint.at_learn_steps)
    <run_dir>/wandb/          the W&B run folder, when W&B is on
    <run_dir>/discover_probe.pt   discover.record=true: the probe samples (x, y, skill) whose losses are recorded
    <run_dir>/discover_losses.pt  … their per-sample losses at every logged step ({"steps": [T], "losses": [T, n]})
    <run_dir>/discovered.json     `discover`: the skills found without labels (and discovered.png)

Every other module reaches these files through `RunDir`:

- one writer: the process that makes a run (or resumes it) holds it (`hold`, an OS lock on `<run_dir>/.lock`, who
  holds it in `.lock.json`) until its fit ends; another command on it (overwrite=true, a resume) refuses with one line
  naming the holder, before anything is moved or written; a lock left by a killed process is taken over;
- creating: `RunDir.create` makes a new, unique directory with an exclusive `mkdir` (a default directory that
  another process took in the same second gets a `-1`, `-2`, … suffix) and marks it as a run; `overwrite` replaces
  only a directory that is a skilltrain run (never a user's folder), and callers create only once the whole command
  has been built and checked (`RunDir.check_target` refuses early, before anything is built);
- writing: every file atomically (temporary file, fsync, rename; checkpoints through `publish`);
- metrics: a resume keeps the rows its checkpoint covers and replaces the file atomically, never rewriting it in
  place; a torn last row (a process killed mid-write) is dropped with a warning;
- reading: config, summary, metrics and checkpoints, for every reader (comparison, sweep, benchmark, analysis,
  theory). Reading a run executes nothing it names: its plugins are imported only when the reader asks
  (`plugins=[…]` or `trust_plugins=true`), and its callbacks and loggers are never instantiated.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from skilltrain.errors import UserError
from skilltrain.files import (
    atomic_write_bytes,
    atomic_write_text,
    fsync_path,
    is_locked,
    lock_holder,
    read_json,
    save_figure,  # noqa: F401  (its old import path: skilltrain.rundir.save_figure)
    try_lock,
    unlock,
    write_json,
)

MARKER = ".run_id"
CONFIG = "config.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CURVES = "curves.png"
CHECKPOINTS = "checkpoints"
DISCOVER_PROBE = "discover_probe.pt"
DISCOVER_LOSSES = "discover_losses.pt"
DISCOVERED = "discovered.json"
DISCOVERED_PLOT = "discovered.png"
LAST = "last"  # the checkpoint every resume starts from: checkpoints/last.ckpt


def publish(partial: Path | str, target: Path | str) -> None:
    """Move a completely written file (a checkpoint) to its final name: fsync it, rename in the same directory,
    fsync the directory. A kill at any point leaves the previous file or the new one, never half of one."""
    partial, target = Path(partial), Path(target)
    fsync_path(partial)
    os.replace(partial, target)
    fsync_path(target.parent)


def checkpoint_file(name: str) -> str:
    """The file name of the checkpoint called `name` (`last`, `learned-<skill>`)."""
    return f"{name}.ckpt"


def is_run(path: Path | str) -> bool:
    """Whether `path` is a skilltrain run directory: it carries the marker, or (a run made before the marker
    existed) it holds a saved config beside a summary or metrics."""
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    return (path / CONFIG).is_file() and ((path / SUMMARY).is_file() or (path / METRICS).is_file())


class RunDir:
    """One run directory. `RunDir(path)` reads an existing one; `RunDir.create(...)` makes a new one."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.made = False  # whether this object made the directory (create / make)
        self.replaced: Path | None = None  # where the run that overwrite=true replaces waits until this one trains
        self.untrusted_plugins: list[str] = []  # the run's plugins that reading it did not import
        self.lock = None  # this process's hold on the directory (a filelock.FileLock), while it writes the run

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ---- where things are ------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY

    @property
    def curves_path(self) -> Path:
        return self.path / CURVES

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def checkpoint(self, name: str = LAST) -> Path:
        """checkpoints/<name>.ckpt (`last`, `learned-<skill>`, …)."""
        return self.checkpoints / checkpoint_file(name)

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint(LAST)

    def checkpoint_names(self) -> list[str]:
        return sorted(p.name[: -len(".ckpt")] for p in self.checkpoints.glob("*.ckpt"))

    def has_checkpoint(self) -> bool:
        return self.last_checkpoint.is_file()

    # ---- creating --------------------------------------------------------------------------------------------
    @staticmethod
    def check_target(out_dir: Path | str, overwrite: bool, resume_hint: bool = True) -> None:
        """Refuse, before anything is built, a directory that a new run may not use: a file, a non-empty folder
        without overwrite=true, or (with overwrite=true) a non-empty folder that is not a skilltrain run."""
        path = Path(out_dir)
        if not path.exists():
            return
        if not path.is_dir():
            raise UserError(f"out_dir: '{path}' is a file, not a directory")
        RunDir.check_free(path)
        if not any(path.iterdir()):
            return
        if not overwrite:
            resume = "resume it with ckpt_path=last, " if resume_hint else ""
            raise UserError(f"out_dir: '{path}' already exists and is not empty; choose another out_dir, {resume}"
                            "or replace it with overwrite=true (a finished run is never overwritten otherwise)")
        if not is_run(path) or path.resolve() == Path.cwd().resolve():
            raise UserError(f"out_dir: '{path}' is not a skilltrain run directory; overwrite=true replaces only a "
                            "run (nothing was deleted): choose another out_dir")

    @staticmethod
    def check_free(path: Path | str) -> None:
        """Refuse a run directory that another process is writing (a fit training in it)."""
        if is_locked(path):
            raise _in_use(path)

    def hold(self) -> None:
        """Hold this directory for this process (one writer at a time), until `release` or the process ends;
        refused with one line naming the holder when another process holds it."""
        if self.lock is None:
            self.lock = try_lock(self.path)
            if self.lock is None:
                raise _in_use(self.path)

    def release(self) -> None:
        """Let another process write this run (the fit that held it has ended)."""
        if self.lock is not None:
            unlock(self.lock)
            self.lock = None

    @classmethod
    def create(cls, out_dir: Path | str | None, default: Path | str, overwrite: bool = False) -> RunDir:
        """A new run directory, marked as a run: `out_dir` (replacing the run there with overwrite=true), or else
        `default` (`runs/<recipe>/<stamp>`), made unique with a suffix when another process has taken it."""
        if out_dir:
            run = cls(out_dir)
            run.make(overwrite)
            return run
        run = cls(_unique(Path(default)))
        run.hold()
        run._claim()
        return run

    def make(self, overwrite: bool = False) -> None:
        """Make this directory a new run (checked as `check_target` does; with overwrite=true, the run there is
        replaced)."""
        self.check_target(self.path, overwrite)
        old = None
        if overwrite and is_run(self.path):
            # The run there is held while it moves: one that another process is writing is refused, nothing moved.
            old = try_lock(self.path, say_who=False)
            if old is None:
                raise _in_use(self.path)
            # Kept aside, not deleted, until the new run has started training (`forget_replaced`): a mistake found
            # while the Trainer sets up (a data shard too small for the processes) puts it back (`remove_if_unfinished`).
            self.replaced = self.path.with_name(f".{self.path.name}.replaced-{uuid.uuid4().hex[:8]}")
            os.replace(self.path, self.replaced)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.hold()
        finally:
            if old is not None:
                old.release()
        self._claim()

    def _claim(self) -> None:
        """Write the marker (a new run id); refused when another process has claimed the directory already."""
        try:
            fd = os.open(self.path / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL)  # one claim wins
        except FileExistsError:
            raise UserError(f"out_dir: '{self.path}' has just been taken by another run; choose another out_dir") from None
        with os.fdopen(fd, "w") as f:
            f.write(uuid.uuid4().hex[:12])
            f.flush()
            os.fsync(f.fileno())
        fsync_path(self.path)
        self.made = True

    def remove_if_unfinished(self) -> None:
        """Remove a directory this process created for a command that then failed to start (nothing trained):
        the same command, corrected, can use it. One that holds a checkpoint is kept."""
        if self.made and is_run(self.path) and not self.has_checkpoint():
            shutil.rmtree(self.path, ignore_errors=True)
            if self.replaced is not None and not self.path.exists():  # the run this command was to replace comes back
                os.replace(self.replaced, self.path)
                self.replaced = None

    def forget_replaced(self) -> None:
        """Delete the run this one replaced (overwrite=true), once the new run has trained."""
        if self.replaced is not None:
            shutil.rmtree(self.replaced, ignore_errors=True)
            self.replaced = None

    @property
    def run_id(self) -> str:
        """The run's id (its W&B run id), drawn when the directory was made: a resume continues the same W&B run,
        a new run in the same place (overwrite=true) starts a new one."""
        path = self.path / MARKER
        if path.is_file():
            return path.read_text().strip()
        import hashlib

        return hashlib.blake2b(str(self.path.resolve()).encode(), digest_size=6).hexdigest()  # a run made before ids

    # ---- writing ---------------------------------------------------------------------------------------------
    def write_config(self, text: str) -> None:
        atomic_write_text(self.config_path, text)

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary_path, summary)

    def write_discover_recording(self, probe: dict, steps, losses) -> None:
        """discover.record=true: the probe samples (a dict of tensors) and their losses at the recorded steps
        ([T] steps, [T, n] losses), each file written atomically."""
        import torch

        for name, content in ((DISCOVER_PROBE, probe), (DISCOVER_LOSSES, {"steps": steps, "losses": losses})):
            buffer = io.BytesIO()
            torch.save(content, buffer)
            atomic_write_bytes(self.path / name, buffer.getvalue())

    def write_metrics(self, header: list[str], rows: list[list[Any]] | list[dict]) -> None:
        """The whole metrics file at once (rows as lists in `header`'s order, or as dicts)."""
        atomic_write_text(self.metrics_path, _csv_text(header, rows))

    def keep_metrics(self, step: int, val_step: int) -> list[str]:
        """For a resume: keep the rows the checkpoint covers (training rows before `step`, evaluation rows up to
        `val_step`), replacing the file atomically; the header. Later rows are written again by the resumed run."""
        header, rows = self.read_metrics_table()
        if not header:
            return []
        kept = [r for r in rows if (int(r["step"]) <= val_step if r.get("val/loss") else int(r["step"]) < step)]
        self.write_metrics(header, kept)
        return header

    def rewrite_metrics(self, header: list[str]) -> None:
        """The metrics file under a wider header (new columns), replaced atomically."""
        _, rows = self.read_metrics_table()
        self.write_metrics(header, rows)

    # ---- reading ---------------------------------------------------------------------------------------------
    def require(self, *what: str, key: str = "run_dir", kind: str = "a finished skilltrain run directory") -> None:
        """One line unless the run exists and has `what` (config, summary, metrics, checkpoint)."""
        if not self.path.is_dir():
            raise UserError(f"{key}: '{self.path}' does not exist" if not self.path.exists()
                            else f"{key}: '{self.path}' is not a directory")
        files = {"config": self.config_path, "summary": self.summary_path, "metrics": self.metrics_path,
                 "checkpoint": self.last_checkpoint}
        lacking = [files[w].relative_to(self.path).as_posix() for w in what if not files[w].is_file()]
        if lacking:
            raise UserError(f"{key}: '{self.path}' has no {' and no '.join(lacking)}: not {kind}")

    def read_summary(self) -> dict | None:
        """summary.json's content, or None when there is none (yet) or it cannot be read."""
        try:
            summary = read_json(self.summary_path)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return summary if isinstance(summary, dict) else None

    def read_config(self):
        """The saved config as a plain OmegaConf node (no schema applied, no plugin imported); None when absent."""
        from omegaconf import OmegaConf

        if not self.config_path.is_file():
            return None
        return OmegaConf.load(self.config_path)

    def read_metrics_table(self) -> tuple[list[str], list[dict]]:
        """(header, rows as dicts of strings). A torn last row (a write cut short) is dropped with a warning."""
        try:
            text = self.metrics_path.read_text()
        except (OSError, UnicodeDecodeError):
            return [], []
        lines = text.splitlines(keepends=True)
        if not lines:
            return [], []
        header = next(csv.reader([lines[0]]))
        torn = not lines[-1].endswith("\n")
        if not torn and len(lines) > 1:
            last = next(csv.reader([lines[-1]]), [])
            torn = len(last) != len(header)
        if torn and len(lines) > 1:
            print(f"warning: {self.metrics_path}: the last row was cut short (a write interrupted); it is dropped",
                  file=sys.stderr)
            lines = lines[:-1]
        rows = list(csv.DictReader(lines[1:], fieldnames=header)) if len(lines) > 1 else []
        return header, rows

    def read_metrics(self) -> list[dict]:
        """The metrics rows (dicts of strings, empty cells ''); [] when the run has none yet."""
        return self.read_metrics_table()[1]

    def read_discover_recording(self) -> tuple[dict, Any, Any] | None:
        """(probe samples, steps [T], losses [T, n]) recorded with discover.record=true; None when the run has none."""
        import torch

        probe, losses = self.path / DISCOVER_PROBE, self.path / DISCOVER_LOSSES
        if not (probe.is_file() and losses.is_file()):
            return None
        curves = torch.load(losses, map_location="cpu", weights_only=True)
        return torch.load(probe, map_location="cpu", weights_only=True), curves["steps"], curves["losses"]

    @property
    def discovered_path(self) -> Path:
        return self.path / DISCOVERED

    @property
    def discovered_plot_path(self) -> Path:
        return self.path / DISCOVERED_PLOT

    def load_checkpoint(self, name: str = LAST) -> dict:
        """A checkpoint's content, tensors and plain Python only (torch's weights_only loading)."""
        import torch

        return torch.load(self.checkpoint(name), map_location="cpu", weights_only=True)

    # ---- reading a run someone sent you -----------------------------------------------------------------------
    def config_for_reading(self, plugins=(), trust_plugins: bool = False, key: str = "run_dir") -> dict:
        """The saved config as plain containers, ready for skilltrain.config.from_container, read without running
        anything it names: its plugins are imported only when the reader names them (`plugins`) or trusts the run
        (`trust_plugins`), and its callbacks and loggers are left out (a reader never instantiates them)."""
        from omegaconf import OmegaConf

        from skilltrain.plugins import load_plugins

        saved = self.read_config()
        if saved is None:
            self.require("config", key=key)
        container = OmegaConf.to_container(saved)
        if not isinstance(container, dict):
            raise UserError(f"{key}: '{self.config_path}' is not a run's config")
        recorded = [str(p) for p in (container.get("plugins") or [])]
        loaded = load_plugins([*plugins, *(recorded if trust_plugins else [])])
        self.untrusted_plugins = [p for p in recorded if p not in loaded]
        container["plugins"] = loaded
        container["callbacks"] = []
        if isinstance(container.get("logger"), dict):
            container["logger"]["extra"] = []
        return container

    @contextlib.contextmanager
    def explaining_plugins(self, key: str = "run_dir"):
        """A config that cannot be read because its plugins were not imported: say how to import them."""
        try:
            yield
        except UserError as e:
            untrusted = self.untrusted_plugins
            if not untrusted:
                raise
            raise UserError(f"{key}: '{self.path}' was made with plugins {untrusted} that were not imported ({e}); "
                            "reading a run runs none of its code unless you pass plugins=[...] or trust_plugins=true"
                            ) from None


def reading_options(cli) -> tuple[list[str], bool]:
    """(plugins, trust_plugins) from a reading command's `key=value`s (analyze, fit-theory), checked."""
    from omegaconf import OmegaConf

    plugins, trust = cli.get("plugins") or [], cli.get("trust_plugins", False)
    if not (OmegaConf.is_list(plugins) or isinstance(plugins, list)):
        raise UserError(f"plugins: expected a list such as [my_plugin.py], got '{plugins}'")
    if not isinstance(trust, bool):
        raise UserError(f"trust_plugins: expected true or false, got '{trust}'")
    return [str(p) for p in plugins], trust


def _in_use(path: Path | str) -> UserError:
    return UserError(f"out_dir: '{path}' is in use by another run: {lock_holder(path)}; wait for it to end (or stop "
                     "it), then run this command again (nothing was changed)")


def _csv_text(header: list[str], rows) -> str:
    buffer = io.StringIO()
    if rows and isinstance(rows[0], dict):
        writer = csv.DictWriter(buffer, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    else:
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
    return buffer.getvalue()


def _unique(base: Path) -> Path:
    """`base`, or `base-1`, `base-2`, …: the first that this process could create (an exclusive mkdir)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path, n = base.with_name(f"{base.name}-{n}"), n + 1
