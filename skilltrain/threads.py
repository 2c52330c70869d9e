"""How many CPU threads a run's torch operations use (`trainer.threads`).

torch's default is one thread per core. For the small models skill experiments use, splitting each operation over
threads costs more in synchronisation than it gains, and on a shared machine it makes every run wait for the busiest
core: `bench/threads.py` measures both. `auto` therefore uses one thread for a small step (parameters × rows per
step below `SMALL_WORK`) and otherwise the cores that are free (the cores this process may use, less the load
average, at least one; in a comparison, its worker's fixed share, so that paired runs compute alike). A number
sets it; the value in force before `fit` is restored after it.
"""

from __future__ import annotations

import os

import torch

SMALL_WORK = 5e7  # parameters × rows per step below which one thread is fastest (bench/threads.py)


def usable_cores() -> int:
    """The cores this process may use (its CPU affinity)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores() -> int:
    """Inside a comparison's worker or job (SKILLTRAIN_MAX_THREADS: its share of the cores), exactly that share, so
    that every run of a comparison computes with the same threads whatever the load; otherwise the cores this process
    may use less the 1-minute load average (other processes' work), at least 1."""
    cores = usable_cores()
    share = os.environ.get("SKILLTRAIN_MAX_THREADS")
    if share:
        return max(1, min(cores, int(share)))
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, round(cores - busy)))


def choose_threads(setting, parameters: int, rows: int) -> int:
    """`trainer.threads`: a number as given; `auto` by the step's size and the free cores."""
    if setting != "auto":
        return int(setting)
    return 1 if parameters * rows < SMALL_WORK else free_cores()


class using_threads:  # noqa: N801  (a context manager, used like a function)
    """Run with `n` torch threads, then restore the caller's setting (fit may run inside a user's process)."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)
        return False
