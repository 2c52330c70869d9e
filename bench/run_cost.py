"""Where a run's time goes: one comparison run's `fit`, phase by phase, and a comparison's own start and end.

    python bench/run_cost.py [--recipe domino_2task] [--repeats 3] [--wandb disabled|offline] [--out FILE] [key=value …]

(key=value: overrides for every run, as `compare` takes them, e.g. trainer.max_steps=60.)

For each W&B mode (default: both, one column each) a fresh process (the comparison's worker environment: its thread
count) plans a one-arm comparison of the recipe as `compare` does (each run ends `stop.patience` steps after its
last skill is learned) and fits its runs one after another in-process, as a worker does: the first run (first-time
costs: W&B's first start, first Trainer, caches) apart from the `--repeats` warm ones. Each fit's wall time is split
into phases through public surfaces: a Lightning callback passed to `skilltrain.run.fit` marks set-up, training
steps, evaluation and teardown; public functions are wrapped for the measurement (skilltrain.run.build_run, the
Trainer's construction and save_checkpoint, skilltrain.loggers.start_wandb and the loggers' writes, the W&B run's
finish, skilltrain.report.build_summary / print_table / plot_curves). Every moment of the run is charged to exactly
one phase, so the phases add up to the run's wall time; `other` is what no phase claims (tune_cpu_allocator, the
run directory's checks before the build).

Then the comparison's own costs, in this process as `compare` pays them: planning (make_plan: every run's config
checked), a worker's start-up (launch.Worker: process start to its answer to a first request), its shutdown (idle,
and after a fit), and the statistics, tables and plots (comparison.report.analyse), plus what the start-up is made
of (`python -X importtime`). Absolute times depend on the machine and its load (printed, from os.getloadavg).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

# A fit's phases, in the order a run meets them.
RUN_PHASES = [
    "imports",  # first run only: skilltrain.run (torch, Lightning): a worker pays it at start-up
    "config",  # skilltrain.config.load_config
    "build",  # skilltrain.build.build_run: task, data, model, interventions
    "set-up: Trainer",  # lightning.Trainer(...)
    "set-up: callbacks, loggers, run dir",  # the rest of fit before Lightning's setup hook
    "set-up: Lightning (setup hooks, optimizers)",  # the setup hook to on_train_start
    "W&B start",  # skilltrain.loggers.start_wandb (the first one imports wandb and starts its service)
    "training steps",
    "evaluation",  # on_validation_start to the next training batch
    "checkpoints",  # Trainer.save_checkpoint
    "CSV flush",  # RunCSVLogger.save
    "W&B log",  # WandbLogger.log_metrics
    "summary + Domino",  # build_summary (Domino diagnostics), RunDir.write_summary, print_table
    "plots (curves.png)",  # skilltrain.report.plot_curves
    "W&B finish",  # the W&B run's finish()
    "teardown",  # on_train_end to the end of fit, less the phases above
    "other",
]
COMPARISON_PHASES = ["planning (make_plan)", "worker start-up", "worker shutdown (idle)", "worker shutdown (after a fit)",
                     "statistics + tables", "plots (curves, learn steps, timeline)", "console table"]


class Timeline:
    """Charges every moment between start() and stop() to one phase: the innermost open one (push/pop for wrapped
    calls), or the current one (switch, for Lightning's hooks)."""

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[str] = []
        self.t = 0.0

    @property
    def active(self) -> bool:
        return bool(self.stack)

    def start(self, phase: str) -> None:
        self.totals, self.stack, self.t = defaultdict(float), [phase], time.perf_counter()

    def _charge(self) -> None:
        now = time.perf_counter()
        self.totals[self.stack[-1]] += now - self.t
        self.t = now

    def switch(self, phase: str) -> None:
        if self.active:
            self._charge()
            self.stack[-1] = phase

    def push(self, phase: str) -> None:
        if self.active:
            self._charge()
            self.stack.append(phase)

    def pop(self, then: str | None = None) -> None:
        if self.active:
            self._charge()
            self.stack.pop()
            if then:
                self.stack[-1] = then

    def stop(self) -> dict[str, float]:
        self._charge()
        self.stack = []
        return dict(self.totals)


TIMELINE = Timeline()


def timed(phase: str, function, then: str | None = None):
    """`function`, its calls charged to `phase` (and the enclosing phase becoming `then` once it returns)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        TIMELINE.push(phase)
        try:
            return function(*args, **kwargs)
        finally:
            TIMELINE.pop(then)

    return wrapper


def patch(owner, name: str, phase: str, then: str | None = None) -> None:
    setattr(owner, name, timed(phase, getattr(owner, name), then))


def make_timing_callback():
    import lightning as L

    class PhaseMarks(L.Callback):
        """First among the run's callbacks: each hook marks where a phase begins; it counts the training steps."""

        def __init__(self):
            self.steps = 0

        def setup(self, trainer, pl_module, stage):
            TIMELINE.switch("set-up: Lightning (setup hooks, optimizers)")

        def on_train_start(self, trainer, pl_module):
            TIMELINE.switch("training steps")

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.steps += 1
            TIMELINE.switch("training steps")

        def on_validation_start(self, trainer, pl_module):
            TIMELINE.switch("evaluation")

        def on_train_end(self, trainer, pl_module):
            TIMELINE.switch("teardown")

    return PhaseMarks()


def install_wrappers() -> None:
    """Wrap the public functions whose time is a phase of its own (for this process's measurements only)."""
    import lightning
    import lightning.pytorch.loggers as pl_loggers

    import skilltrain.loggers
    import skilltrain.report
    import skilltrain.run
    from skilltrain.rundir import RunDir

    trainer_class = lightning.Trainer
    patch(skilltrain.run, "build_run", "build", then="set-up: callbacks, loggers, run dir")
    lightning.Trainer = timed("set-up: Trainer", trainer_class)  # run.py builds it as L.Trainer(...)
    patch(trainer_class, "save_checkpoint", "checkpoints")
    patch(skilltrain.loggers.RunCSVLogger, "save", "CSV flush")
    patch(pl_loggers.WandbLogger, "log_metrics", "W&B log")
    patch(skilltrain.report, "build_summary", "summary + Domino")
    patch(skilltrain.report, "print_table", "summary + Domino")
    patch(RunDir, "write_summary", "summary + Domino")
    patch(skilltrain.report, "plot_curves", "plots (curves.png)")
    start_wandb = skilltrain.loggers.start_wandb
    finish_wrapped: set = set()

    def start_and_wrap_finish(*args, **kwargs):
        logger = timed("W&B start", start_wandb)(*args, **kwargs)
        run_class = type(logger.experiment) if logger is not None else None
        if run_class is not None and run_class not in finish_wrapped:  # wandb is imported by the first start
            patch(run_class, "finish", "W&B finish")
            finish_wrapped.add(run_class)
        return logger

    skilltrain.loggers.start_wandb = start_and_wrap_finish


def fit_phases(args: list[str]) -> tuple[dict[str, float], float, int]:
    """(seconds per phase, wall time, training steps) of one `fit <args>`, as a worker runs it (the table printed)."""
    from skilltrain.config import load_config
    from skilltrain.run import fit

    marks = make_timing_callback()
    start = time.perf_counter()
    TIMELINE.start("config")
    cfg = load_config(args)
    TIMELINE.switch("other")
    result = fit(cfg, callbacks=[marks], show=True)
    phases = TIMELINE.stop()
    wall = time.perf_counter() - start
    if result is None or result.status != "completed":
        raise SystemExit(f"the run did not complete: {result and result.message}")
    return phases, wall, marks.steps


def child(args) -> None:
    """One W&B mode, in a process of its own: the first run, then the warm ones."""
    runs = json.loads(Path(args.runs).read_text())
    start = time.perf_counter()
    import skilltrain.run  # noqa: F401  (what a worker imports at start-up)

    install_wrappers()
    imports = time.perf_counter() - start
    results = []
    for i, run_args in enumerate(runs):
        phases, wall, steps = fit_phases([*run_args, f"logger.wandb.mode={args.wandb}"])
        if i == 0:
            phases["imports"], wall = imports, wall + imports
        results.append({"phases": phases, "wall": wall, "steps": steps})
        print(f"run {i}: {wall:.2f} s, {steps} steps", file=sys.stderr, flush=True)
    from skilltrain.files import write_json

    write_json(Path(args.out), results)


# ---- the comparison's own costs (this process, as `compare`) -------------------------------------------------------------


def worker_costs(plan, extra_runs: list, log_dir: Path, repeats: int, mode: str) -> dict[str, list[float]]:
    """Start-up (process start to its answer to a first request) and shutdown (Worker.close) of a comparison's worker,
    idle and after one fit."""
    from skilltrain.comparison.launch import Runner, Worker

    env = Runner(plan, show=False).env
    found: dict[str, list[float]] = defaultdict(list)
    for i in range(repeats):
        for after_fit in (False, True):
            log = log_dir / f"worker-{mode}-{i}-{int(after_fit)}.log"
            start = time.perf_counter()
            worker = Worker(env, log)
            code = worker.run(["none"], log)  # an unknown command: answered (exit 2) once the worker reads requests
            found["worker start-up"].append(time.perf_counter() - start)
            if code != 2:
                raise SystemExit(f"the worker did not answer as expected ({code}): {log}")
            if after_fit:
                start = time.perf_counter()
                code = worker.run(["fit", *extra_runs[i], f"logger.wandb.mode={mode}"], log)
                found["fit in a worker (first)"].append(time.perf_counter() - start)
                if code != 0:
                    raise SystemExit(f"the worker's fit failed ({code}): {log}")
            start = time.perf_counter()
            worker.close()
            found[f"worker shutdown ({'after a fit' if after_fit else 'idle'})"].append(time.perf_counter() - start)
    return found


def report_costs(plan, repeats: int) -> dict[str, list[float]]:
    """comparison.report.analyse (statistics, tables, plots) and print_comparison, over the plan's runs."""
    import skilltrain.analysis.plots as plots
    from skilltrain.comparison.report import analyse, print_comparison

    for name in ("curves_by_arm", "learn_step_distributions", "skill_timeline"):
        patch(plots, name, "plots (curves, learn steps, timeline)")
    found: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        TIMELINE.start("statistics + tables")
        result = analyse(plan)
        TIMELINE.switch("console table")
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            print_comparison(result, plan.directory)
        for phase, seconds in TIMELINE.stop().items():
            found[phase].append(seconds)
    return found


def import_breakdown(env: dict) -> dict[str, float]:
    """What a worker's start-up is made of: a bare interpreter, and the cumulative import time of each package the
    worker's imports (skilltrain.run, comparison.plan) pull in, by `python -X importtime`: a package imported by
    skilltrain's or Lightning's modules counts with everything it imports; their own modules' time is what is left."""
    bare = min(_seconds([sys.executable, "-c", "pass"], env) for _ in range(3))
    code = "import skilltrain.run; from skilltrain.comparison.plan import run_in_process"
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True,
                         check=True).stderr
    # Lines come children first: a module at depth d owns the lines at depth d + 1 listed since its last sibling.
    pending: dict[int, list] = defaultdict(list)
    for line in err.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if found:
            depth = (len(found.group(2)) - 1) // 2
            node = (found.group(3), int(found.group(1)) / 1e6, pending.pop(depth + 1, []))
            pending[depth].append(node)
    totals: dict[str, float] = defaultdict(float)
    opened = ("skilltrain", "lightning")  # looked into: what they import is counted by package

    def walk(nodes: list) -> None:
        for name, seconds, children in nodes:
            package = name.split(".")[0]
            if package in opened:
                totals[f"{package}'s own modules"] += seconds - sum(c[1] for c in children)
                walk(children)
            else:  # torch's parts that Lightning imports on top of torch (torch._dynamo) count apart
                totals[f"import {name if package == 'torch' and name.count('.') == 1 else package}"] += seconds

    walk(pending[0])
    biggest = dict(sorted(totals.items(), key=lambda kv: -kv[1])[:8])
    return {"python -c pass": bare, **biggest, "all imports": sum(totals.values())}


