"""End to end, labels hidden: how much of online EG's speedup on multitask_parity survives when it mixes over the
skills `discover` found instead of the true ones (docs/discovery.md, "End to end").

    python bench/discover_end_to_end.py --out runs/e2e            # everything, from scratch (resumable)

1. `export-data`: multitask_parity (--tasks tasks, 10 by default) as a fixed table of --pool training rows
   (+ 1,000 held-out rows per task): the data every run below trains on.
2. Per seed s, the baseline run, which is also the recording: `fit` on the table with no intervention,
   discover.record=true, the whole pool as the probe (discover.n_samples=--pool; losses recorded every 50 steps).
   Nothing in it reads the skill column but its logs: a run without interventions draws the same batches whatever
   the skills are, and the recording only evaluates the probe (no gradient, no random draw).
3. Per seed s, discovery from the recorded loss curves alone (`method=loss_curves`, as `discover` computes it):
   spectral clustering of the first --n-fit probe samples (a random subset of the pool), with k=auto and with
   k = the true number of tasks (given); every other row joins the cluster whose mean z-scored curve is nearest. Written as
   `found<s>`: the table's rows in their order, with the true `skill` column and the discovered `found_auto`,
   `found_k` columns (so a run on found<s> without intervention draws exactly the baseline's batches).
4. Per seed s, on found<s>: online EG over the true skills, and online EG over the discovered clusters
   (data.mix_column=found_auto / found_k). Every run is scored on the true tasks: its skills are the skill column's
   (held-out accuracy ≥ 0.9 learns a task), whatever it mixes over. Seeds run --jobs at a time, each seed's runs one
   after another as soon as its discovery is done.
5. The statistics `compare` reports (`skilltrain.analysis.stats.compare_arms`: per arm the median steps until every
   skill is learned, and the paired median speedup with its exact interval) over these runs' summaries, against
   the baseline and against online EG on the true skills.

Printed at the end: each seed's ARI against the true tasks, and each arm's steps until every true task is learned and
paired speedups (baseline steps / arm steps) over the baseline and over online EG on the true skills.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from skilltrain.analysis import discovery as D

EG = ["interventions.skill_reweighting.mode=online", "interventions.skill_reweighting.algorithm=eg"]
ARMS = {"online_eg_true": EG,
        "online_eg_found_k": [*EG, "data.mix_column=found_k"],
        "online_eg_found_auto": [*EG, "data.mix_column=found_auto"]}
COMMON = ["recipe=hf_example", "data.batch_size=2048", "trainer.max_steps=12000", "trainer.val_check_interval=50"]


def run(cmd: list[str]) -> None:
    print("$", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def zscored(losses: torch.Tensor) -> torch.Tensor:
    """Per-sample curves ([T, n] → [n, T]) z-scored as `curve_affinity` does: what remains is when they fall."""
    curves = losses.double().T
    centred = curves - curves.mean(1, keepdim=True)
    scale = centred.std(1, keepdim=True)
    return torch.where(scale > 1e-12, centred / scale.clamp(min=1e-12), torch.zeros_like(centred))


def cluster_pool(losses: torch.Tensor, steps: list[int], n_fit: int, k: int | str, seed: int) -> tuple[np.ndarray, int]:
    """Cluster ids of every probe sample: spectral clustering of the first n_fit curves (as `discover`), the rest
    assigned to the nearest cluster mean of the z-scored curves; and the k used."""
    fit = losses[:, :n_fit]
    affinity = D.curve_affinity(fit)
    k = D.choose_k(affinity)["k"] if k == "auto" else k
    labels = D.relabel_by_learn_step(D.spectral_clusters(affinity, k, seed), fit.double().numpy(), steps)
    z = zscored(losses)
    centres = torch.stack([z[:n_fit][torch.as_tensor(labels == c)].mean(0) for c in range(k)])
    assigned = torch.cdist(z, centres).argmin(1).numpy()
    assigned[:n_fit] = labels
    return assigned, k


def discover_seed(rec_dir: Path, seed: int, data_dir: Path, target: Path, n_fit: int, k_true: int) -> dict:
    """Cluster seed `seed`'s recorded pool; write the table with the discovered columns to `target`."""
    import datasets

    from skilltrain.data.stream import generator, mix_seed

    probe, steps, losses = D.read_recording(rec_dir)
    truth = probe["skill"].numpy()
    table = datasets.load_from_disk(str(data_dir))
    train = table["train"]
    # probe row i is pool row order[i]: the recording's draw (callbacks/run/discover_recording.py)
    order = torch.randperm(len(train), generator=generator(mix_seed(seed, "discover")))
    assert len(order) == len(truth), "the probe must be the whole pool (discover.n_samples = --pool)"
    pool_x = torch.tensor(train.with_format("numpy")["x"][order.numpy()[:100]])
    assert torch.equal(pool_x.to(probe["x"].dtype), probe["x"][:100]), "probe rows are not the pool rows drawn"
    out = {"n_rows": len(truth), "n_fit": n_fit}
    for name, k in (("found_auto", "auto"), ("found_k", k_true)):
        labels, k_used = cluster_pool(losses, steps, n_fit, k, seed=0)
        out[name] = {"k": k_used, "ari_fit": D.scores(truth[:n_fit], labels[:n_fit])["ari"],
                     "ari_pool": D.scores(truth, labels)["ari"]}
        in_pool_order = np.empty(len(labels), dtype=np.int64)
        in_pool_order[order.numpy()] = labels
        train = train.add_column(name, [f"c{c}" for c in in_pool_order.tolist()])
    datasets.DatasetDict({"train": train, "eval": table["eval"]}).save_to_disk(str(target))
    return out


