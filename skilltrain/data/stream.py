"""Seeded, stateful streams of whole skill-tagged batches.

Batch i is a pure function of (run seed, rank, i) and the current skill probabilities: its generator is seeded
from them. So the stream's whole state is the number of batches consumed (plus the probabilities a data-level
intervention set), a resume continues the exact same stream, and Lightning's prefetching cannot shift it.

Two modes:
- full batch / pool (`data.n_samples` set, as in the paper): a fixed set of samples made once from the data seed;
  each step takes the whole pool (`data.batch_size=null`; under DDP each rank takes its 1/world shard) or an
  epoch-shuffled minibatch of it.
- streaming (`data.n_samples=null`): fresh samples every step.

In the outputs form, frequencies p_k < 1 add a fresh per-step loss mask M[b, k] ~ Bernoulli(p_k). A data-level
intervention changes these skill rates (`set_rates`): sampling probabilities in the control form (a pool is then
resampled with per-row weights), loss-mask rates in the outputs form. A task with mix groups (`Task.mix_groups`,
data.mix_column) takes rates over its groups instead: a pool row is drawn with its group's rate.
"""

from __future__ import annotations

import hashlib

import torch

from skilltrain.data.base import Task

EVAL_CHUNK = 8192  # eval batches are at most this many samples


def mix_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (stable across processes and Python versions, unlike hash())."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def take(data: dict[str, torch.Tensor], idx: torch.Tensor | slice) -> dict[str, torch.Tensor]:
    return {k: v[idx] for k, v in data.items()}


def exact_counts(probabilities: list[float], n: int) -> list[int]:
    """Integer counts summing to n in the given proportions (largest remainder): 1% of 1000 rows is 10 rows."""
    raw = [p * n for p in probabilities]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    return counts


def make_pool_and_eval(task: Task, n_samples: int | None, eval_samples: int, data_seed: int) -> tuple[dict | None, dict]:
    """The fixed training pool (or None when streaming) and the held-out eval set, on the CPU.

    A task with a fixed split (an enumerable input set) gives both itself. Otherwise:
    outputs form: pool and eval rows are drawn in one call and split, so they are distinct draws;
    control form: the pool holds each skill in exact proportion to its frequency (shuffled), and the eval set
    `eval_samples` rows per skill.
    """
    g = generator(mix_seed(data_seed, "pool"))
    split = task.fixed_split(g)
    if split is not None:
        return split
    n_pool = n_samples or 0
    if task.form == "outputs":
        rows = task.sample(n_pool + eval_samples, g)
        return (take(rows, slice(0, n_pool)) if n_samples else None), take(rows, slice(n_pool, None))
    pool = None
    if n_samples:
        skills = torch.arange(task.n_skills).repeat_interleave(torch.tensor(exact_counts(task.frequencies, n_pool)))
        pool = task.sample(n_pool, g, skills[torch.randperm(n_pool, generator=g)])
    eval_skills = torch.arange(task.n_skills).repeat_interleave(eval_samples)
    return pool, task.sample(len(eval_skills), g, eval_skills)


