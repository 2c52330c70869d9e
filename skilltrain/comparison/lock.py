"""One command at a time per comparison (or sweep, or benchmark) directory.

`hold(directory)` takes an OS file lock on `<directory>/.lock` (the filelock package) and writes who holds it
(pid, host, start time, command) beside it, in `.lock.json`. A second command on the same directory refuses with one
line naming the holder. The lock belongs to the process: when it dies (killed, crashed, the machine rebooted) the
operating system releases it, and the next command takes it over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from skilltrain.errors import UserError
from skilltrain.files import write_json

LOCK = ".lock"
HOLDER = ".lock.json"


def holder(directory: Path) -> str:
    """Who holds the lock on `directory`, in words (from `.lock.json`)."""
    try:
        info = json.loads((Path(directory) / HOLDER).read_text())
        return f"pid {info['pid']} on {info['host']}, started {info['started']} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not said which yet)"


@contextlib.contextmanager
def hold(directory: Path | str, what: str = "comparison") -> Iterator[None]:
    """Hold `directory` for this process (creating it); a UserError when another process holds it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"'{directory}' is in use by another {what} command: {holder(directory)}; wait for it to end "
                        "(or stop it), then run this command again") from None
    try:
        write_json(directory / HOLDER, {"pid": os.getpid(), "host": socket.gethostname(),
                                        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                        "command": " ".join(["skilltrain", *sys.argv[1:]])[:300]})
        yield
    finally:
        lock.release()
