"""Cost of each intervention mode, as the ratio of its training-loop time to the baseline's, measured side by side.

Every mode trains the same run (multitask_parity: streaming batches of 2,048, an MLP 200 wide) for the same number
of steps in this one process; modes alternate within each repeat so that machine noise hits them alike; the
ratio is the median over repeats of (mode time / baseline time in the same repeat). `grad_norm` needs K extra
backward passes, so it is also measured for K = 2, 4, 8, 16 skills.

    python bench/interventions.py [--steps 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import warnings
from pathlib import Path

from skilltrain.config import load_config
from skilltrain.run import fit

MODES = {
    "skill_reweighting inverse_frequency": ["interventions.skill_reweighting={}"],
    "skill_reweighting self": ["interventions.skill_reweighting.mode=self"],
    "skill_reweighting balanced_sampling": ["interventions.skill_reweighting.mode=balanced_sampling"],
    "skill_reweighting online": ["interventions.skill_reweighting.mode=online"],
    "gradient_rescaling loss_normalize": ["interventions.gradient_rescaling={}"],
    "gradient_rescaling sign": ["interventions.gradient_rescaling.mode=sign"],
    "modular_routing oracle": ["interventions.modular_routing={}"],
    "modular_routing learned": ["interventions.modular_routing.mode=learned"],
    "gradient_rescaling grad_norm": ["interventions.gradient_rescaling.mode=grad_norm"],
}


def train_seconds(steps: int, *args: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(["recipe=multitask_parity", f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}",
                           "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled", f"out_dir={tmp}/run", *args])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fit(cfg)
        return json.loads((Path(tmp) / "run/summary.json").read_text())["wall_seconds"]


def ratios(steps: int, repeats: int, arms: dict[str, list[str]], common: list[str]) -> dict[str, tuple[float, float]]:
    """{arm: (median ratio to baseline, median baseline seconds)}."""
    times: dict[str, list[float]] = {"baseline": [], **{a: [] for a in arms}}
    for _ in range(repeats):
        times["baseline"].append(train_seconds(steps, *common))
        for arm, extra in arms.items():
            times[arm].append(train_seconds(steps, *common, *extra))
    base = times["baseline"]
    return {a: (statistics.median(t / b for t, b in zip(ts, base)), statistics.median(base)) for a, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    train_seconds(20)  # warm-up
    print(f"multitask_parity, {args.steps} steps, batch 2048, {args.repeats} alternating repeats")
    print("\nper mode, 10 skills (ratio of training-loop time to the baseline's):")
    for arm, (ratio, base) in ratios(args.steps, args.repeats, MODES, ["data.n_tasks=10"]).items():
        context = f"   (baseline {1000 * base / args.steps:.1f} ms/step)" if arm == "baseline" else ""
        print(f"  {arm:<38} {ratio:5.2f}×{context}")
    print("\ngrad_norm against the number of skills K:")
    for k in (2, 4, 8, 16):
        result = ratios(args.steps, args.repeats, {"grad_norm": MODES["gradient_rescaling grad_norm"]},
                        [f"data.n_tasks={k}"])
        print(f"  K = {k:>2}: {result['grad_norm'][0]:5.2f}×")


if __name__ == "__main__":
    main()
