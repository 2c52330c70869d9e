"""One command at a time per comparison (or sweep, or benchmark) directory.

`hold(directory)` takes an OS file lock on `<directory>/.lock` (the filelock package) and writes who holds it
(pid, host, start time, command) beside it, in `.lock.json`. A second command on the same directory refuses with one
line naming the holder. The lock belongs to the process: when it dies (killed, crashed, the machine rebooted) the
operating system releases it, and the next command takes it over. The lock itself is skilltrain.files' (a run
directory is held the same way, by its fit).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from skilltrain.errors import UserError
from skilltrain.files import LOCK, LOCK_HOLDER, try_lock, unlock
from skilltrain.files import lock_holder as holder

HOLDER = LOCK_HOLDER

__all__ = ["HOLDER", "LOCK", "hold", "holder"]


@contextlib.contextmanager
def hold(directory: Path | str, what: str = "comparison") -> Iterator[None]:
    """Hold `directory` for this process (creating it); a UserError when another process holds it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = try_lock(directory)
    if lock is None:
        raise UserError(f"'{directory}' is in use by another {what} command: {holder(directory)}; wait for it to end "
                        "(or stop it), then run this command again")
    try:
        yield
    finally:
        unlock(lock)
