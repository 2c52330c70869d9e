"""Steps per second with 1 torch thread against all cores, per workload, on a quiet and on a busy machine.

    python bench/threads.py [--steps 300] [--repeats 3] [--busy] [--only NAME]

Each workload is a real `fit` (through skilltrain.fit, W&B off, no progress display) of a recipe shortened to
`--steps` steps; the thread settings alternate within each repeat, in one process. `--busy` runs a CPU-bound process
per core beside it, as another experiment on a shared machine would. The table gives the median step time of each
setting and the ratio; the work size (parameters × rows, × tokens for token inputs) is what `trainer.threads=auto`
decides by (skilltrain/threads.py).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time

WORKLOADS = {
    "compositional (main job)": ("recipe=compositional",),
    "multitask_parity (stream)": ("recipe=multitask_parity",),
    "grokking (embedding MLP)": ("recipe=grokking",),
    "multitask_parity_transformer": ("recipe=multitask_parity_transformer",),
}
SHORTER = {"multitask_parity_transformer": 3}  # ~25× an MLP's step: --steps / 3 of them (300 took > 10 min busy)


def _spin(stop):
    while not stop.is_set():
        pass


def _work(args: tuple[str, ...]) -> int:
    import skilltrain
    from skilltrain.module import SkillModule

    cfg = skilltrain.load_config(None, [*args, "logger.wandb.mode=disabled"])
    module = SkillModule(__import__("skilltrain.config", fromlist=["to_container"]).to_container(cfg))
    task, data = module.task, cfg.data
    rows = data.batch_size or data.n_samples or 1
    return sum(p.numel() for p in module.parameters()) * rows * (task.seq_len or 1)


def _seconds_per_step(args: tuple[str, ...], threads: int, steps: int) -> float:
    import skilltrain

    with tempfile.TemporaryDirectory() as tmp:
        run = skilltrain.fit(None, [*args, f"trainer.max_steps={steps}", f"trainer.threads={threads}",
                                    "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled", "logger.csv=false",
                                    f"trainer.val_check_interval={steps}", f"out_dir={tmp}/run"], show=False)
        return run.summary["wall_seconds"] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", action="store_true")
    parser.add_argument("--only", default=None, help="one workload's name (default: all)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    stop = mp.Event()
    hogs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(cores if args.busy else 0)]
    for hog in hogs:
        hog.start()
    print(f"{cores} cores · {'busy: one spinning process per core' if args.busy else 'quiet'} · "
          f"load average {os.getloadavg()[0]:.2f}")
    try:
        for name, workload in WORKLOADS.items():
            if args.only and name != args.only:
                continue
            times: dict[int, list[float]] = {1: [], cores: []}
            for _ in range(args.repeats):
                for threads in times:
                    times[threads].append(_seconds_per_step(workload, threads, args.steps // SHORTER.get(name, 1)))
            one, many = (statistics.median(times[t]) for t in (1, cores))
            print(f"{name:32s} work {_work(workload):.1e} · 1 thread {1e3 * one:.2f} ms/step · {cores} threads "
                  f"{1e3 * many:.2f} ms/step · {cores} / 1 = {many / one:.2f}")
    finally:
        stop.set()
        for hog in hogs:
            hog.join(timeout=5)
    time.sleep(0)


if __name__ == "__main__":
    main()
