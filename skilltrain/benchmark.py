"""The skill-learning benchmark: every intervention mode (or a given arms set) on every task of a suite, over paired
seeds, through `compare` — and a leaderboard.

    python -m skilltrain benchmark suite=quick [seeds=3] [arms=all_modes] [compare.workers=2] [out_dir=DIR] [key=value …]

A suite (`conf/suites/<name>.yaml`, or a path) names its tasks (a recipe and overrides each), its arms and its seeds.
Each task is one comparison in `<benchmark>/<task>/` (resumable, with the same launchers: warm local workers, or
`compare.launcher=submitit`); runs end once every skill is learned. An arm that cannot run on a task (a data-sampling
arm on a full-batch pool, modules on a transformer) is left out of that task, with the reason, not failed.

`leaderboard.md` / `leaderboard.json`, and `leaderboard.png`:
- per task and arm: the paired speedup in steps to learn every skill (t_baseline / t_arm per seed, median, and the
  comparison's confidence interval with the level it achieves), and how many runs never learned every skill
  (censored at the budget, never dropped); a pair with a time of 0 has no speedup and is left out, as in `compare`;
- per arm: the geometric mean of its per-task median speedups, with a confidence interval whose level is stated
  (`skilltrain.analysis.stats.mean_log_interval`: each task's order-statistic interval at a level whose product over
  the tasks is the nominal 95%, or the product they achieve; "too few seeds for an interval" below 85%, e.g. with 3
  seeds a task); and its cost per step (median seconds per step over the baseline's, same runs).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from skilltrain.comparison.plan import Plan
from skilltrain.config import load_yaml, parse_overrides, require
from skilltrain.files import atomic_write_text, read_json, write_json
from skilltrain.seeds import parse_seeds

BOOTSTRAP = 4000  # unused: intervals are order statistics now (skilltrain.analysis.stats); kept for old imports


@dataclass
class Suite:
    name: str
    arms: object  # an arms file name, a list of arm names, or a mapping (as compare's arms=)
    seeds: int
    tasks: dict[str, dict]  # task → {"recipe": …, "overrides": {key: value}}


def suite_names() -> list[str]:
    folder = resources.files("skilltrain.conf").joinpath("suites")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_suite(name: str) -> Suite:
    from skilltrain.comparison.plan import check_name

    if name in suite_names():
        text, source = resources.files("skilltrain.conf").joinpath("suites", f"{name}.yaml").read_text(), f"suite '{name}'"
    else:
        path = Path(name)
        require(path.is_file(), "suite", f"no suite '{name}' (shipped: {', '.join(suite_names())}; or a path to a YAML file)")
        text, source = path.read_text(), f"suite file {name}"
    raw = OmegaConf.to_container(load_yaml(text, source))
    extra = sorted(set(raw) - {"arms", "seeds", "tasks"})
    require(not extra, f"suite.{extra[0] if extra else ''}", "unknown key (a suite has arms, seeds and tasks)")
    tasks = raw.get("tasks") or {}
    require(isinstance(tasks, dict) and tasks, "suite.tasks", f"{source} names no tasks")
    for task, spec in tasks.items():
        check_name(str(task), "suite.tasks")
        require(isinstance(spec, dict) and isinstance(spec.get("recipe"), str), f"suite.tasks.{task}",
                "expected {recipe: <name>, overrides: {key: value}}")
    seeds = raw.get("seeds", 3)
    require(isinstance(seeds, int) and not isinstance(seeds, bool), "suite.seeds", f"must be a number of seeds ≥ 1, got {seeds}")
    parse_seeds(seeds, "suite.seeds")
    for task, spec in tasks.items():
        require(isinstance(spec.get("overrides") or {}, dict), f"suite.tasks.{task}.overrides",
                "expected a mapping {key: value}")
    return Suite(Path(name).stem, raw.get("arms", "all_modes"), seeds, tasks)


def applicable(args: list[str], arm: str, spec: dict) -> str | None:
    """None when `arm` can run with these arguments (`recipe=…` and overrides); else why not (the intervention's
    one-line refusal). A mistake in the suite or the arm is raised. Kept for old imports: the benchmark's plan asks
    this of the check it plans each arm with (`Request(skip_refused=True)`), loading each config once."""
    from skilltrain.comparison.kinds import FitRuns
    from skilltrain.comparison.plan import arm_arguments

    return FitRuns().check([*args, *arm_arguments(spec), "seed=1"], "", applies=True).refusal


@dataclass
class BenchmarkPlan:
    """A suite's run: one comparison per task (each with the arms that apply to it), in one directory."""

    suite: Suite
    directory: Path
    arms: list[str]  # every arm, in order (the leaderboard's rows)
    tasks: dict[str, Plan]  # task → its comparison
    skipped: dict[str, dict[str, str]]  # task → arm → why it does not apply


