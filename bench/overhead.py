"""Overhead of skilltrain over a plain PyTorch loop, on three workloads:

- compositional:                the main job: MLP 32-50-3 in float64, full batch of 8,000 rows, Adam, MSE per skill;
- multitask_parity:             streaming: a fresh batch of 2,048 every step (skills drawn by their Zipf frequencies),
                                MLP 42-200-2, AdamW, cross-entropy; held-out evaluation every 50 steps;
- multitask_parity_transformer: the same in token form (33 → 13 tokens) through a 2-layer transformer, batches of 512.

Three loops train each workload's model (built by skilltrain's model builder from the same seed) on the same data
(the task's own sampler) for the same number of steps, in this one process, alternating repeats so that machine
noise hits all alike:

- plain:      a `for` loop: make the batch, forward, loss, backward, optimizer step, and the same per-skill
              bookkeeping skilltrain does: per-skill loss sums, correct counts and sample counts every step, read
              back every `trainer.log_every_n_steps` steps, and a per-skill held-out evaluation every
              `trainer.val_check_interval` steps;
- lightning:  the same training math in a minimal LightningModule (no bookkeeping, logging or callbacks):
              Lightning's own cost;
- skilltrain: `fit recipe=<workload>` as a user runs it (progress display, CSV log, per-skill metrics, held-out
              evaluation, learn-step tracking), W&B disabled (its start-up is not a per-step cost).

Times are of the training loop only (set-up, summary and plot excluded). Every loop runs with the same number of
torch threads (`--threads`, passed to skilltrain as `trainer.threads` where it has that key) and with skilltrain's
malloc tuning. The script runs against whichever skilltrain is importable, so an older tree can be measured with
this same file (`PYTHONPATH=<older tree, flattened> python bench/overhead.py`): ratios are taken inside one process.

    python bench/overhead.py [--workloads compositional,multitask_parity,multitask_parity_transformer]
                             [--repeats 5] [--threads 1] [--json results.json]
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
import torch.nn.functional as F
from omegaconf import OmegaConf

import skilltrain
from skilltrain.allocator import tune_cpu_allocator
from skilltrain.config import load_config
from skilltrain.data import build_task
from skilltrain.data.stream import make_pool_and_eval
from skilltrain.models import DTYPES, build_model

STEPS = {"compositional": 1000, "multitask_parity": 300, "multitask_parity_transformer": 150}


class Workload:
    """One recipe's data, model and loss, written as plainly as a researcher's own script would."""

    def __init__(self, recipe: str, steps: int):
        self.recipe, self.steps = recipe, steps
        self.cfg = cfg = load_config([f"recipe={recipe}", f"trainer.max_steps={steps}"])
        self.dtype = DTYPES[cfg.model.dtype]
        self.task = build_task(OmegaConf.to_object(cfg.data), cfg.seed, self.dtype)
        self.pool, self.eval = make_pool_and_eval(self.task, cfg.data.n_samples, cfg.data.eval_samples, cfg.seed)
        self.rates = torch.tensor(self.task.frequencies, dtype=torch.float64)
        self.log_every, self.val_every = cfg.trainer.log_every_n_steps, cfg.trainer.val_check_interval

    def model_and_optimizer(self):
        torch.manual_seed(self.cfg.seed)
        model = build_model(OmegaConf.to_object(self.cfg.model), self.task)
        o = self.cfg.optim
        make = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        return model, make(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)

    def batch(self, step: int) -> dict:
        if self.pool is not None:
            return self.pool  # full batch
        g = torch.Generator().manual_seed(1_000_003 * self.cfg.seed + step)
        skill = torch.multinomial(self.rates, self.cfg.data.batch_size, replacement=True, generator=g)
        return self.task.sample(self.cfg.data.batch_size, g, skill)

    def losses(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-sample losses, correct): [n, K] in the outputs form, [n] in the control form."""
        out = model(batch["x"])
        if self.task.form == "outputs":  # one output per skill, MSE
            return (out - batch["y"]) ** 2, (out > 0.5) == (batch["y"] > 0.5)
        return F.cross_entropy(out, batch["y"], reduction="none"), out.argmax(-1) == batch["y"]

    def per_skill(self, batch, losses, correct) -> torch.Tensor:
        """[3, K]: loss sums, correct counts, sample counts."""
        if self.task.form == "outputs":
            n = len(losses)
            return torch.stack([losses.sum(0), correct.sum(0).to(losses.dtype), losses.new_full((losses.shape[1],), n)])
        k, skill = self.task.n_skills, batch["skill"]
        sums = losses.new_zeros(3, k, dtype=torch.float64)
        sums[0].index_add_(0, skill, losses.double())
        sums[1].index_add_(0, skill, correct.double())
        sums[2].index_add_(0, skill, torch.ones_like(skill, dtype=torch.float64))
        return sums

    def mean_loss(self, losses) -> torch.Tensor:
        return losses.sum() / len(losses) if self.task.form == "outputs" else losses.mean()


