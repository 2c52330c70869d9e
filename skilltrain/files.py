"""Safe file writes: atomic (a reader never sees half a file, a crash never leaves one) and strict JSON.

Every file skilltrain writes goes through here: a temporary file in the same folder, flushed and fsynced, then
renamed over the target (and the folder fsynced, so the rename itself survives a crash). JSON is strict: NaN and
±Infinity are written as null (the JSON standard has no such numbers; `json.loads` in other languages refuses them).
"""

from __future__ import annotations

import contextlib
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