def _seconds(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


# ---- orchestration ------------------------------------------------------------------------------------------------


def measure_mode(recipe: str, overrides: list[str], repeats: int, mode: str, work: Path) -> dict:
    from skilltrain.comparison.launch import Runner
    from skilltrain.comparison.plan import Request, make_plan

    n_fits = repeats + 1  # the first run, then the warm ones
    start = time.perf_counter()
    plan = make_plan(Request(recipe, ["baseline"], list(range(n_fits + repeats)), overrides,
                             settings={"out_dir": str(work / f"compare-{mode}")}))
    planning = time.perf_counter() - start
    in_process, in_workers = plan.runs[:n_fits], plan.runs[n_fits:]
    runs_file, out_file = work / f"runs-{mode}.json", work / f"fits-{mode}.json"
    runs_file.write_text(json.dumps([run.args for run in in_process]))
    log = work / f"fits-{mode}.log"
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, __file__, "--child", "--runs", str(runs_file), "--wandb", mode,
                               "--out", str(out_file)], stdout=out, stderr=subprocess.STDOUT,
                              env=Runner(plan, show=False).env)
    if done.returncode != 0:
        sys.exit(f"the fits ({mode}) failed:\n" + "\n".join(log.read_text().splitlines()[-15:]))
    fits = json.loads(out_file.read_text())
    comparison = {"planning (make_plan)": [planning]}
    comparison.update(worker_costs(plan, [run.args for run in in_workers], work, repeats, mode))
    comparison.update(report_costs(plan, repeats))
    return {"fits": fits, "comparison": comparison, "runs_in_comparison": len(plan.runs)}


