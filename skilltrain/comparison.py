"""A/B comparison of interventions over seeds: `python -m skilltrain compare recipe=… seeds=5 arms=[…]`.

An arm is a name plus interventions (and config overrides), run with every seed; seeds are paired across arms (the
same seed: the same data and initial weights). Arms come from

- the CLI shorthand `arms=[baseline,gradient_rescaling,skill_reweighting]`: `baseline` adds nothing, any other name
  is an arm defined in the recipe's `arms:` section or a registered intervention with its defaults;
- an `arms:` mapping, in the recipe file, in a YAML file (`arms=my_arms.yaml`, or a shipped one: `arms=all_modes`
  runs every mode of every intervention, conf/arms/) or on the command line:
  `arms.<arm>.interventions.<name>.<param>=value`, `arms.<arm>.overrides.<key>=value`.

Every other `key=value` applies to every run. Each run is a separate `python -m skilltrain fit` process
(`compare.workers` at a time, each given cores / workers threads), writing `<comparison>/<arm>/seed<s>/`.

Resumable: the comparison directory is a function of the command (or `out_dir=` / `compare.out_dir=`); running the
same command again skips runs that completed or diverged, resumes stopped ones from their checkpoint and restarts
the rest. A diverged run counts in the statistics (skills it had not learned are censored at the budget); a run
that fails (an error) is recorded with its reason and left out of them; an arm with no finished run at all makes
the comparison fail (exit code 1). `compare.dry_run=true` prints the runs' commands instead (to spread them over a
cluster; then run compare again to collect).

Outputs: comparison.json / .csv / .md (statistics: skilltrain.analysis.stats), curves.png, learn_steps.png,
timeline.png, and a console table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from skilltrain.config import _load_yaml, load_config, load_config_plugins, parse_overrides, recipe_sections, require
from skilltrain.errors import UserError, unknown
from skilltrain.registry import INTERVENTIONS
from skilltrain.run import recipe_stem


@dataclass
class CompareSettings:
    workers: int = 1  # runs at a time (each a single process)
    out_dir: str | None = None  # null: runs/compare/<recipe>-<hash of the command>
    baseline: str = "baseline"  # the arm the others are compared with
    dry_run: bool = False  # print the runs' fit commands and stop
    stop_early: bool = True  # each run ends once every skill is learned (stop.when_all_learned; censoring unaffected)

    def validate(self) -> None:
        require(self.workers >= 1, "compare.workers", f"must be ≥ 1, got {self.workers}")


@dataclass
class Run:
    arm: str
    seed: int
    args: list[str]  # the `fit` arguments
    run_dir: Path
    state: str = "pending"  # pending | done | failed
    note: str = ""


@dataclass
class Plan:
    recipe: str
    arms: dict[str, dict]
    seeds: list[int]
    settings: CompareSettings
    directory: Path
    identity: str = ""  # what defines the comparison: recipe, common overrides, arms, seeds
    runs: list[Run] = field(default_factory=list)


# ---- planning --------------------------------------------------------------------------------------------------


def _flatten(prefix: str, value) -> list[str]:
    """A nested mapping as dotlist arguments: {"optim": {"lr": 0.1}} → ["optim.lr=0.1"] ({} stays a value)."""
    if isinstance(value, dict) and value:
        return [arg for k, v in value.items() for arg in _flatten(f"{prefix}.{k}" if prefix else str(k), v)]
    return [f"{prefix}={json.dumps(value, separators=(',', ':'))}"]


def _arm_spec(name: str, spec, key: str) -> dict:
    spec = OmegaConf.to_container(spec) if isinstance(spec, (DictConfig, ListConfig)) else spec
    spec = spec or {}
    require(isinstance(spec, dict), key, "an arm is a mapping with `interventions` and/or `overrides`")
    extra = set(spec) - {"interventions", "overrides"}
    require(not extra, f"{key}.{sorted(extra)[0] if extra else ''}", "unknown key (an arm has interventions and overrides)")
    for part in ("interventions", "overrides"):
        require(isinstance(spec.get(part, {}) or {}, dict), f"{key}.{part}", "expected a mapping")
    return {"interventions": spec.get("interventions") or {}, "overrides": spec.get("overrides") or {}}


def arms_file_names() -> list[str]:
    folder = resources.files("skilltrain.conf").joinpath("arms")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _resolve_arms(given, recipe_arms: dict) -> dict[str, dict]:
    if given is None:
        require(recipe_arms, "arms", "is required, e.g. arms=[baseline,gradient_rescaling] (or an arms: section in the recipe)")
        given = recipe_arms
    if isinstance(given, str):
        path = Path(given)
        if given in arms_file_names():  # a shipped arms file: conf/arms/<name>.yaml
            path = Path(str(resources.files("skilltrain.conf").joinpath("arms", f"{given}.yaml")))
        require(path.is_file(), "arms", f"no arms file '{given}' (shipped: {', '.join(arms_file_names())}; "
                                        "or a path, or arms=[baseline,<intervention>,…])")
        loaded = OmegaConf.to_container(_load_yaml(path.read_text(), f"arms file {given}"))
        given = loaded.get("arms", loaded)
    if isinstance(given, (DictConfig, dict)):
        return {str(n): _arm_spec(str(n), spec, f"arms.{n}") for n, spec in dict(given).items()}
    require(isinstance(given, (ListConfig, list)) and len(given) >= 1, "arms",
            "needs arms to run, e.g. arms=[baseline,gradient_rescaling] (one arm: a report over seeds)")
    arms = {}
    known = ["baseline", *recipe_arms, *INTERVENTIONS.names()]
    for name in map(str, given):
        if name in recipe_arms:
            arms[name] = _arm_spec(name, recipe_arms[name], f"arms.{name}")
        elif name == "baseline":
            arms[name] = {"interventions": {}, "overrides": {}}
        elif name in INTERVENTIONS.names():
            arms[name] = {"interventions": {name: {}}, "overrides": {}}
        else:
            raise unknown("arm", name, known, key="arms")
    require(len(arms) == len(given), "arms", "names must be distinct")
    return arms


def plan(args: list[str]) -> Plan:
    """Everything a comparison will do, with every run's config validated (one-line errors before anything runs)."""
    cli = parse_overrides(args)
    seeds_given = cli.pop("seeds", 5)
    arms_given = cli.pop("arms", None)
    settings_given = cli.pop("compare", None) or {}
    require(isinstance(settings_given, (DictConfig, dict)), "compare", "expected compare.<key>=value")
    out_dir = cli.pop("out_dir", None)  # as for fit: where the result goes, here the comparison directory
    if out_dir is not None:
        given = settings_given.get("out_dir")
        require(given is None or str(given) == str(out_dir), "out_dir",
                f"'{out_dir}' and compare.out_dir='{given}' disagree; give the comparison directory once")
        settings_given = OmegaConf.merge(settings_given, {"out_dir": str(out_dir)})
    if isinstance(seeds_given, int):
        require(seeds_given >= 1, "seeds", f"must be ≥ 1 (a number of seeds) or a list, got {seeds_given}")
        seeds = list(range(1, seeds_given + 1))
    else:
        require(isinstance(seeds_given, ListConfig) and all(isinstance(s, int) and s >= 0 for s in seeds_given), "seeds",
                "expected a number of seeds (seeds=5 means 1..5) or a list of seeds such as [0,7,9]")
        seeds = list(seeds_given)
    require(len(set(seeds)) == len(seeds), "seeds", "must be distinct")
    recipe = str(cli.get("recipe") or load_config([]).recipe)
    common = [a for a in args if a.split("=", 1)[0].split(".")[0] not in ("seeds", "arms", "compare", "out_dir")]
    load_config_plugins(common)  # a plugin's interventions can be arms
    recipe_arms, recipe_compare = recipe_sections(recipe)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(CompareSettings), recipe_compare, settings_given)
        settings: CompareSettings = OmegaConf.to_object(merged)
    except Exception as e:
        key = getattr(e, "full_key", "") or ""
        raise UserError(f"compare.{key}: {str(e).splitlines()[0]}") from None
    settings.validate()
    arms = _resolve_arms(arms_given, recipe_arms)
    if settings.baseline not in arms:
        raise unknown("baseline arm", settings.baseline, arms, key="compare.baseline")

    identity = json.dumps([recipe, sorted(common), arms, seeds], sort_keys=True)
    tag = hashlib.blake2b(identity.encode(), digest_size=4).hexdigest()
    directory = Path(settings.out_dir or Path("runs") / "compare" / f"{recipe_stem(recipe)}-{tag}")
    result = Plan(recipe, arms, seeds, settings, directory, identity)
    measured: dict[str, dict] = {}
    for arm, spec in arms.items():
        arm_args = _flatten("interventions", spec["interventions"]) if spec["interventions"] else []
        arm_args += [a for k, v in spec["overrides"].items() for a in _flatten(str(k), v)]
        for seed in seeds:
            run_dir = directory / arm / f"seed{seed}"
            run_args = [*common, *arm_args, f"seed={seed}", f"out_dir={run_dir}", "trainer.enable_progress_bar=false",
                        f"logger.wandb.group=compare-{directory.name}", f"logger.wandb.job_type={arm}"]
            if settings.stop_early and not any(a.startswith("stop.when_all_learned=") for a in [*common, *arm_args]):
                run_args.insert(len(common), "stop.when_all_learned=true")
            try:
                cfg = load_config(run_args)  # every run's config is valid before any runs
                _check_visible_to_runs(cfg)
            except UserError as e:
                raise UserError(f"arm {arm}: {e}") from None
            result.runs.append(Run(arm, seed, run_args, run_dir))
            measured[arm] = _what_is_measured(cfg)
    first = next(iter(measured))
    for arm, what in measured.items():
        require(what == measured[first], f"arms.{arm}",
                f"must train the same skills and measure them alike as arm {first} (skills and metric.*), "
                f"to be compared: {what} vs {measured[first]}")
    return result


