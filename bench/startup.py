"""Start-up cost of `import skilltrain` and of `python -m skilltrain list` (wall time of a fresh process).

    python bench/startup.py [--repeats 7] [--baseline-pythonpath DIR]

Each command runs in a fresh interpreter (a cold start for Python's own caches, a warm one for the OS file cache:
the first repeat of each is dropped). With `--baseline-pythonpath`, a second tree (e.g. an older checkout laid out
as an importable `skilltrain` package) runs the same commands alternately with this one, and the table shows both
and their ratio. Absolute times depend on the machine and its load: read the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import skilltrain": ["-c", "import skilltrain"],
    "skilltrain list": ["-m", "skilltrain", "list"],
    "import skilltrain.module": ["-c", "import skilltrain.module"],  # what a fit pays before training: torch, Lightning
}


def timed(args: list[str], pythonpath: str | None) -> float:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, *filter(None, [env.get("PYTHONPATH")])])
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline-pythonpath", default=None)
    args = parser.parse_args()
    trees = {"this tree": None, **({"baseline": args.baseline_pythonpath} if args.baseline_pythonpath else {})}
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    for name, command in COMMANDS.items():
        times: dict[str, list[float]] = {tree: [] for tree in trees}
        for _ in range(args.repeats + 1):
            for tree, path in trees.items():  # alternating: load changes hit both alike
                times[tree].append(timed(command, path))
        medians = {tree: statistics.median(t[1:]) for tree, t in times.items()}
        line = " · ".join(f"{tree} {m:.2f} s (IQR {_iqr(times[tree][1:])})" for tree, m in medians.items())
        if "baseline" in medians:
            line += f" · this / baseline = {medians['this tree'] / medians['baseline']:.2f}"
        print(f"{name:26s} {line}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _iqr(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"{q[0]:.2f}–{q[2]:.2f}"


if __name__ == "__main__":
    main()