def plan_benchmark(args: list[str]) -> BenchmarkPlan:
    """The `benchmark` command's arguments as a plan: every task's comparison planned and every run's config checked
    before anything runs (a mistake in the last task is one line, not an error after hours)."""
    from skilltrain.comparison import Request, make_plan
    from skilltrain.comparison.plan import flatten, identity_tag, resolve_arms

    cli = parse_overrides(args)
    suite_name = cli.pop("suite", None)
    require(isinstance(suite_name, str) and suite_name, "suite", f"is required (one of: {', '.join(suite_names())})")
    suite = load_suite(suite_name)
    seeds = cli.pop("seeds", suite.seeds)
    arms_given = cli.pop("arms", suite.arms)
    out_dir = cli.pop("out_dir", None)
    settings = cli.pop("compare", None) or {}
    require(OmegaConf.is_dict(settings) or isinstance(settings, dict), "compare", "expected compare.<key>=value")
    settings = OmegaConf.to_container(settings) if OmegaConf.is_config(settings) else dict(settings)
    require(settings.get("baseline", "baseline") == "baseline", "compare.baseline",
            "cannot be set in a benchmark: the leaderboard compares every arm with the arm named baseline")
    common = [a for a in args if a.split("=", 1)[0].split(".")[0] not in ("suite", "seeds", "arms", "out_dir", "compare")]
    parse_seeds(seeds)  # a number of seeds, or a list of them
    seeds = seeds if isinstance(seeds, int) else list(seeds)
    arms = resolve_arms(arms_given, {})
    require("baseline" in arms, "arms", "a benchmark needs a baseline arm to measure speedups against")
    tag = identity_tag([suite.name, suite.tasks, sorted(common), arms, seeds])
    directory = Path(out_dir or Path("runs") / "benchmark" / f"{suite.name}-{tag}")
    tasks, skipped = {}, {}
    for task, spec in suite.tasks.items():
        overrides = [*[a for k, v in (spec.get("overrides") or {}).items() for a in flatten(str(k), v)], *common]
        # an arm that does not apply to a task (its intervention refuses it) is left out of that task, with why
        tasks[task] = make_plan(Request(spec["recipe"], arms, seeds, overrides, dict(settings), str(directory / task),
                                        skip_refused=True))
        if tasks[task].skipped:
            skipped[task] = tasks[task].skipped
    return BenchmarkPlan(suite, directory, list(arms), tasks, skipped)


def run_benchmark(args: list[str], show: bool = True) -> dict:
    """Run (or resume) a suite (plan, launch, report); write and return the leaderboard. With compare.dry_run=true,
    nothing runs: {"commands": [...]} (every task's runs)."""
    from skilltrain.comparison import check_directory, dry_run, hold

    the_plan = plan_benchmark(args)
    for comparison in the_plan.tasks.values():
        check_directory(comparison)
    for task, skipped in the_plan.skipped.items():
        for arm, why in skipped.items():
            print(f"task {task}: arm {arm} does not apply, left out: {why}", file=sys.stderr)
    if any(c.settings.dry_run for c in the_plan.tasks.values()):
        return {"commands": [line for c in the_plan.tasks.values() for line in dry_run(c).commands], "failures": {}}
    with hold(the_plan.directory, "benchmark"):
        return _run_suite(the_plan, show)


def _run_suite(the_plan: BenchmarkPlan, show: bool) -> dict:
    from skilltrain.comparison import run_plan

    results, failures = {}, {}
    for i, (task, comparison) in enumerate(the_plan.tasks.items()):
        skipped = the_plan.skipped.get(task, {})
        print(f"[{i + 1}/{len(the_plan.tasks)}] {task}: {len(comparison.arms)} arms × {len(comparison.seeds)} seeds"
              + (f" ({len(skipped)} arms do not apply)" if skipped else ""), file=sys.stderr)
        result = run_plan(comparison, show=False)
        if result.error:  # an arm without a finished run: the other tasks still run, and the command fails at the end
            failures[task] = result.error
            print(f"task {task}: {result.error}", file=sys.stderr)
        results[task] = result
    directory = the_plan.directory
    board = leaderboard(the_plan.suite.name, {t: r.directory for t, r in results.items()}, the_plan.arms, the_plan.skipped)
    board["failures"] = failures
    write_json(directory / "leaderboard.json", board, indent=1)
    atomic_write_text(directory / "leaderboard.md", to_markdown(board))
    plot(directory / "leaderboard.png", board)
    if show:
        print(to_markdown(board))
    print(f"benchmark_dir: {directory}", flush=True)
    return board


