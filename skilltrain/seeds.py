"""Seeds as every command takes them: `seed=S` (fit, theory) and `seeds=N | [s1, s2, …]` (compare, sweep, benchmark).

A seed is an integer in 0 … 2³²−1 (what numpy and Lightning's `seed_everything` accept); a bad one is one line naming
the key, checked before anything runs.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from skilltrain.errors import UserError

MAX_SEED = 2**32 - 1
MAX_SEEDS = 10_000  # seeds=N runs N seeds per arm: more than this is a typo, not an experiment


def check_seed(value, key: str = "seed") -> int:
    """`value` as a seed, or a one-line UserError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{key}: expected an integer seed in 0…{MAX_SEED}, got '{value}'")
    if not 0 <= value <= MAX_SEED:
        raise UserError(f"{key}: must be in 0…{MAX_SEED} (2^32 − 1), got {value}")
    return value


def parse_seeds(value, key: str = "seeds") -> list[int]:
    """`seeds=N` (the seeds 1…N) or a list of distinct seeds `[0,7,9]`, as a list; else a one-line UserError."""
    usage = "a number of seeds (seeds=5 means 1..5) or a non-empty list of seeds such as [0,7,9]"
    if isinstance(value, bool):
        raise UserError(f"{key}: expected {usage}, got '{str(value).lower()}'")
    if isinstance(value, int):
        if not 1 <= value <= MAX_SEEDS:
            raise UserError(f"{key}: must be ≥ 1 and ≤ {MAX_SEEDS} (a number of seeds) or a list, got {value}")
        return list(range(1, value + 1))
    if isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
        seeds = list(value)
        if not seeds:
            raise UserError(f"{key}: is empty; expected {usage}")
        seeds = [check_seed(s, f"{key}[{i}]") for i, s in enumerate(seeds)]
        if len(set(seeds)) != len(seeds):
            raise UserError(f"{key}: must be distinct, got {seeds}")
        return seeds
    raise UserError(f"{key}: expected {usage}, got '{value}'")