def plain_loop(w: Workload) -> float:
    model, opt = w.model_and_optimizer()
    start = time.perf_counter()
    pending = []
    for step in range(w.steps):
        batch = w.batch(step)
        losses, correct = w.losses(model, batch)
        with torch.no_grad():
            pending.append(w.per_skill(batch, losses.detach(), correct))
            if step % w.log_every == 0:
                torch.stack(pending).tolist()  # the host reads the buffered per-skill values once per log interval
                pending.clear()
            if step % w.val_every == 0:
                model.eval()
                held_out = w.per_skill(w.eval, *w.losses(model, w.eval)).tolist()  # noqa: F841
                model.train()
        opt.zero_grad()
        w.mean_loss(losses).backward()
        opt.step()
    return time.perf_counter() - start


class _Minimal(L.LightningModule):
    def __init__(self, w: Workload):
        super().__init__()
        self.w = w
        self.model, self.opt = w.model_and_optimizer()

    def training_step(self, step, batch_idx):
        return self.w.mean_loss(self.w.losses(self.model, self.w.batch(batch_idx))[0])

    def configure_optimizers(self):
        return self.opt


class _Steps(torch.utils.data.IterableDataset):
    def __iter__(self):
        return itertools.count()


def lightning_loop(w: Workload) -> float:
    trainer = L.Trainer(max_steps=w.steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    module = _Minimal(w)
    start = time.perf_counter()
    trainer.fit(module, torch.utils.data.DataLoader(_Steps(), batch_size=None))
    return time.perf_counter() - start


def skilltrain_loop(w: Workload, extra: list[str]) -> float:
    """Training-loop seconds, from the run's summary.json."""
    from skilltrain.run import fit

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config([f"recipe={w.recipe}", f"trainer.max_steps={w.steps}", f"out_dir={tmp}/run",
                           "logger.wandb.mode=disabled", "trainer.accelerator=cpu", *extra])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fit(cfg)
        return json.loads((Path(tmp) / "run" / "summary.json").read_text())["wall_seconds"]


def ratio(a: list[float], b: list[float]) -> dict:
    r = sorted(x / y for x, y in zip(a, b))
    q = statistics.quantiles(r, n=4)
    return {"median": round(statistics.median(r), 3), "iqr": [round(q[0], 3), round(q[2], 3)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(STEPS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every loop (default 1)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tune_cpu_allocator()  # fit() applies it; apply it to the other loops too, so that they compare like with like
    torch.set_num_threads(args.threads)
    has_threads = "threads" in load_config(["recipe=compositional"]).trainer
    extra = [f"trainer.threads={args.threads}"] if has_threads else []
    print(f"skilltrain {getattr(skilltrain, '__version__', '?')} from {Path(skilltrain.__file__).parent} · "
          f"{args.threads} thread(s) · {args.repeats} alternating repeats")
    results = {}
    for name in args.workloads.split(","):
        w = Workload(name, STEPS[name])
        quiet = contextlib.ExitStack()  # Lightning's own start-up lines
        quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
        quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
        with quiet:
            warm = Workload(name, 10)
            plain_loop(warm), lightning_loop(warm), skilltrain_loop(warm, extra)  # imports, allocator, first calls
            times: dict[str, list[float]] = {"plain": [], "lightning": [], "skilltrain": []}
            for _ in range(args.repeats):
                times["plain"].append(plain_loop(w))
                times["lightning"].append(lightning_loop(w))
                times["skilltrain"].append(skilltrain_loop(w, extra))
        ms = {k: round(1000 * statistics.median(v) / w.steps, 2) for k, v in times.items()}
        row = {"steps": w.steps, "ms_per_step": ms, "skilltrain/plain": ratio(times["skilltrain"], times["plain"]),
               "lightning/plain": ratio(times["lightning"], times["plain"]),
               "skilltrain/lightning": ratio(times["skilltrain"], times["lightning"])}
        results[name] = row
        print(f"{name} ({w.steps} steps): plain {ms['plain']} ms/step, lightning {ms['lightning']}, "
              f"skilltrain {ms['skilltrain']}", flush=True)
        for key in ("skilltrain/plain", "lightning/plain", "skilltrain/lightning"):
            r = row[key]
            print(f"  {key:<21} {r['median']:.3f}  (IQR {r['iqr'][0]:.3f}–{r['iqr'][1]:.3f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