class TrainStream:
    def __init__(self, task: Task, pool: dict | None, batch_size: int | None, seed: int,
                 rank: int = 0, world_size: int = 1, device: torch.device | str = "cpu"):
        self.task = task
        self.batch_size = batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device = torch.device(device)
        if pool is not None and batch_size is None and world_size > 1:
            pool = take(pool, slice(rank, None, world_size))  # full batch under DDP: the ranks' shards make the pool
        self.pool = None if pool is None else {k: v.to(self.device) for k, v in pool.items()}
        self.consumed = 0  # batches trained on so far; the next batch is batch `consumed`
        self._rows_per_skill: torch.Tensor | None = None
        self._perms: dict[int, torch.Tensor] = {}
        # what the rates are over: the skills, or the task's mix groups (data.mix_column; control form, a pool only)
        self.group_key = "skill" if task.mix_groups is None else "mix"
        if task.mix_groups is not None and (self.pool is None or "mix" not in self.pool):
            raise ValueError(f"{type(task).__name__} has mix groups, but its training rows carry no 'mix' column")
        self.set_rates(task.mixing[1])

    # ---- state (exact resume) -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"consumed": self.consumed, "rates": self.rates.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])
        self.set_rates(state["rates"])

    def set_rates(self, rates) -> None:
        """Each skill's share of the next batches (data-level interventions set it, identically on every rank).

        Control form: sampling probabilities (normalised). Outputs form: loss-mask rates, each in [0, 1].
        """
        names, natural = self.task.mixing
        r = torch.as_tensor(rates, dtype=torch.float64).flatten()
        if r.numel() != len(names) or not torch.isfinite(r).all() or (r < 0).any() or r.sum() <= 0:
            raise ValueError(f"expected {len(names)} finite non-negative skill rates, got {r.tolist()}")
        self._pool_weights = None
        self._mask_rates = None
        if self.task.form == "outputs":
            r = r.clamp(max=1.0)
            if (r < 1).any():
                self._mask_rates = r.to(self.device)
        else:
            r = r / r.sum()
            natural = torch.tensor(natural, dtype=torch.float64)
            if self.pool is not None and not torch.allclose(r, natural):
                self._pool_weights = self._row_weights(r)  # resample the pool with per-row weights
        self.rates = r.to(self.device)  # here once, not on every batch: a copy to the GPU makes the step wait for it

    def update_rates(self, rates: torch.Tensor) -> None:
        """`set_rates` for a data-sampling intervention's every step: `rates` is a valid tensor already, on any device;
        nothing is checked or read back to the host (a pool is resampled with per-row weights from now on)."""
        r = rates.to(torch.float64)
        if r.device != self.device:
            r = r.to(self.device)
        if self.task.form == "outputs":
            self._mask_rates = r = r.clamp(max=1.0)
        else:
            r = r / r.sum()
            if self.pool is not None:
                self._pool_weights = self._row_weights(r)
        self.rates = r

    def _row_weights(self, rates: torch.Tensor) -> torch.Tensor:
        """Per pool row: its skill's rate over the skill's rows (a row of skill k is drawn with rate_k / n_k)."""
        group = self.pool[self.group_key]
        if self._rows_per_skill is None:
            self._rows_per_skill = torch.bincount(group, minlength=len(rates)).clamp(min=1)
        if rates.device != self.device:
            rates = rates.to(self.device)
        return (rates / self._rows_per_skill)[group]

    # ---- batches --------------------------------------------------------------------------------------------
    def batch(self, index: int) -> dict[str, torch.Tensor]:
        """Batch number `index` of this rank's stream, on the stream's device."""
        g = generator(mix_seed(self.seed, self.rank, "train", index), self.device)
        if self.pool is not None and self.batch_size is None:
            out = self.pool
        elif self.pool is not None:
            if self._pool_weights is None:
                idx = self._pool_indices(index)
            else:
                idx = torch.multinomial(self._pool_weights, self.batch_size, replacement=True, generator=g)
            out = take(self.pool, idx)
        elif self.task.form == "control":
            skill = torch.multinomial(self.rates, self.batch_size, replacement=True, generator=g)
            out = self.task.sample(self.batch_size, g, skill)
        else:
            out = self.task.sample(self.batch_size, g)
        if self._mask_rates is not None:
            n = len(out["y"])
            out = {**out, "loss_mask": torch.rand(n, self.task.n_skills, generator=g, device=self.device) < self._mask_rates}
        self.consumed = index + 1
        return out

    def _pool_indices(self, index: int) -> torch.Tensor:
        """Minibatch `index` of an epoch-shuffled walk through the pool (an epoch boundary may split a batch)."""
        n, b = len(self.pool["y"]), self.batch_size
        start = index * b
        parts, need = [], b
        while need:
            epoch, offset = divmod(start, n)
            part = self._perm(epoch)[offset : offset + need]
            parts.append(part)
            need -= len(part)
            start += len(part)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            g = generator(mix_seed(self.seed, self.rank, "epoch", epoch), self.device)
            self._perms[epoch] = torch.randperm(len(self.pool["y"]), generator=g, device=self.device)
        return self._perms[epoch]
