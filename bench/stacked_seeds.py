"""Seeds trained stacked (compare.stack_seeds=true, skilltrain.stacking) against the same seeds one after another.

For each workload, S seeds of `fit recipe=<workload>` train a fixed number of steps (no early stop, W&B off, CSV
log, evaluations and checkpoints as the recipe sets them), in this one process: once through `fit_stacked` (one
thread per seed, one vmapped forward and backward pass for all), once as S `fit`s one after another; the two
alternate over the repeats so that machine noise hits both alike. The result is the ratio of seed-steps per second,
stacked over one after another (> 1: stacking pays), median over repeats, with the absolute times as context.

On a CPU the workloads are the README's: compositional and domino_2task (full batches of 8,000 and 10,000 rows),
multitask_parity (a stream of 2,048) and the same with batches of 128 (where launch overhead dominates). With a
CUDA GPU (`--accelerator gpu`, the default when one is there) the same, and a 10-seed multitask_parity.

    python bench/stacked_seeds.py [--seeds 5] [--steps 200] [--repeats 3] [--accelerator cpu|gpu]
                                  [--workloads domino_2task,compositional,multitask_parity,multitask_parity_b128]
                                  [--json results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("WANDB_MODE", "disabled")

WORKLOADS = {
    "domino_2task": ["recipe=domino_2task"],
    "compositional": ["recipe=compositional"],
    "multitask_parity": ["recipe=multitask_parity"],
    "multitask_parity_b128": ["recipe=multitask_parity", "data.batch_size=128"],
}


def _configs(workload: str, seeds: list[int], steps: int, accelerator: str, root: str, tag: str) -> list:
    from skilltrain.config import load_config

    return [load_config([*WORKLOADS[workload], f"seed={s}", f"trainer.max_steps={steps}", "stop.when_all_learned=false",
                         f"trainer.accelerator={accelerator}", "trainer.enable_progress_bar=false",
                         "logger.wandb.mode=disabled", "analysis.plots=none", f"out_dir={root}/{tag}-seed{s}"])
            for s in seeds]


def _time(stacked: bool, workload: str, seeds: list[int], steps: int, accelerator: str) -> float:
    from skilltrain.run import fit
    from skilltrain.stacking import fit_stacked

    root = tempfile.mkdtemp(prefix="stacked-")
    try:
        cfgs = _configs(workload, seeds, steps, accelerator, root, "stacked" if stacked else "alone")
        with contextlib.redirect_stdout(io.StringIO()):
            start = time.perf_counter()
            if stacked:
                results = fit_stacked(cfgs)
                bad = [r for r in results if isinstance(r, BaseException)]
                if bad:
                    raise bad[0]
            else:
                for cfg in cfgs:
                    fit(cfg, show=False)
            return time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accelerator", default="gpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--json")
    args = parser.parse_args()
    plan = [(w, args.seeds) for w in args.workloads.split(",")]
    if args.accelerator == "gpu":
        plan.append(("multitask_parity", 10))
    print(f"load before: {os.getloadavg()[0]:.2f} · {args.accelerator} · {args.steps} steps · {args.repeats} repeats",
          flush=True)
    rows = []
    for workload, n in plan:
        seeds = list(range(1, n + 1))
        _time(True, workload, seeds[:2], 5, args.accelerator)  # warm: imports, allocator, kernels
        times = {True: [], False: []}
        for r in range(args.repeats):
            for stacked in ((True, False) if r % 2 == 0 else (False, True)):
                times[stacked].append(_time(stacked, workload, seeds, args.steps, args.accelerator))
        ratio = statistics.median(a / s for a, s in zip(times[False], times[True]))
        row = {"workload": workload, "seeds": n, "steps": args.steps, "accelerator": args.accelerator,
               "stacked_s": statistics.median(times[True]), "alone_s": statistics.median(times[False]),
               "speedup": ratio}
        rows.append(row)
        print(f"{workload:24s} {n:2d} seeds: stacked {row['stacked_s']:7.1f} s · one after another "
              f"{row['alone_s']:7.1f} s · stacked/alone throughput {ratio:.2f}×", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "torch": torch.__version__}, f, indent=1, allow_nan=False)


if __name__ == "__main__":
    main()
