"""The GPU path: steps/s and tokens/s, bf16 and torch.compile, and what a training step synchronises.

    python bench/gpu.py [--steps 400] [--out results.json] [--workloads NAME,…] [--syncs-only]   (on a CUDA GPU)
    python bench/gpu.py --cpu --steps 40                                 (a smoke test of this script)

In one process (imports paid once), through skilltrain.fit with `presets=[gpu]`:
- throughput, timed over the steps after a warm-up (`--steps` / 4 steps; torch.compile's compilation falls there), with
  the GPU synchronised at both ends: the main job (compositional: an MLP 32-50-3 in float64, full batch of 8,000),
  multitask_parity (an MLP 42-200-2, batches of 2,048), multitask_parity_transformer (2 layers of width 64, batches
  of 512 sequences of 13 tokens) and the same with 6 layers of width 512, in float32 (`trainer.precision=32-true`),
  bf16-mixed (the preset) and bf16-mixed with `model.compile=true`; rows and tokens per step are read off the
  batches themselves;
- host synchronisation: CUDA's sync debug mode counts every operation that waits for the GPU during the steps
  between two logging boundaries (steps 11-18, logs every 10 steps), for the baseline and three intervention
  families; skilltrain's own code should cause none (tests/e2e/test_lean_step.py checks that on the CPU).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import tempfile
import time
import traceback
import warnings

import lightning as L
import torch

import skilltrain


class Timer(L.Callback):
    """Seconds over steps [start, end), the GPU synchronised at both ends."""

    def __init__(self, start: int, end: int):
        self.start, self.end, self.seconds = start, end, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        x = batch["x"]  # the batch as the model sees it: rows, and tokens per row for token inputs
        self.rows, self.tokens = x.shape[0], (x.shape[1] if not x.is_floating_point() else 1)
        if trainer.global_step == self.start:
            torch.cuda.synchronize()
            self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.end:
            torch.cuda.synchronize()
            self.seconds = time.perf_counter() - self._t


class SyncCount(L.Callback):
    """Operations that wait for the GPU between the ends of steps `first - 1` and `last` (CUDA's sync debug mode),
    each with the innermost frames of the Python code that caused it."""

    def __init__(self, first: int, last: int):
        self.first, self.last, self.syncs, self._catch = first, last, [], None

    def _record(self, message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message) and "prototype" not in str(message):
            frames = [f for f in traceback.extract_stack()[:-1] if "warnings" not in f.filename]
            self.syncs.append(" < ".join(f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                                         for f in reversed(frames[-4:])))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step == self.first:
            self._catch = warnings.catch_warnings()
            self._catch.__enter__()
            warnings.simplefilter("always")
            warnings.showwarning = self._record
            torch.cuda.set_sync_debug_mode("warn")
        elif step == self.last + 1 and self._catch is not None:
            torch.cuda.set_sync_debug_mode("default")
            self._catch.__exit__(None, None, None)
            self._catch = None


DEVICE = ["presets=[gpu]"]


def fit(recipe: str, overrides: list[str], callbacks: list) -> dict:
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        run = skilltrain.fit(recipe, [*DEVICE, "logger.wandb.mode=disabled", "trainer.enable_progress_bar=false",
                                      "logger.csv=false", f"out_dir={tmp}/run", *overrides], callbacks=callbacks, show=False)
    return run.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", default=None)
    parser.add_argument("--syncs-only", action="store_true", help="skip the throughput part")
    parser.add_argument("--workloads", default=None, help="comma-separated names of the throughput workloads to run")
    parser.add_argument("--cpu", action="store_true", help="a smoke test of this script on the CPU (no GPU numbers)")
    args = parser.parse_args()
    if args.cpu:
        global DEVICE
        DEVICE = ["trainer.accelerator=cpu"]
        torch.cuda.synchronize = lambda: None
        torch.cuda.get_device_name = lambda: "cpu"
        torch.cuda.is_bf16_supported = lambda: False
        torch.cuda.set_sync_debug_mode = lambda mode: None
    else:
        assert torch.cuda.is_available(), "bench/gpu.py needs a CUDA GPU"
    results = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "throughput": {}, "syncs": {}}
    print(f"{results['gpu']} · torch {torch.__version__} · bf16 {torch.cuda.is_bf16_supported()}", flush=True)
    warm, steps = args.steps // 4, args.steps
    workloads = {
        "compositional (main job)": ("compositional", []),
        "multitask_parity": ("multitask_parity", ["metric.split=train"]),
        "multitask_parity_transformer": ("multitask_parity_transformer", []),
        "transformer, depth 6, width 512": ("multitask_parity_transformer", ["model.depth=6", "model.width=512",
                                                                              "model.heads=8"]),
    }
    if args.workloads:
        workloads = {k: v for k, v in workloads.items() if k in args.workloads.split(",")}
    variants = {"32-true": ["trainer.precision=32-true"], "bf16-mixed": [], "bf16-mixed + compile": ["model.compile=true"]}
    for name, (recipe, extra) in ({} if args.syncs_only else workloads).items():
        for variant, overrides in variants.items():
            if recipe == "compositional" and variant != "bf16-mixed":
                continue  # float64: precision does not apply; one row
            timer = Timer(warm, steps)
            summary = fit(recipe, [f"trainer.max_steps={steps + 1}", "trainer.val_check_interval=100000", *extra,
                                   *overrides], [timer])
            per_second, rows, tokens = (steps - warm) / timer.seconds, timer.rows, timer.tokens
            row = {"steps_per_s": round(per_second, 1), "samples_per_s": round(per_second * rows),
                   "tokens_per_s": round(per_second * rows * tokens) if tokens > 1 else None,
                   "learned": sum(s["learned_step"] is not None for s in summary["skills"].values())}
            results["throughput"][f"{name} · {variant}"] = row
            print(f"{name:30s} {variant:22s} {row['steps_per_s']:8.1f} steps/s  {row['samples_per_s']:>12,} samples/s"
                  + (f"  {row['tokens_per_s']:>14,} tokens/s" if row["tokens_per_s"] else ""), flush=True)
    for arm, overrides in {"baseline": [], "loss_normalize": ["interventions.gradient_rescaling={}"],
                           "online_eg": ["interventions.skill_reweighting.mode=online"],
                           "sign": ["interventions.gradient_rescaling.mode=sign"]}.items():
        counter = SyncCount(11, 18)
        fit("multitask_parity", ["trainer.max_steps=30", "trainer.log_every_n_steps=10", "trainer.val_check_interval=1000",
                                 "trainer.precision=32-true", *overrides], [counter])
        results["syncs"][arm] = counter.syncs
        print(f"syncs in steps 11-18, {arm}: {len(counter.syncs)}", flush=True)
        for where, count in collections.Counter(counter.syncs).most_common():
            print(f"  {count:3d} × {where}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
