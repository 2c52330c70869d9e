"""Safe file writes: atomic (a reader never sees half a file, a crash never leaves one), strict JSON, and one writer
per directory (`try_lock`).

Every file skilltrain writes goes through here: a temporary file in the same folder, flushed and fsynced, then
renamed over the target (and the folder fsynced, so the rename itself survives a crash). JSON is strict: NaN and
±Infinity are written as null (the JSON standard has no such numbers; `json.loads` in other languages refuses them).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def fsync_path(path: Path | str) -> None:
    """fsync a file or a folder by its path (a folder: so that a rename or a new entry in it survives a crash)."""
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened (Windows, some FUSE mounts)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` atomically: a temporary file beside it, fsync, rename over `path`, fsync the folder."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes the file private (0600); a result file is as open as any other
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_path(path.parent)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_figure(fig, path: Path | str, dpi: int = 110) -> None:
    """A matplotlib figure written atomically (its format from the file's suffix): every figure skilltrain writes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())


def finite(value: Any) -> Any:
    """`value` with every NaN and ±Infinity (at any depth of dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy or torch scalar
        return finite(value.item())
    return value


def dumps_json(data: Any, indent: int | None = 2) -> str:
    """Strict JSON text: non-finite numbers become null (never NaN or Infinity)."""
    return json.dumps(finite(data), indent=indent, allow_nan=False) + "\n"


def write_json(path: Path | str, data: Any, indent: int | None = 2) -> None:
    """Strict JSON, written atomically."""
    atomic_write_text(path, dumps_json(data, indent))


def read_json(path: Path | str) -> Any:
    """JSON as Python; a file with NaN or Infinity in it (written by an older version) reads them as None."""
    return json.loads(Path(path).read_text(), parse_constant=lambda _: None)


# ---- one writer at a time ------------------------------------------------------------------------------------------
# A directory (a run, a comparison, a sweep) is held by one process at a time: an OS lock on `<directory>/.lock` (the
# filelock package), with who holds it (pid, host, start time, command) written beside it in `.lock.json`. The lock
# belongs to the process: when it dies (killed, crashed, the machine rebooted) the operating system releases it, and
# the next command takes it over. Callers turn "held" into their own one-line error (skilltrain.errors is above).
LOCK = ".lock"
LOCK_HOLDER = ".lock.json"


def try_lock(directory: Path | str, say_who: bool = True):
    """This process's lock on `directory` (a filelock.FileLock: `.release()` it, or it goes with the process), or
    None when another process holds it. `say_who`: write who holds it to `.lock.json`."""
    import socket
    import sys
    import time

    from filelock import FileLock, Timeout

    directory = Path(directory)
    lock = FileLock(str(directory / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    if say_who:
        try:
            write_json(directory / LOCK_HOLDER, {"pid": os.getpid(), "host": socket.gethostname(),
                                                 "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                                 "command": " ".join(["skilltrain", *sys.argv[1:]])[:300]})
        except BaseException:
            lock.release()
            raise
    return lock


def unlock(lock) -> None:
    """Release a lock from `try_lock`, removing its `.lock.json` first (no stale holder is left beside a free lock)."""
    Path(lock.lock_file).with_name(LOCK_HOLDER).unlink(missing_ok=True)
    lock.release()


def is_locked(directory: Path | str) -> bool:
    """Whether another process holds `directory` (probed without creating anything in it)."""
    if not (Path(directory) / LOCK).is_file():
        return False
    lock = try_lock(directory, say_who=False)
    if lock is None:
        return True
    lock.release()
    return False


def lock_holder(directory: Path | str) -> str:
    """Who holds the lock on `directory`, in words (from `.lock.json`)."""
    try:
        info = json.loads((Path(directory) / LOCK_HOLDER).read_text())
        return f"pid {info['pid']} on {info['host']}, started {info['started']} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not said which yet)"
