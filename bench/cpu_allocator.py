"""Effect of skilltrain's glibc malloc tuning (skilltrain/allocator.py) on CPU training speed.

The same plain PyTorch loop (the compositional recipe's model and data: MLP 32-50-3, float64, full batch of 8,000,
Adam) runs in fresh subprocesses with and without the tuning, alternating; the script prints the median ms per
step of each, the minor page faults per step, and their ratio. Subprocesses, because the malloc thresholds are a
property of the process.

    python bench/cpu_allocator.py [--steps 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from skilltrain.allocator import tune_cpu_allocator
if sys.argv[1] == "tuned":
    assert tune_cpu_allocator()
torch.manual_seed(0)
x = torch.randint(0, 2, (8000, 32)).double()
y = torch.stack([x[:, 2] != x[:, 3], x[:, 0] != x[:, 1], x[:, :4].sum(1) % 2 == 1], 1).double()
model = torch.nn.Sequential(torch.nn.Linear(32, 50), torch.nn.ReLU(), torch.nn.Linear(50, 3)).double()
opt = torch.optim.Adam(model.parameters(), 1e-3)
def step():
    loss = ((model(x) - y) ** 2).sum() / len(x)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(20):
    step()
steps = int(sys.argv[2])
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
start = time.perf_counter()
for _ in range(steps):
    step()
print(json.dumps({"ms": 1000 * (time.perf_counter() - start) / steps,
                  "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps}))
"""


def run(kind: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(steps)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {"default": [], "tuned": []}
    for _ in range(args.repeats):
        for kind in results:
            results[kind].append(run(kind, args.steps))
    med = statistics.median
    for kind, rows in results.items():
        print(f"{kind:>8}: {med(r['ms'] for r in rows):6.2f} ms/step, {med(r['faults'] for r in rows):6.0f} page faults/step")
    ratio = med(d["ms"] / t["ms"] for d, t in zip(results["default"], results["tuned"]))
    print(f"default / tuned step time: {ratio:.2f}× (median of {args.repeats} alternating pairs)")


if __name__ == "__main__":
    main()
