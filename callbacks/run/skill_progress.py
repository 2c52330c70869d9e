"""SkillProgress: when each skill is learned, the evidence behind it, and the per-skill curves.

The module measures per-skill loss and accuracy at every step (synchronised across ranks); this callback decides
the step at which each skill is learned, its metric crossing `metric.threshold` (accuracy ≥ threshold, or loss ≤
threshold), and keeps the curves every `every` steps for the plot and the summary. Values stay on the device and
are read back once every `every` steps, so a GPU run is not synchronised at every step.

A learn decision rests on enough samples (`metric.min_samples`):

- a step that measures the whole training set (full batch, as the paper's runs) is exact: the skill is learned at
  the first step whose training-set metric crosses the threshold, whatever the number of its samples;
- with minibatches, a batch may hold one or two samples of a rare skill, right by chance. The metric is then
  pooled over the skill's most recent samples, back over as few steps as give at least `min_samples` of them: the
  skill is learned at the first step at which that pooled metric crosses. A skill seen on fewer samples than that
  in the whole run is never marked learned;
- held-out (`split=val`): each evaluation covers the whole held-out set, so the decision is made on it, however
  small; the summary records its size, and the report flags one below `min_samples`.

`learned_samples` and `learned_window` (first and last step pooled) record what each decision rested on.

Its state (learn steps, evidence, curves, training time) is plain Python and travels in the checkpoint: a resumed
run's summary covers the whole run.
"""

from __future__ import annotations

import contextlib
import copy
import time

import lightning as L
import torch

from skilltrain.callbacks.run.heartbeat import made_progress

MIN_SAMPLES = 200  # metric.min_samples's default (docs/measurement.md says why)


