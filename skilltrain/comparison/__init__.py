"""A/B comparison of interventions over seeds: `python -m skilltrain compare recipe=… seeds=5 arms=[…]`.

An arm is a name plus interventions (and config overrides), run with every seed; seeds are paired across arms (the
same seed: the same data and initial weights). Arms come from

- the CLI shorthand `arms=[baseline,gradient_rescaling,skill_reweighting]`: `baseline` adds nothing, any other name
  is an arm defined in the recipe's `arms:` section or a registered intervention with its defaults;
- an `arms:` mapping, in the recipe file, in a YAML file (`arms=my_arms.yaml`, or a shipped one: `arms=all_modes`
  runs every mode of every intervention, conf/arms/) or on the command line:
  `arms.<arm>.interventions.<name>.<param>=value`, `arms.<arm>.overrides.<key>=value`.

Every other `key=value` applies to every run. Runs go to `compare.workers` long-lived worker processes (each given
cores / workers threads; launch.py), or to SLURM jobs with `compare.launcher=submitit` (cluster.py), each run
writing `<comparison>/<arm>/seed<s>/`; each ends `stop.patience` steps after its last skill is learned
(`compare.stop_early`). With `compare.stack_seeds=true` an arm's seeds go to one worker together and train stacked
(skilltrain.stacking), each still its own run.

Resumable: the comparison directory is a function of the command (or `out_dir=` / `compare.out_dir=`); running the
same command again skips runs that completed or diverged, resumes stopped ones from their checkpoint and restarts
the rest. One command at a time holds the directory (comparison/lock.py); `plan.json` records each arm's resolved
config, and a rerun whose configs resolve differently (a recipe, preset or plugin edited, another skilltrain)
refuses unless `compare.allow_changed=true` (recorded). A diverged run counts in the statistics (skills it had not
learned are censored at the budget); a run that fails (an error) is recorded with its reason and left out of them;
an arm with no finished run at all makes the comparison fail (exit code 1). `compare.dry_run=true` prints the runs'
commands instead (to spread them over a cluster; then run compare again to collect).

Outputs: comparison.json / .csv / .md (statistics: skilltrain.analysis.stats), curves.png, learn_steps.png,
timeline.png, tradeoff.png (each arm's speedup until every skill is learned against its most-slowed skill's
slowdown, and their Pareto front: `skilltrain.analysis.stats.tradeoffs`), and a console table.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from skilltrain.comparison.cluster import SubmititLauncher
from skilltrain.comparison.launch import Runner
from skilltrain.comparison.lock import hold
from skilltrain.comparison.plan import CompareSettings, Plan, Request, Run, check_directory, make_plan, next_command, plan
from skilltrain.comparison.report import analyse, print_comparison
from skilltrain.files import write_json

__all__ = ["ComparisonResult", "CompareSettings", "Plan", "Request", "Run", "check_directory", "compare", "dry_run",
           "execute", "hold", "make_plan", "plan", "run_comparison", "run_plan"]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


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
    """Plan, run (or resume) and analyse the comparison of the `compare` command's arguments (see `run_plan`)."""
    return run_plan(plan(args), show)


def run_plan(the_plan: Plan, show: bool = True) -> ComparisonResult:
    """Run (or resume) a plan and analyse it, holding its directory; `show` prints progress and the table. A Ctrl-C
    or SIGTERM stops the running fits at their next step and raises KeyboardInterrupt (rerun to continue)."""
    check_directory(the_plan)
    if the_plan.settings.dry_run:
        return dry_run(the_plan)
    with hold(the_plan.directory):
        return execute(the_plan, show)


def dry_run(the_plan: Plan) -> ComparisonResult:
    """The runs' commands (compare.dry_run=true): nothing runs, nothing is written."""
    commands = []
    for run in the_plan.runs:
        command = next_command(run)
        commands.append(f"python -m skilltrain {shlex.join(command)}" if command else f"# finished: {run.run_dir}")
    return ComparisonResult(the_plan.directory, commands=commands)


def execute(the_plan: Plan, show: bool = True) -> ComparisonResult:
    """Run what is left of a checked plan (`check_directory`) and analyse it; the caller holds its directory
    (`hold`)."""
    check_directory(the_plan)  # again, under the lock: another command may have written plan.json meanwhile
    write_json(the_plan.directory / "plan.json", the_plan.record())
    print(f"comparison: {the_plan.directory} · {len(the_plan.arms)} arms × {len(the_plan.seeds)} seeds", file=sys.stderr)
    launcher = SubmititLauncher if the_plan.settings.launcher == "submitit" else Runner
    with _stop_on_termination():
        try:
            finished = launcher(the_plan, show).run()
        except KeyboardInterrupt:
            print(f"interrupted; run the same command again to continue: finished runs are kept ({the_plan.directory})",
                  file=sys.stderr)
            raise
    result = analyse(the_plan)
    if show:
        print_comparison(result, the_plan.directory)
    error = None
    failed = [r for r in the_plan.runs if r.state == "failed"]
    if failed and show:
        print(f"{len(failed)} of {len(the_plan.runs)} runs failed:", file=sys.stderr)
        for r in failed:
            print(f"  {r.arm}/seed{r.seed}: {r.note}", file=sys.stderr)
    empty = [arm for arm in the_plan.arms if not any(r.arm == arm and r.state == "done" for r in the_plan.runs)]
    if empty:  # an arm without a single finished run has no statistics: that is a failed comparison, not a result
        first = next((r for r in the_plan.runs if r.arm == empty[0] and r.state == "failed"), None)
        why = f"seed {first.seed}: {first.note}" if first else "no run"
        more = f"; arms {', '.join(empty[1:])} have none either" if len(empty) > 1 else ""
        logs = the_plan.directory / ("jobs" if the_plan.settings.launcher == "submitit" else "logs")
        error = f"arm {empty[0]} has no finished run ({why}){more}; logs in {logs}"
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
