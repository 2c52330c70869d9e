"""Overhead of skilltrain over a plain PyTorch loop, on the compositional recipe (the main job).

Three loops train the same model (MLP 32-50-3, float64, default init from the same seed) on the same 8,000-sample
pool, full batch, Adam 1e-3, for the same number of steps, in this one process, alternating repeats so that
machine noise hits all alike:

- plain:      a `for` loop: forward, MSE loss matrix, backward, Adam step, and per-skill train loss and accuracy
              every step (what skilltrain computes to find learn steps).
- lightning:  the same math in a minimal LightningModule (no metrics, logging or callbacks): Lightning's own cost.
- skilltrain: `fit recipe=compositional` as a user runs it (progress bar, CSV log, per-skill metrics, held-out
              evaluation every 100 steps, final checkpoint), W&B disabled (its start-up is not a per-step cost).

Times are of the training loop only (set-up, summary and plot excluded; printed for context). All three run
with skilltrain's malloc tuning (skilltrain/allocator.py; its own effect is measured by bench/cpu_allocator.py).

    python bench/overhead.py [--steps 1000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

from skilltrain.allocator import tune_cpu_allocator
from skilltrain.config import load_config
from skilltrain.data import build_task
from skilltrain.data.stream import make_pool_and_eval
from skilltrain.models import DTYPES, build_model
from skilltrain.run import fit


def setup(cfg):
    torch.manual_seed(cfg.seed)
    task = build_task(OmegaConf.to_object(cfg.data), cfg.seed, DTYPES[cfg.model.dtype])
    pool, _ = make_pool_and_eval(task, cfg.data.n_samples, cfg.data.eval_samples, cfg.seed)
    return build_model(OmegaConf.to_object(cfg.model), task), pool["x"], pool["y"]


def plain_loop(cfg) -> float:
    model, x, y = setup(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    start = time.perf_counter()
    for _ in range(cfg.trainer.max_steps):
        out = model(x)
        losses = (out - y) ** 2
        loss = losses.sum() / len(x)
        with torch.no_grad():
            torch.cat([losses.mean(0), ((out > 0.5) == (y > 0.5)).double().mean(0)]).tolist()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


class _Minimal(L.LightningModule):
    def __init__(self, model, x, y, lr):
        super().__init__()
        self.model, self.x, self.y, self.lr = model, x, y, lr

    def training_step(self, batch, batch_idx):
        return ((self.model(self.x) - self.y) ** 2).sum() / len(self.x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class _Steps(torch.utils.data.IterableDataset):
    def __iter__(self):
        return itertools.count()


def lightning_loop(cfg) -> float:
    model, x, y = setup(cfg)
    trainer = L.Trainer(max_steps=cfg.trainer.max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    start = time.perf_counter()
    trainer.fit(_Minimal(model, x, y, cfg.optim.lr), torch.utils.data.DataLoader(_Steps(), batch_size=None))
    return time.perf_counter() - start


def skilltrain_loop(steps: int) -> tuple[float, float]:
    """(training-loop seconds from summary.json, whole fit() seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(["recipe=compositional", f"trainer.max_steps={steps}", f"out_dir={tmp}/run",
                           "logger.wandb.mode=disabled", "trainer.accelerator=cpu"])
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fit(cfg)
        whole = time.perf_counter() - start
        return json.loads((Path(tmp) / "run" / "summary.json").read_text())["wall_seconds"], whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tune_cpu_allocator()  # fit() applies it; apply it to the other loops too, so that they compare like with like
    cfg = load_config(["recipe=compositional", f"trainer.max_steps={args.steps}"])
    with contextlib.redirect_stderr(io.StringIO()):
        skilltrain_loop(20), lightning_loop(load_config(["recipe=compositional", "trainer.max_steps=20"]))  # warm-up
        times: dict[str, list[float]] = {"plain": [], "lightning": [], "skilltrain": [], "whole": []}
        for _ in range(args.repeats):
            times["plain"].append(plain_loop(cfg))
            times["lightning"].append(lightning_loop(cfg))
            train, whole = skilltrain_loop(args.steps)
            times["skilltrain"].append(train)
            times["whole"].append(whole)
    med = statistics.median
    print(f"compositional: {args.steps} steps, {args.repeats} alternating repeats, {torch.get_num_threads()} threads")
    for name in ("plain", "lightning", "skilltrain"):
        print(f"  {name:<11} {med(times[name]):6.2f} s  ({1000 * med(times[name]) / args.steps:.2f} ms/step)")
    print(f"  (skilltrain's whole fit(), set-up, summary and plot included: {med(times['whole']):.2f} s)")

    def ratio(a: str, b: str) -> str:
        r = sorted(x / y for x, y in zip(times[a], times[b]))
        q1, q3 = statistics.quantiles(r, n=4)[0], statistics.quantiles(r, n=4)[2]
        return f"{med(r):.3f}  (IQR {q1:.3f}–{q3:.3f} over {len(r)} paired repeats)"

    print(f"ratio skilltrain / plain:     {ratio('skilltrain', 'plain')}")
    print(f"ratio lightning / plain:      {ratio('lightning', 'plain')}   Lightning's own loop")
    print(f"ratio skilltrain / lightning: {ratio('skilltrain', 'lightning')}   what skilltrain adds to Lightning")


if __name__ == "__main__":
    main()
