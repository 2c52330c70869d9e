"""Cost of `discover.record=true` per training step: the probe set's per-sample losses at every logged step.

Each workload trains the same steps with recording off and on, alternating repeats so that machine noise hits both
alike; the ratio is of the training loop's time (summary.json's wall_seconds), median over repeats. Note the machine
load (`uptime`) beside the numbers: on a shared machine the ratios move by a few percent from run to run.

Workloads: the README's control-form recipes (compositional is of the outputs form, where recording is refused):
multitask_parity (MLP 42-200-2, batches of 2,048) and multitask_parity_transformer (token form, batches of 512),
with the default probe of 2,000 samples recorded every trainer.log_every_n_steps=10 steps.

    python bench/discover.py [--workloads multitask_parity,multitask_parity_transformer] [--steps 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import warnings
from pathlib import Path

from skilltrain.config import load_config
from skilltrain.run import fit


def train_seconds(recipe: str, steps: int, record: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config([f"recipe={recipe}", f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}",
                           "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled", f"out_dir={tmp}/run",
                           f"discover.record={str(record).lower()}"])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fit(cfg)
        return json.loads((Path(tmp) / "run/summary.json").read_text())["wall_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="multitask_parity,multitask_parity_transformer")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min)")
    for recipe in args.workloads.split(","):
        train_seconds(recipe, 20, True)  # warm-up
        off, on = [], []
        for _ in range(args.repeats):
            off.append(train_seconds(recipe, args.steps, False))
            on.append(train_seconds(recipe, args.steps, True))
        ratio = statistics.median(b / a for a, b in zip(off, on))
        print(f"{recipe}: {args.steps} steps, recording off {1000 * statistics.median(off) / args.steps:.1f} ms/step, "
              f"on {1000 * statistics.median(on) / args.steps:.1f} ms/step: ratio {ratio:.3f} "
              f"(median of {args.repeats} alternating repeats)")
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