def summarise(measured: dict) -> dict:
    first, warm = measured["fits"][0], measured["fits"][1:]

    def row(fit: dict) -> dict:
        phases = {p: fit["phases"].get(p, 0.0) for p in RUN_PHASES}
        phases["other"] += fit["wall"] - sum(fit["phases"].values())  # rounding: the phases cover the wall time
        return phases

    warm_rows = [row(f) for f in warm]
    return {
        "first_run": {"phases": row(first), "total": first["wall"], "steps": first["steps"]},
        "warm_runs": {"phases": {p: statistics.median(r[p] for r in warm_rows) for p in RUN_PHASES},
                      "total": statistics.median(f["wall"] for f in warm),
                      "steps": statistics.median(f["steps"] for f in warm),
                      "each": [{"phases": r, "total": f["wall"], "steps": f["steps"]} for r, f in zip(warm_rows, warm)]},
        "comparison": {k: {"median": statistics.median(v), "each": v} for k, v in measured["comparison"].items()},
        "runs_in_comparison": measured["runs_in_comparison"],
    }


def print_tables(results: dict, modes: list[str]) -> None:
    head = " | ".join(f"{m}: first run | {m}: warm (median) | share" for m in modes)
    print(f"\n| phase | {head} |\n|---|" + "---|---|---|" * len(modes))
    for phase in [*RUN_PHASES, "total"]:
        cells = []
        for m in modes:
            first, warm = results[m]["first_run"], results[m]["warm_runs"]
            f = first["total"] if phase == "total" else first["phases"][phase]
            w = warm["total"] if phase == "total" else warm["phases"][phase]
            cells.append(f"{f:.3f} | {w:.3f} | {100 * w / warm['total']:.1f}%")
        print(f"| {phase} | {' | '.join(cells)} |")
    steps = " · ".join(f"{m}: {results[m]['warm_runs']['steps']:.0f} steps, "
                       f"{1000 * results[m]['warm_runs']['phases']['training steps'] / results[m]['warm_runs']['steps']:.2f} "
                       f"ms/step" for m in modes)
    print(f"\nwarm runs: {steps}")
    print(f"\n| comparison phase | {' | '.join(f'{m}: median s' for m in modes)} |\n|---|" + "---|" * len(modes))
    keys = list(dict.fromkeys(k for m in modes for k in results[m]["comparison"]))
    for key in keys:
        cells = [f"{results[m]['comparison'][key]['median']:.3f}" if key in results[m]["comparison"] else "—"
                 for m in modes]
        print(f"| {key} | {' | '.join(cells)} |")
    print(f"\n(planning checks the configs of all {results[modes[0]]['runs_in_comparison']} runs of the plan)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="domino_2task")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wandb", choices=("disabled", "offline"), default=None, help="default: both")
    parser.add_argument("--out", default=None, help="write the results as JSON")
    parser.add_argument("overrides", nargs="*", help="key=value for every run (as compare takes them)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.repeats < 1:
        parser.error("--repeats must be ≥ 1")
    modes = [args.wandb] if args.wandb else ["disabled", "offline"]
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} "
          f"({os.cpu_count()} CPUs) · recipe {args.recipe} · {args.repeats} warm repeats", flush=True)
    work = Path(tempfile.mkdtemp(prefix="run_cost-"))
    try:
        results = {m: summarise(measure_mode(args.recipe, args.overrides, args.repeats, m, work)) for m in modes}
        breakdown = import_breakdown({**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    print_tables(results, modes)
    print("\nworker start-up, what it is made of (python -X importtime, cumulative per top-level package):")
    for key, seconds in breakdown.items():
        print(f"  {key:28s} {seconds:.3f} s")
    print(f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    if args.out:
        from skilltrain.files import write_json

        write_json(Path(args.out), {"recipe": args.recipe, "overrides": args.overrides, "repeats": args.repeats,
                                    "cpus": os.cpu_count(), "load_before": list(load_before), "load_after": list(load_after),
                                    "modes": results, "worker_imports": breakdown})


if __name__ == "__main__":
    main()