# ---- the leaderboard -----------------------------------------------------------------------------------------


def _runs(comparison: dict) -> dict[str, dict[int, dict]]:
    """arm → seed → summary, for the runs that count (completed or diverged) of one comparison (its comparison.json)."""
    from skilltrain.analysis.stats import COUNTED
    from skilltrain.rundir import RunDir

    runs = {}
    for key, run_dir in comparison["runs"].items():
        arm, seed = key.rsplit("/seed", 1)
        summary = RunDir(run_dir).read_summary()
        if summary and summary["status"] in COUNTED:
            runs.setdefault(arm, {})[int(seed)] = summary
    return runs


def _time(summary: dict) -> tuple[float, bool]:
    """Steps to learn every skill, or the budget (censored); as `compare` counts them (a time of 0 stays 0, and
    `skilltrain.analysis.stats.paired_ratios` leaves such a pair out)."""
    from skilltrain.analysis.stats import budget, censored_at_budget

    return censored_at_budget(summary["all_learned_step"], budget(summary))


def leaderboard(suite: str, comparisons: dict[str, Path], arms: list[str], skipped: dict) -> dict:
    from skilltrain.analysis.stats import mean_log_interval, median, paired_ratios

    per_task: dict[str, dict] = {}
    ratios: dict[str, dict[str, list[float]]] = {arm: {} for arm in arms if arm != "baseline"}
    cost: dict[str, dict[str, float | None]] = {arm: {} for arm in arms}
    for task, directory in comparisons.items():
        comparison = read_json(directory / "comparison.json")
        runs = _runs(comparison)
        base = runs.get("baseline", {})
        per_task[task] = {}
        for arm in arms:
            if task in skipped and arm in skipped[task]:
                per_task[task][arm] = {"applies": False, "why": skipped[task][arm]}
                continue
            st = comparison["all_learned"].get(arm)
            if st is None:
                continue
            per_arm = runs.get(arm, {})
            cost[arm][task] = median([s["wall_seconds"] / max(s["steps"], 1) for s in per_arm.values()
                                      if s["status"] == "completed"])
            failed = sum(e["arm"] == arm and e["reason"] in ("failed", "missing") for e in comparison["excluded"])
            entry = {"applies": True, "median_steps": st["median"], "median_censored": st["median_censored"],
                     "n": st["n"], "n_censored": st["n_censored"], "n_diverged": st.get("n_diverged", 0),
                     "n_failed": failed}
            if arm != "baseline":
                sp = st["speedup"]
                entry["speedup"] = {k: sp.get(k) for k in ("median", "ci", "ci_level", "ci_note", "p_value", "verdict")}
                pairs, _ = paired_ratios({s: _time(base[s]) for s in base}, {s: _time(per_arm[s]) for s in per_arm})
                ratios[arm][task] = [b[0] / a[0] for b, a in pairs]
            per_task[task][arm] = entry
    overall = {}
    for arm, by_task in ratios.items():
        by_task = {t: r for t, r in by_task.items() if r}
        if not by_task:
            continue
        # the point: the geometric mean of the per-task medians the table shows; the interval: mean_log_interval
        point = float(np.mean([math.log(median(r)) for r in by_task.values()]))
        interval = mean_log_interval(list(by_task.values()))
        relative_cost = [cost[arm][t] / cost["baseline"][t] for t in by_task
                         if cost["baseline"].get(t) and cost[arm].get(t) is not None]
        overall[arm] = {"tasks": len(by_task), "geomean_speedup": math.exp(point), "ci": interval["ci"],
                        "ci_level": interval["level"], "ci_method": interval["method"], "ci_note": interval["note"],
                        "cost_per_step": median(relative_cost),
                        "censored": sum(per_task[t][arm]["n_censored"] for t in by_task),
                        "runs": sum(per_task[t][arm]["n"] for t in by_task)}
    order = sorted(overall, key=lambda a: -overall[a]["geomean_speedup"])
    return {"suite": suite, "metric": "steps until every skill is learned (t_baseline / t_arm, paired seeds)",
            "arms": order, "overall": {a: overall[a] for a in order}, "tasks": per_task,
            "baseline_seconds_per_step": {t: cost["baseline"].get(t) for t in comparisons}}


