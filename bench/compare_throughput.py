"""What a comparison costs: `compare` against the same runs as a plain PyTorch script, one after another.

The comparison: `domino_2task`, arms baseline, inverse_frequency and sign, seeds 1-5 (15 runs), through
`python -m skilltrain compare` as a user runs it (its worker processes, per-skill metrics, learn steps, CSV logs,
checkpoints, statistics, tables and plots), W&B disabled. Timed twice: with the comparison defaults
(`stop.when_all_learned=true`: a run ends `stop.patience` steps after its last skill is learned) and with every run
taking its full budget (`stop.when_all_learned=false`), so that the workers' share and early stopping's share of
the saving are both visible.

The plain script: the same 15 runs in this one process, one after another, each the recipe's math written out
(masked-parity pool of 10,000 rows, MLP 32-50-2 in float64, Adam 1e-3, fresh loss mask every step, inverse-frequency
loss weights or sign gradients for those arms, per-skill train accuracy every step and the learn step from it),
for the recipe's full budget of 1,500 steps, and again stopping 100 steps after its last skill is learned (like
compare's runs); each timed with 1 thread and with torch's default (one per core), the faster counting. Ratios:
full budgets against full budgets, early stopping against early stopping, and compare's defaults against the plain
script without early stopping. Imports are paid before its clock starts; the comparison's clock includes its
process start-ups, because that is what a user waits for.

    python bench/compare_throughput.py [--workers 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from omegaconf import OmegaConf

from skilltrain.config import load_config
from skilltrain.data import build_task
from skilltrain.data.stream import make_pool_and_eval
from skilltrain.models import DTYPES, build_model

ARMS = ("baseline", "inverse_frequency", "sign")
SEEDS = (1, 2, 3, 4, 5)
PATIENCE = 100  # stop.patience's default


def plain_run(arm: str, seed: int, stop_early: bool = False) -> list[int | None]:
    """One run of domino_2task as a plain script: the learn step of each skill (None: not learned). `stop_early`:
    end as compare's runs do, at the first read-back `PATIENCE` steps after the last skill was learned."""
    cfg = load_config(["recipe=domino_2task", f"seed={seed}"])
    task = build_task(OmegaConf.to_object(cfg.data), seed, DTYPES[cfg.model.dtype])
    pool, _ = make_pool_and_eval(task, cfg.data.n_samples, cfg.data.eval_samples, seed)
    torch.manual_seed(seed)
    model = build_model(OmegaConf.to_object(cfg.model), task)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    x, y = pool["x"], pool["y"]
    rates = torch.tensor(task.frequencies, dtype=x.dtype)
    weights = (1 / rates) * rates.sum() / len(rates) if arm == "inverse_frequency" else torch.ones_like(rates)
    g = torch.Generator().manual_seed(seed)
    accuracy, learned = [], [None] * task.n_skills
    for step in range(cfg.trainer.max_steps):
        out = model(x)
        losses = (out - y) ** 2
        mask = torch.rand(losses.shape, generator=g, dtype=x.dtype) < rates
        loss = (losses * mask * weights).sum() / len(x)
        accuracy.append(((out.detach() > 0.5) == (y > 0.5)).double().mean(0))
        if step % cfg.trainer.log_every_n_steps == 0:  # read the buffered values once per log interval
            for i, row in enumerate(torch.stack(accuracy).tolist(), start=step + 1 - len(accuracy)):
                for k, a in enumerate(row):
                    if learned[k] is None and a >= cfg.metric.threshold:
                        learned[k] = i
            accuracy.clear()
            if stop_early and None not in learned and step >= max(learned) + PATIENCE:
                break
        opt.zero_grad()
        loss.backward()
        if arm == "sign":
            for p in model.parameters():
                p.grad.sign_()
        opt.step()
    return learned


def plain_script(stop_early: bool) -> tuple[float, dict]:
    start = time.perf_counter()
    learned = {arm: [plain_run(arm, s, stop_early) for s in SEEDS] for arm in ARMS}
    return time.perf_counter() - start, learned


def comparison(workers: int, early_stop: bool) -> float:
    out = tempfile.mkdtemp(prefix="compare_throughput_")
    cmd = [sys.executable, "-m", "skilltrain", "compare", "recipe=domino_2task", f"seeds={len(SEEDS)}",
           "arms.baseline={}", "arms.inverse_frequency.interventions.skill_reweighting.mode=inverse_frequency",
           "arms.sign.interventions.gradient_rescaling.mode=sign", f"compare.workers={workers}", f"out_dir={out}/cmp",
           "logger.wandb.mode=disabled", f"stop.when_all_learned={str(early_stop).lower()}"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode:
        sys.exit(f"compare failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="alternating repeats of the three timings")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with contextlib.redirect_stderr(io.StringIO()):
        plain_run("baseline", 1)  # warm-up: imports and first calls, outside the clock
    times: dict[str, list[float]] = {"plain": [], "plain_early": [], "compare": [], "compare_full": []}
    for _ in range(args.repeats):
        for key, early in (("plain", False), ("plain_early", True)):
            best = None
            for threads in sorted({1, cores}):  # the plain script at its best: torch's default threads, or one
                torch.set_num_threads(threads)
                seconds, learned = plain_script(early)
                best = seconds if best is None else min(best, seconds)
                print(f"plain script, 15 runs in sequence, {threads} thread(s), "
                      f"{'stopping early' if early else 'full budgets'}: {seconds:.1f} s", flush=True)
            times[key].append(best)
        times["compare"].append(comparison(args.workers, early_stop=True))
        print(f"compare, {args.workers} workers, stop.when_all_learned=true: {times['compare'][-1]:.1f} s", flush=True)
        times["compare_full"].append(comparison(args.workers, early_stop=False))
        print(f"compare, {args.workers} workers, full budgets: {times['compare_full'][-1]:.1f} s", flush=True)
    for arm, runs in learned.items():
        steps = [[r[k] for r in runs] for k in range(2)]
        print(f"  plain script's learn steps, {arm}: " + " · ".join(
            f"skill {k + 1} median {statistics.median([s for s in v if s is not None] or [float('nan')])}"
            f" ({sum(s is None for s in v)} not learned)" for k, v in enumerate(steps)))
    med = statistics.median
    for key, plain, what in (("compare_full", "plain", "both full budgets"),
                             ("compare", "plain_early", "both stopping early (like for like)"),
                             ("compare", "plain", "compare's defaults against a plain script without early stopping")):
        ratios = [c / p for c, p in zip(times[key], times[plain])]
        spread = f" (range {min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""
        print(f"ratio compare / plain script, {what}: {med(ratios):.2f}{spread}")

if __name__ == "__main__":
    main()
