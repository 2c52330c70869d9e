"""User-facing errors: one line, exit code 2, no traceback (the CLI catches these). The bottom layer: it imports
nothing of skilltrain."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterable


class UserError(Exception):
    """Bad input from the user: the message is shown as one line and the process exits with code 2."""


class RegistrationError(UserError):
    """A name registered twice (or inconsistently)."""


def require(ok: object, key: str, message: str) -> None:
    """Raise a one-line `key: message` UserError unless `ok`."""
    if not ok:
        raise UserError(f"{key}: {message}")


def closest(name: str, options: Iterable[str]) -> str | None:
    """The closest valid name to `name`, or None when nothing is close."""
    matches = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown(kind: str, name: str, options: Iterable[str], key: str | None = None) -> UserError:
    """`key: unknown <kind> 'name' (did you mean 'x'?; valid: a, b, c)`."""
    options = sorted(options)
    guess = closest(name, options)
    hint = f"did you mean '{guess}'? " if guess else ""
    where = f"{key}: " if key else ""
    valid = ", ".join(options) if options else "none registered"
    return UserError(f"{where}unknown {kind} '{name}' ({hint}valid: {valid})")


def exit_status(e: SystemExit) -> int:
    """The exit status a shell sees for `e`: sys.exit() is 0, sys.exit(n) is n, sys.exit("message") is 1."""
    return 0 if e.code is None else e.code if isinstance(e.code, int) else 1


def command_exit(command: str, call: Callable[[], int]) -> int:
    """How a command ends, wherever it runs (the command line, a comparison's worker or cluster job): `call`'s exit
    code; a UserError is one line `error: …` on stderr and exit 2; Ctrl-C before the command started its work, 130
    (a run stopped by Ctrl-C once training started returns 130 itself)."""
    try:
        return call()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stopped by Ctrl-C (SIGINT) before {command} started its work", file=sys.stderr)
        return 130
