"""How well `discover` finds the true skills of recorded runs: ARI per method, with k=auto and with the true k, next
to k-means on the inputs; median and range over the runs given (docs/discovery.md's table).

Each run's affinities are computed once per method, as `python -m skilltrain discover` computes them (gradients of
the checkpoint --ckpt over every parameter or those of --params, loss curves, their product), then clustered with
k=auto and with k = the number of true skills. Run it on runs trained with discover.record=true, e.g.

    python -m skilltrain fit recipe=multitask_parity discover.record=true checkpoint.at_learn_steps=true seed=1 \
        stop.when_all_learned=true out_dir=runs/mtp1
    python bench/discover_ari.py runs/mtp1 runs/mtp2 runs/mtp3 runs/mtp4 runs/mtp5 [--n 500] [--ckpt median]

--ckpt median: the learn-step checkpoint of the skill learned at the median of the run's learn order (its summary's
learn_order; about half the skills learned), needs checkpoint.at_learn_steps=true. --angular: Michaud et al.'s
angular similarity 1 − arccos(cos θ)/π instead of |cos θ|.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import warnings

import numpy as np
import torch

from skilltrain.analysis import discovery as D
from skilltrain.analysis.representations import load_run


def median_checkpoint(run_dir: str) -> str:
    """learned-<skill> of the skill at the median of the run's learn order (about half the skills learned)."""
    order = json.load(open(f"{run_dir}/summary.json"))["learn_order"]
    return f"learned-{order[(len(order) - 1) // 2]}"


def angular_affinity(features: torch.Tensor) -> np.ndarray:
    """Michaud et al.'s 1 − arccos(cos θ)/π between the rows of `features`."""
    g = torch.nn.functional.normalize(features.double(), dim=1)
    return (1 - torch.arccos((g @ g.T).clamp(-1, 1)) / math.pi).numpy()


def measure(run_dir: str, n: int | None = None, seed: int = 0, ckpt: str = "last", params: list[str] | None = None,
            angular: bool = False, methods: tuple[str, ...] = ("gradients", "loss_curves", "both")) -> dict:
    probe, steps, losses = D.read_recording(run_dir)
    if n is not None:  # the first n probe samples (a random subset: the probe is drawn at random)
        probe = {k: v[:n] if k != "skill_names" else v for k, v in probe.items()}
        losses = losses[:, :n]
    truth = probe["skill"].numpy()
    k_true = len(probe["skill_names"])
    checkpoint = median_checkpoint(run_dir) if ckpt == "median" else ckpt
    features = D.per_sample_gradients(load_run(run_dir, checkpoint), probe, params)
    gradients = angular_affinity(features) if angular else D.gradient_affinity(features)
    curves = D.curve_affinity(losses)
    out = {}
    affinities = {"gradients": lambda: gradients, "loss_curves": lambda: curves, "both": lambda: gradients * curves}
    for method in methods:
        affinity = affinities[method]()
        auto = D.choose_k(affinity)
        out[f"{method} k=auto"] = {**D.scores(truth, D.spectral_clusters(affinity, auto["k"], seed)), "k": auto["k"],
                                   "gap_ratio": auto["gap_ratio"]}
        out[f"{method} k=true"] = {**D.scores(truth, D.spectral_clusters(affinity, k_true, seed)), "k": k_true}
    for k in sorted({v["k"] for v in out.values()}):
        out[f"inputs k-means k={k}"] = {**D.scores(truth, D.input_clusters(probe["x"], k, seed)), "k": k}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--n", type=int, default=None, help="use only the first n probe samples (faster)")
    parser.add_argument("--ckpt", default="last", help="last, learned-<skill> or median (see above)")
    parser.add_argument("--params", default=None, help="comma-separated parameter names or prefixes (default: all)")
    parser.add_argument("--angular", action="store_true", help="Michaud's angular similarity instead of |cos|")
    parser.add_argument("--methods", default="gradients,loss_curves,both", help="comma-separated methods to score")
    parser.add_argument("--json", default=None, help="also write every run's numbers here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    results = {}
    for run in args.runs:
        params = args.params.split(",") if args.params else None
        results[run] = measure(run, args.n, ckpt=args.ckpt, params=params, angular=args.angular,
                               methods=args.methods.split(","))
        print(run, json.dumps({k: round(v["ari"], 3) for k, v in results[run].items()}), flush=True)
    rows = sorted({k for r in results.values() for k in r if "k-means" not in k})
    print(f"\n{'method':24} {'k found (per run)':22} {'ARI median [min, max]':24} k-means on inputs, same k: ARI median")
    for row in rows:
        found = [r[row] for r in results.values() if row in r]
        aris = [f["ari"] for f in found]
        base = [r[f"inputs k-means k={f['k']}"]["ari"] for r, f in zip(results.values(), found)]
        print(f"{row:24} {str([f['k'] for f in found]):22} {statistics.median(aris):.3f} [{min(aris):.3f}, {max(aris):.3f}]"
              f"      {statistics.median(base):.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