def to_markdown(board: dict) -> str:
    from skilltrain.analysis.stats import interval_text

    lines = [f"**{board['suite']}** — speedup in {board['metric']}; geometric mean over tasks, with a confidence "
             "interval at the level shown: distribution-free order-statistic intervals of each task's median, at a "
             "joint level of 95% over the tasks or the level the seeds achieve; none below 85% (too few seeds).", "",
             "| arm | tasks | speedup (geometric mean) [CI] level | cost per step (× baseline) | censored runs |",
             "|---|---|---|---|---|"]
    for arm in board["arms"]:
        o = board["overall"][arm]
        cost = "—" if o["cost_per_step"] is None else f"{o['cost_per_step']:.2f}×"
        lines.append(f"| {arm} | {o['tasks']} | {o['geomean_speedup']:.2f}×{interval_text(o.get('ci'), o.get('ci_level'))} | "
                     f"{cost} | {o['censored']}/{o['runs']} |")
    tasks = list(board["tasks"])
    lines += ["", "Per task: median speedup [CI] level (runs that never learned every skill / runs; n/a: the arm does "
              "not apply); the interval as in `compare` (order statistics; none with fewer than 4 pairs)", "",
              "| arm | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for arm in board["arms"]:
        cells = []
        for task in tasks:
            entry = board["tasks"][task].get(arm)
            if entry is None or not entry["applies"]:
                cells.append("n/a")
                continue
            sp = entry["speedup"]
            ci = interval_text(sp.get("ci"), sp.get("ci_level")) if sp["ci"] else ""
            censored = f" ({entry['n_censored']}/{entry['n']})" if entry["n_censored"] else ""
            censored += f" ({entry['n_failed']} failed)" if entry.get("n_failed") else ""
            cells.append(f"{sp['median']:.2f}×{ci}{censored}" if sp["median"] is not None else "—")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    base = ", ".join(f"{t} {1e3 * s:.1f} ms" if s else f"{t} — (no completed baseline run)"
                     for t, s in board["baseline_seconds_per_step"].items())
    lines += ["", f"Baseline seconds per step (median): {base}. Cost per step: the median of wall seconds / steps over "
              "an arm's completed runs, over the baseline's (runs that stop sooner spread fixed costs over fewer steps)."]
    failed = sum(e.get("n_failed", 0) for t in board["tasks"].values() for e in t.values() if e.get("applies"))
    if failed:
        lines += ["", f"{failed} runs failed (an error, not a result) and are not in these statistics: see each task's "
                  "comparison.md."]
    if board.get("failures"):
        lines += ["", *[f"Task {t} is incomplete: {why}" for t, why in board["failures"].items()]]
    return "\n".join(lines) + "\n"


def plot(path: Path, board: dict) -> None:
    from skilltrain.analysis.plots import colormap, figure
    from skilltrain.files import save_figure

    arms = board["arms"][::-1]
    tasks = list(board["tasks"])
    fig, axes = figure(1, 2, (13, 0.45 * len(arms) + 2), gridspec_kw={"width_ratios": [1, 1.3]})
    ax = axes[0][0]
    for y, arm in enumerate(arms):
        o = board["overall"][arm]
        if o["ci"]:
            ax.plot(o["ci"], [y, y], color="grey", lw=2)
        ax.plot([o["geomean_speedup"]], [y], "o", color="black")
    ax.axvline(1, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yticks(range(len(arms)), arms)
    ax.set_xlabel("speedup to learn every skill (geometric mean over tasks; bar: CI at its stated level, none when "
                  "too few seeds)")
    grid = np.full((len(arms), len(tasks)), np.nan)
    for i, arm in enumerate(arms):
        for j, task in enumerate(tasks):
            entry = board["tasks"][task].get(arm)
            if entry and entry["applies"] and entry["speedup"]["median"]:
                grid[i, j] = math.log2(entry["speedup"]["median"])
    ax = axes[0][1]
    image = ax.imshow(grid, cmap=colormap("RdBu"), vmin=-3, vmax=3, aspect="auto")
    ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    ax.set_yticks(range(len(arms)), arms)
    fig.colorbar(image, ax=ax, label="log2 speedup (blank: n/a)")
    fig.tight_layout()
    save_figure(fig, path)


def benchmark(args: list[str]) -> int:
    """The `benchmark` command."""
    try:
        board = run_benchmark(args)
    except KeyboardInterrupt:
        return 130
    for line in board.get("commands", []):
        print(line)
    if board["failures"]:
        print(f"error: {len(board['failures'])} task(s) have an arm without a finished run (see above); the leaderboard "
              "covers what finished", file=sys.stderr)
        return 1
    return 0

