"""When the run in this process last made progress: a training batch ended, an evaluation batch ended, a checkpoint
was written (SkillProgress and RunCheckpoints say so). A comparison's worker reports the time since then with its
signs of life, so that a fit stuck inside a step (a deadlock: the process alive, its threads answering, nothing
moving) is told from a slow one and stopped (`compare.reply_timeout`)."""

from __future__ import annotations

import time

_last = time.monotonic()


def made_progress() -> None:
    """The run moved on (a step, an evaluation batch, a checkpoint); also called when a run starts."""
    global _last
    _last = time.monotonic()


def seconds_since_progress() -> float:
    return time.monotonic() - _last