def summaries(directory: Path) -> dict | None:
    """A run's summary.json (what `compare` reads of a run); None for a run that has not finished (left out)."""
    path = directory / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="working directory (data sets, runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--tasks", type=int, default=10, help="multitask_parity's data.n_tasks")
    parser.add_argument("--pool", type=int, default=100_000, help="training rows of the table")
    parser.add_argument("--n-fit", type=int, default=2000, help="probe samples clustered spectrally")
    parser.add_argument("--jobs", type=int, default=2, help="seeds at a time")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="the online EG arms")
    parser.add_argument("--report", action="store_true", help="only the tables, from the runs already finished")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    if args.report:
        found = {s: json.loads((out / f"found{s}.json").read_text()) for s in args.seeds}
        report(out, args.seeds, args.arms, found)
        return
    out.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "skilltrain"]
    data = out / "mtp"
    if not data.exists():
        run([*py, "export-data", "recipe=multitask_parity", f"data.n_tasks={args.tasks}", f"data.n_samples={args.pool}",
             "data.eval_samples=1000", f"path={data}"])

    def one_seed(s: int) -> dict:
        rec = out / f"rec{s}"
        if not (rec / "summary.json").exists():
            run([*py, "fit", *COMMON, f"data.path={data}", "trainer.log_every_n_steps=50", "discover.record=true",
                 f"discover.n_samples={args.pool}", "stop.when_all_learned=true", f"seed={s}", f"out_dir={rec}"])
        target, record = out / f"found{s}", out / f"found{s}.json"
        if not record.exists():
            print(f"discovering seed {s} …", flush=True)
            record.write_text(json.dumps(discover_seed(rec, s, data, target, args.n_fit, args.tasks), indent=1))
        for arm in args.arms:
            run_dir = out / arm / f"seed{s}"
            if not (run_dir / "summary.json").exists():
                run([*py, "fit", *COMMON, f"data.path={target}", *ARMS[arm], "stop.when_all_learned=true", f"seed={s}",
                     f"out_dir={run_dir}"])
        return json.loads(record.read_text())

    with ThreadPoolExecutor(args.jobs) as pool:
        found = dict(zip(args.seeds, pool.map(one_seed, args.seeds)))
    report(out, args.seeds, args.arms, found)


def report(out: Path, seeds: list[int], arms: list[str], found: dict) -> None:
    from skilltrain.analysis.stats import compare_arms

    print("\nARI of the discovered clusters against the true tasks (the spectrally clustered subset; the whole pool):")
    for name in ("found_auto", "found_k"):
        fit = [found[s][name]["ari_fit"] for s in seeds]
        pool = [found[s][name]["ari_pool"] for s in seeds]
        print(f"  {name}: k {[found[s][name]['k'] for s in seeds]}; ARI subset {statistics.median(fit):.2f} "
              f"[{min(fit):.2f}, {max(fit):.2f}], pool {statistics.median(pool):.2f} [{min(pool):.2f}, {max(pool):.2f}]")
    runs = {"baseline": {s: summaries(out / f"rec{s}") for s in seeds}}
    runs.update({a: {s: summaries(out / a / f"seed{s}") for s in seeds} for a in arms})
    for against in ("baseline", *[a for a in arms if a == "online_eg_true"]):
        others = {a: r for a, r in runs.items() if a not in (against, "baseline")}
        result = compare_arms({against: runs[against], **others}, baseline=against)
        print(f"\nsteps until every true task is learned; paired speedup over {against} (median [interval]):")
        for arm in result["arms"]:
            stats = result["all_learned"][arm]
            line = f"  {arm:22s} median {stats['median']:.0f} (censored {stats['n_censored']})"
            if "speedup" in stats:
                sp = stats["speedup"]
                ci = sp["ci"]
                line += (f"  speedup {sp['median']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] ({sp['ci_level']:.0%})" if ci
                         else f"  speedup {sp['median']:.2f} (no interval: {sp['ci_note']})")
            print(line)
    print("\nper seed, steps until every true task is learned:")
    for s in seeds:
        print(f"  seed {s}: " + ", ".join(f"{a} {runs[a][s]['all_learned_step'] if runs[a][s] else '—'}" for a in runs))


if __name__ == "__main__":
    main()