class SkillProgress(L.Callback):
    def __init__(self, skills: list[str], metric: str = "acc", threshold: float = 0.9, split: str = "train",
                 every: int = 10, min_samples: int = MIN_SAMPLES, full_batch: bool = False):
        self.skills = list(skills)
        self.metric, self.threshold, self.split, self.every = metric, threshold, split, every
        self.min_samples = min_samples
        self.full_batch = full_batch  # every training step measures the whole training set: one step is exact
        self.learned: dict[str, int | None] = {s: None for s in self.skills}
        self.learned_samples: dict[str, int | None] = {s: None for s in self.skills}  # what each decision rested on
        self.learned_window: dict[str, list[int] | None] = {s: None for s in self.skills}  # [first, last] step pooled
        self._pooled = {s: {"rows": [], "samples": 0, "sum": 0.0} for s in self.skills}  # minibatch evidence
        self.train_curve: list[list[float]] = []  # rows [step, loss_1..K, acc_1..K], every `every` steps
        self.val_curve: list[list[float]] = []  # rows [step, val_loss_1..K, val_acc_1..K] at each evaluation
        self.seconds = 0.0  # training time, summed over resumes
        self.samples = 0  # training rows seen, all ranks together, summed over resumes
        self._pending: list[tuple[int, dict[str, torch.Tensor]]] = []
        self._last: list[float] | None = None
        self._started: float | None = None

    @property
    def state_key(self) -> str:
        return "SkillProgress"

    # ---- hooks ----------------------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        made_progress()
        self.samples += len(batch["y"]) * trainer.world_size  # ranks draw equal batches (full batch: equal shards ±1)
        self._pending.append((pl_module.train_stats_step, pl_module.train_stats))
        if len(self._pending) >= self.every:
            self._flush()

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        made_progress()

    def on_validation_end(self, trainer, pl_module) -> None:
        # (not on_validation_epoch_end: callbacks run before the module's hook that computes val_stats)
        if trainer.sanity_checking or not pl_module.val_stats:
            return
        row = self._row(trainer.global_step, pl_module.val_stats)
        if self.val_curve and self.val_curve[-1][0] == row[0]:
            return  # the evaluation of this step was already recorded before a resume
        self.val_curve.append(row)
        if self.split == "val":
            self._mark_learned([row], [pl_module.val_stats["count"].tolist()], exact=True)

    def on_train_end(self, trainer, pl_module) -> None:
        self._flush()
        self._stop_clock()

    def on_exception(self, trainer, pl_module, exception) -> None:
        with contextlib.suppress(Exception):  # keep what was measured, but never mask the exception itself
            self._flush()
        self._stop_clock()

    # ---- state ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        self._flush()
        seconds = self.seconds + (time.perf_counter() - self._started if self._started is not None else 0.0)
        return {"learned": dict(self.learned), "learned_samples": dict(self.learned_samples),
                "learned_window": dict(self.learned_window), "pooled": copy.deepcopy(self._pooled),
                "train_curve": self.train_curve, "val_curve": self.val_curve, "seconds": seconds,
                "samples": self.samples, "last": self._last}

    def load_state_dict(self, state_dict: dict) -> None:
        self.learned = dict(state_dict["learned"])
        self.learned_samples = dict(state_dict["learned_samples"])
        self.learned_window = dict(state_dict["learned_window"])
        self._pooled = copy.deepcopy(state_dict["pooled"])
        self.train_curve = [list(r) for r in state_dict["train_curve"]]
        self.val_curve = [list(r) for r in state_dict["val_curve"]]
        self.seconds = float(state_dict["seconds"])
        self.samples = int(state_dict["samples"])
        self._last = state_dict.get("last")

    # ---- results --------------------------------------------------------------------------------------------
    def final(self, split: str = "train") -> dict[str, dict[str, float]]:
        """The last measured loss and accuracy per skill on `split`."""
        row = self._last if split == "train" else (self.val_curve[-1] if self.val_curve else None)
        k = len(self.skills)
        if row is None:
            return {s: {"loss": float("nan"), "acc": float("nan")} for s in self.skills}
        return {s: {"loss": row[1 + i], "acc": row[1 + k + i]} for i, s in enumerate(self.skills)}

    def full_train_curve(self) -> list[list[float]]:
        """The train curve with the last measured step appended (for plots)."""
        if self._last is None or (self.train_curve and self.train_curve[-1][0] == self._last[0]):
            return self.train_curve
        return [*self.train_curve, self._last]

    def learn_order(self) -> list[str]:
        learned = [(step, i, s) for i, (s, step) in enumerate(self.learned.items()) if step is not None]
        return [s for _, _, s in sorted(learned)]

    # ---- internals ------------------------------------------------------------------------------------------
    def _row(self, step: int, stats: dict[str, torch.Tensor]) -> list[float]:
        return [float(step), *stats["loss"].tolist(), *stats["acc"].tolist()]

    def _flush(self) -> None:
        if not self._pending:
            return
        steps = [s for s, _ in self._pending]
        table = torch.stack([torch.cat([st["loss"], st["acc"], st["count"]]) for _, st in self._pending]).cpu().tolist()
        self._pending = []
        k = len(self.skills)
        rows = [[float(step), *values[: 2 * k]] for step, values in zip(steps, table)]
        if self.split == "train":
            self._mark_learned(rows, [values[2 * k :] for values in table], exact=self.full_batch)
        self.train_curve += [r for r in rows if int(r[0]) % self.every == 0]
        self._last = rows[-1]

    def _mark_learned(self, rows: list[list[float]], counts: list[list[float]], exact: bool) -> None:
        """Mark skills learned from measured rows ([step, loss_1..K, acc_1..K]) and the samples behind each value.

        `exact`: each row measured a skill on its whole population (the training set in full batch, the held-out
        set), so a row decides alone. Otherwise the rows of each skill are pooled back to `min_samples` samples.
        """
        k = len(self.skills)
        offset = 1 + (k if self.metric == "acc" else 0)
        for i, skill in enumerate(self.skills):
            if self.learned[skill] is not None:
                continue
            pool = self._pooled[skill]  # {"rows": [[step, samples, metric sum], …] oldest first, "samples", "sum"}
            for row, count in zip(rows, counts):
                n = int(count[i])
                if n == 0:  # the skill was not in this batch: no evidence either way
                    continue
                # accuracy as a count of correct samples: sums of whole numbers stay exact however long the window
                total = round(row[offset + i] * n) if self.metric == "acc" else row[offset + i] * n
                if exact:
                    pool.update(rows=[], samples=0, sum=0.0)
                pool["rows"].append([row[0], n, total])
                pool["samples"] += n
                pool["sum"] += total
                while pool["samples"] - pool["rows"][0][1] >= self.min_samples:  # the fewest most recent steps that
                    _, n_old, total_old = pool["rows"].pop(0)  # hold min_samples samples
                    pool["samples"] -= n_old
                    pool["sum"] -= total_old
                if pool["samples"] < self.min_samples and not exact:
                    continue
                value = pool["sum"] / pool["samples"]
                if value >= self.threshold if self.metric == "acc" else value <= self.threshold:
                    self.learned[skill] = int(row[0])
                    self.learned_samples[skill] = pool["samples"]
                    self.learned_window[skill] = [int(pool["rows"][0][0]), int(row[0])]
                    pool.update(rows=[], samples=0, sum=0.0)
                    break

    def _stop_clock(self) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None
