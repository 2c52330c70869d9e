"""LightningDataModule over a task: the training stream and the held-out eval set.

The train dataloader yields only batch *numbers*; `on_after_batch_transfer` turns number i into batch i of the
stream, on the training device, right before the step that uses it. Lightning prefetches one batch ahead, so a
stream that made batches inside the dataloader would run ahead of training: its state at a checkpoint would not
be the state of the trained batches, and a skill-probability change made by an intervention after step t would
miss batch t+1. Made here, batch t+1 sees everything that step t changed, in a fresh run and after a resume alike.
"""

from __future__ import annotations

import itertools

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from skilltrain.config import require
from skilltrain.data.base import Task
from skilltrain.data.stream import EVAL_CHUNK, TrainStream, make_pool_and_eval, take


class _BatchNumbers(IterableDataset):
    def __init__(self, stream: TrainStream):
        self.stream = stream

    def __iter__(self):
        return itertools.count(self.stream.consumed)


class SkillDataModule(L.LightningDataModule):
    def __init__(self, task: Task, n_samples: int | None, batch_size: int | None, eval_samples: int,
                 seed: int, data_seed: int):
        super().__init__()
        self.task = task
        self.batch_size, self.seed = batch_size, seed
        # Made here, before any Trainer or run directory exists: a data set that cannot be split fails early.
        self.pool, self.eval_set = make_pool_and_eval(task, n_samples, eval_samples, data_seed)
        self.full_batch = self.pool is not None and batch_size is None  # every step trains on the whole pool
        self.stream: TrainStream | None = None

    def setup(self, stage: str) -> None:
        if self.stream is not None:
            return
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        n_eval = len(self.eval_set["y"])
        require(n_eval >= world, "data.eval_samples", f"the held-out set has {n_eval} rows for {world} processes; "
                                                      "every process needs at least one")
        device = trainer.strategy.root_device if trainer else "cpu"
        self.stream = TrainStream(self.task, self.pool, self.batch_size, self.seed, rank, world, device)
        self.pool = None  # the stream holds it now (on the device)

    def train_dataloader(self) -> DataLoader:
        # Its own generator: starting an iterator must not draw from the global RNG (dropout's), or a resumed run
        # would draw once more than an uninterrupted one.
        return DataLoader(_BatchNumbers(self.stream), batch_size=None, generator=torch.Generator())

    def val_dataloader(self) -> DataLoader:
        """This rank's share of the eval set (rows rank::world), in chunks; metrics are summed across ranks."""
        shard = take(self.eval_set, slice(self.stream.rank, None, self.stream.world_size))
        n = len(shard["y"])
        chunks = [take(shard, slice(i, i + EVAL_CHUNK)) for i in range(0, n, EVAL_CHUNK)]
        return DataLoader(chunks, batch_size=None, shuffle=False, generator=torch.Generator())

    def rows_per_step(self) -> int:
        """Training rows each step (each process in full batch takes its share of the pool)."""
        if self.full_batch:
            return len((self.pool if self.pool is not None else self.stream.pool)["y"])
        return self.batch_size

    def set_skill_rates(self, rates) -> None:
        """Each skill's share of the next batches: what data-sampling interventions set (skilltrain.data.stream)."""
        self.stream.set_rates(rates)

    def update_skill_rates(self, rates) -> None:
        """`set_skill_rates` in a training step: trusted rates, no check, nothing read back from the device."""
        self.stream.update_rates(rates)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.stream.batch(batch) if isinstance(batch, int) else batch

    def state_dict(self) -> dict:
        return self.stream.state_dict() if self.stream is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            self.stream.load_state_dict(state_dict)