def _check_visible_to_runs(cfg) -> None:
    """Every run is a new process: what it uses must be built in, or come from a plugin it loads too. An entry
    registered by this process's own code would make every run of the arm fail; refuse it here, in one line."""
    from skilltrain.registry import INTERVENTIONS, MODELS, OPTIMIZERS, TASKS, THIS_PROCESS

    used = [(TASKS, cfg.data.name, None), (MODELS, cfg.model.name, None), (OPTIMIZERS, cfg.optim.name, None)]
    used += [(INTERVENTIONS, name, getattr(params, "mode", None)) for name, params in cfg.interventions.items()]
    for registry, name, mode in used:
        entry = registry.get(name)
        source = entry.mode_sources.get(mode, entry.source) if entry.modes else entry.source
        if source == THIS_PROCESS:
            raise UserError(f"{registry.key}: {registry.kind} '{name}' is registered by this process only, and each run of "
                            "a comparison is a new process; put it in a plugin (plugins=[my_plugin.py], its own "
                            "run guarded by `if __name__ == \"__main__\":`)")


def _what_is_measured(cfg) -> dict:
    """The skills a run learns and how "learned" is measured: what paired arms must share."""
    from skilltrain.data import build_task
    from skilltrain.models import DTYPES

    data_seed = cfg.data.seed if cfg.data.seed is not None else cfg.seed
    task = build_task(OmegaConf.to_object(cfg.data), data_seed, DTYPES[cfg.model.dtype])
    return {"skills": task.skills, "metric": dict(cfg.metric)}


