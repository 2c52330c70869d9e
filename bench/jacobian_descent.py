"""Cost of `jacobian_descent` per aggregator, as ms per training step and the ratio to the baseline's, for K = 2, 3
and 10 skills, measured side by side.

Every arm trains the same run (multitask_parity with K tasks: streaming batches of 2,048, an MLP 200 wide, float32)
for the same number of steps in this one process; arms alternate within each repeat so that machine noise hits them
alike; the ratio is the median over repeats of (arm time / baseline time in the same repeat). Note the machine's load
(`uptime`) beside the numbers.

    python bench/jacobian_descent.py [--steps 200] [--repeats 3] [--skills 2 3 10] [--aggregators upgrad mgda ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import warnings

from interventions import train_seconds  # bench/interventions.py: the same run, timed alike

from skilltrain.callbacks.jacobian_descent import AGGREGATORS


def measure(steps: int, repeats: int, k: int, aggregators: list[str]) -> dict[str, list[float]]:
    """{arm: seconds of each repeat}, arms alternating within a repeat."""
    arms = {"baseline": [], **{a: [f"interventions.jacobian_descent.aggregator={a}"] for a in aggregators}}
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(repeats):
        for arm, extra in arms.items():
            times[arm].append(train_seconds(steps, f"data.n_tasks={k}", *(extra or [])))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skills", type=int, nargs="+", default=[2, 3, 10])
    parser.add_argument("--aggregators", nargs="+", default=list(AGGREGATORS), choices=AGGREGATORS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    train_seconds(20)  # warm-up
    print(f"multitask_parity, {args.steps} steps, batch 2048, {args.repeats} alternating repeats; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {k: measure(args.steps, args.repeats, k, args.aggregators) for k in args.skills}
    print(f"\n| aggregator | {' | '.join(f'K = {k}' for k in args.skills)} |")
    print(f"|---|{'---|' * len(args.skills)}")
    for arm in ["baseline", *args.aggregators]:
        cells = []
        for k in args.skills:
            times = results[k]
            ms = 1000 * statistics.median(times[arm]) / args.steps
            ratio = statistics.median(t / b for t, b in zip(times[arm], times["baseline"]))
            cells.append(f"{ms:.1f} ms" if arm == "baseline" else f"{ms:.1f} ms · {ratio:.2f}×")
        print(f"| {arm} | {' | '.join(cells)} |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