# ---- running ---------------------------------------------------------------------------------------------------


def _summary(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _command(run: Run) -> list[str]:
    """Fresh, resumed (stopped or killed, with a checkpoint) or restarted (half-done without one); [] when finished."""
    summary = _summary(run.run_dir)
    if summary and summary.get("status") in ("completed", "diverged"):
        return []
    if (run.run_dir / "checkpoints/last.ckpt").is_file():  # stopped, or killed after a checkpoint: continue it
        return ["fit", "ckpt_path=last", f"out_dir={run.run_dir}", "trainer.enable_progress_bar=false"]
    restart = ["overwrite=true"] if run.run_dir.exists() else []
    return ["fit", *run.args, *restart]


class Runner:
    """Runs the planned fits in worker processes, with a progress display; Ctrl-C stops them cleanly."""

    def __init__(self, plan: Plan, show: bool = True):
        self.plan, self.show = plan, show
        self.threads = max(1, (os.cpu_count() or 1) // plan.settings.workers)
        self.running: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.stopping = False

    def run_one(self, run: Run, command: list[str], log_path: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        with open(log_path, "w") as log:
            with self.lock:  # no run starts once stopping began, and every started run is known to `stop`
                if self.stopping:
                    return
                # its own session: a Ctrl-C in the terminal reaches only compare, which stops each run once, cleanly
                proc = subprocess.Popen([sys.executable, "-m", "skilltrain", *command], stdout=log,
                                        stderr=subprocess.STDOUT, env=env, start_new_session=True)
                self.running[proc.pid] = proc
            code = proc.wait()
            with self.lock:
                self.running.pop(proc.pid, None)
        summary = _summary(run.run_dir)
        status = summary.get("status") if summary else None
        if status in ("completed", "diverged"):
            run.state, run.note = "done", status
        elif status == "stopped":
            run.state, run.note = "failed", "stopped (rerun the command to resume it)"
        else:
            tail = [line for line in log_path.read_text().splitlines() if line.strip()][-1:] or ["no output"]
            run.state, run.note = "failed", f"exit code {code}: {tail[0][:200]}"

    def run(self) -> bool:
        """Run what is left; True when every run finished (completed or diverged)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        logs = self.plan.directory / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        todo = []
        for run in self.plan.runs:
            command = _command(run)
            if command:
                todo.append((run, command))
            else:
                run.state, run.note = "done", "finished earlier"
        done_before = len(self.plan.runs) - len(todo)
        print(f"{done_before} runs finished earlier (kept), {len(todo)} to run", file=sys.stderr, flush=True)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, transient=False, disable=not self.show) as progress:
            task = progress.add_task("runs", total=len(self.plan.runs), completed=done_before)
            with ThreadPoolExecutor(max_workers=self.plan.settings.workers) as pool:
                futures = [pool.submit(self.run_one, run, cmd, logs / f"{run.arm}-seed{run.seed}.log") for run, cmd in todo]
                try:
                    pending = set(futures)
                    while pending:
                        finished = {f for f in pending if f.done()}
                        for f in finished:
                            f.result()
                            progress.advance(task)
                        pending -= finished
                        failed = sum(r.state == "failed" for r in self.plan.runs)
                        diverged = sum(r.note == "diverged" for r in self.plan.runs)
                        progress.update(task, description=f"runs · {len(self.running)} running · {diverged} diverged · "
                                                          f"{failed} failed")
                        time.sleep(0.2)
                except KeyboardInterrupt:
                    self.stop()
                    for f in futures:
                        f.cancel()
                    raise
        return all(r.state == "done" for r in self.plan.runs)

    def stop(self) -> None:
        """Ask every running fit (all its processes: DDP ranks too) to stop at its next step, and start no more."""
        print("\nstopping the running fits at their next step (their checkpoints are kept) …", file=sys.stderr)
        with self.lock:
            self.stopping = True
            for proc in self.running.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)


# ---- the comparison --------------------------------------------------------------------------------------------


def analyse(plan: Plan) -> dict:
    """Statistics, tables and plots from the runs' directories; returns comparison.json's content."""
    from skilltrain.analysis import plots
    from skilltrain.analysis.stats import compare_arms, to_csv, to_markdown
    from skilltrain.report import write_json

    summaries = {arm: {run.seed: _summary(run.run_dir) for run in plan.runs if run.arm == arm} for arm in plan.arms}
    notes = {(run.arm, run.seed): run.note for run in plan.runs if run.state == "failed"}
    try:
        result = compare_arms(summaries, plan.settings.baseline)
    except ValueError as e:  # runs of this directory measured different skills or metrics (another version's runs)
        raise UserError(f"compare: {e}; rerun them in a new compare.out_dir") from None
    for entry in result["excluded"]:
        if (entry["arm"], entry["seed"]) in notes and entry["reason"] == "missing":
            entry["reason"], entry["message"] = "failed", notes[(entry["arm"], entry["seed"])]
    skills = list(result["skills"])
    result.update({"recipe": plan.recipe, "arm_specs": plan.arms, "seeds_planned": plan.seeds,
                   "runs": {f"{r.arm}/seed{r.seed}": str(r.run_dir) for r in plan.runs}})
    out = plan.directory
    write_json(out / "comparison.json", result)
    (out / "comparison.csv").write_text(to_csv(result))
    metric = result["metric"]
    measured = (f"Learn step: first step with {metric['split']} {metric['name']} "
                f"{'≥' if metric['name'] == 'acc' else '≤'} {metric['threshold']}." if metric else "No run finished.")
    header = f"# {plan.recipe}: {', '.join(plan.arms)} over seeds {', '.join(map(str, plan.seeds))}\n\n{measured}\n\n"
    (out / "comparison.md").write_text(header + to_markdown(result))
    if metric and skills:
        # curves of completed runs (a diverged run's curve is cut short); learn steps of every counted run
        used = {arm: {s: summaries[arm][s] for s in seeds if s not in result["diverged"][arm]}
                for arm, seeds in result["seeds"].items()}
        curves = {arm: [plots.read_curves(Path(plan.directory / arm / f"seed{s}"), skills, metric["name"], metric["split"])
                        for s in runs] for arm, runs in used.items()}
        plots.curves_by_arm(out / "curves.png", curves, skills, metric["name"], metric["threshold"])
        plots.learn_step_distributions(out / "learn_steps.png", result)
        plots.skill_timeline(out / "timeline.png", _median_windows(used, skills), skills)
    return result


def _median_windows(used: dict, skills: list[str]) -> dict:
    """Per arm and skill: (median onset, median completion) over the seeds that learned it."""
    windows = {}
    for arm, runs in used.items():
        windows[arm] = {}
        for skill in skills:
            pairs = [(s["domino"]["onset"][skill], s["domino"]["completion"][skill]) for s in runs.values()
                     if s.get("domino") and s["domino"]["completion"][skill] is not None]
            windows[arm][skill] = ((float(np.median([p[0] for p in pairs])), float(np.median([p[1] for p in pairs])))
                                   if pairs else (None, None))
    return windows


def print_comparison(result: dict, directory: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    from skilltrain.analysis.stats import censored_cell, run_notes
    from skilltrain.report import console as make_console

    base = result["baseline"]
    table = Table(title=escape(f"{result['recipe']}: speedup vs {base} (paired over seeds; median [95% CI], Wilcoxon p)"))
    for column in ("skill", "arm", "median learn step [IQR]", "not learned", "speedup [CI]", "p"):
        table.add_column(column, justify="left" if column in ("skill", "arm") else "right")

    def fmt(v):
        return "—" if v is None else f"{v:.0f}"

    rows = [(skill, by_arm) for skill, by_arm in result["skills"].items()] + [("all skills", result["all_learned"])]
    for skill, by_arm in rows:
        for arm in result["arms"]:
            st = by_arm[arm]
            median = ">budget" if st.get("median_censored") else fmt(st["median"])
            sp = st.get("speedup")
            speed = "" if sp is None or sp["median"] is None else f"{sp['median']:.2f}×" + (
                f" [{sp['ci'][0]:.2f}, {sp['ci'][1]:.2f}]" if sp["ci"] else "")
            p = "" if sp is None or sp["p_value"] is None else f"{sp['p_value']:.3g}"
            iqr = f"{median} [{fmt(st['q1'])}, {fmt(st['q3'])}]"
            table.add_row(escape(skill), escape(arm), iqr, censored_cell(st), speed, p)
    console = make_console()
    console.print(table)
    for note in run_notes(result):
        console.print(escape(note), style="yellow")
    console.print(f"tables: {directory}/comparison.md · plots: curves.png, learn_steps.png, timeline.png")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _check_directory(plan: Plan) -> None:
    """A comparison directory holds one comparison: the same command continues it; another one is refused, so
    that runs of different commands never mix in one set of statistics."""
    saved = plan.directory / "plan.json"
    if saved.is_file() and saved.read_text() != plan.identity:
        raise UserError(f"compare.out_dir: '{plan.directory}' holds a comparison made by another command (recipe, "
                        "arms, seeds or overrides differ); choose another compare.out_dir")


@dataclass
class ComparisonResult:
    """What a comparison left: its directory, the statistics (comparison.json's content: per skill and arm the
    median learn step, censoring, paired speedup with its confidence interval and p-value), whether every run
    finished, and `error` when an arm has no finished run (then there is nothing to compare it by)."""

    directory: Path
    statistics: dict = field(default_factory=dict)
    finished: bool = False
    error: str | None = None
    commands: list[str] = field(default_factory=list)  # compare.dry_run=true: the runs' fit commands

    @property
    def table(self) -> list[dict]:
        """The statistics as flat rows (comparison.csv's), one per quantity × skill × arm."""
        from skilltrain.analysis.stats import csv_rows

        return csv_rows(self.statistics) if self.statistics else []

    @property
    def exit_code(self) -> int:
        return 1 if self.error else 0


def run_comparison(args: list[str], show: bool = True) -> ComparisonResult:
    """Plan, run (or resume) and analyse a comparison; `show` prints progress and the table. A Ctrl-C or SIGTERM
    stops the running fits at their next step and raises KeyboardInterrupt (rerun to continue)."""
    the_plan = plan(args)
    _check_directory(the_plan)
    if the_plan.settings.dry_run:
        commands = []
        for run in the_plan.runs:
            command = _command(run)
            commands.append(f"python -m skilltrain {shlex.join(command)}" if command else f"# finished: {run.run_dir}")
        return ComparisonResult(the_plan.directory, commands=commands)
    the_plan.directory.mkdir(parents=True, exist_ok=True)
    (the_plan.directory / "plan.json").write_text(the_plan.identity)
    print(f"comparison: {the_plan.directory} · {len(the_plan.arms)} arms × {len(the_plan.seeds)} seeds", file=sys.stderr)
    with _stop_on_termination():
        try:
            finished = Runner(the_plan, show).run()
        except KeyboardInterrupt:
            print(f"interrupted; run the same command again to continue: finished runs are kept ({the_plan.directory})",
                  file=sys.stderr)
            raise
    result = analyse(the_plan)
    if show:
        print_comparison(result, the_plan.directory)
    error = None
    empty = [arm for arm in the_plan.arms if not any(r.arm == arm and r.state == "done" for r in the_plan.runs)]
    if empty:  # an arm without a single finished run has no statistics: that is a failed comparison, not a result
        first = next((r for r in the_plan.runs if r.arm == empty[0] and r.state == "failed"), None)
        why = f"seed {first.seed}: {first.note}" if first else "no run"
        more = f"; arms {', '.join(empty[1:])} have none either" if len(empty) > 1 else ""
        error = f"arm {empty[0]} has no finished run ({why}){more}; logs in {the_plan.directory}/logs"
    return ComparisonResult(the_plan.directory, result, finished, error)


@contextlib.contextmanager
def _stop_on_termination():
    """SIGTERM and SIGHUP (preempted, disconnected) stop the fits like Ctrl-C, never orphaning them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def compare(args: list[str]) -> int:
    """The `compare` command: exit code 0, 1 (an arm without a finished run), 130 (interrupted)."""
    try:
        result = run_comparison(args)
    except KeyboardInterrupt:
        return 130
    for line in result.commands:
        print(line)
    if result.commands:
        return 0
    if not result.finished:
        print("note: some runs did not finish (see above); rerun the same command to retry them", file=sys.stderr)
    print(f"comparison_dir: {result.directory}", flush=True)
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    return result.exit_code
