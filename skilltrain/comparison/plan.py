"""What a comparison will run: a `Request` (recipe, arms, seeds, overrides, settings: objects) becomes a `Plan`, its
arms × paired seeds, each run's validated arguments and directory; and for each run what is left to do (nothing, a
resume, a restart). What differs between a network's runs and a toy model's is asked of the plan's kind
(comparison/kinds.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from skilltrain.comparison.kinds import PER_RUN_KEYS, kind, kind_of_recipe, plugin_sources, resolved_config  # noqa: F401 (their old home)
from skilltrain.config import load_config, load_yaml, migrate, parse_overrides, recipe_stem, require
from skilltrain.errors import UserError, command_exit, unknown
from skilltrain.registry import INTERVENTIONS
from skilltrain.seeds import parse_seeds

LAUNCHERS = ("local", "submitit")
ENDED = (0, 3, 4, 130, 143)  # exit codes of a run that ended by itself (completed, diverged, stopped): its summary says how


@dataclass
class SlurmSettings:
    """`compare.slurm.*`: how compare.launcher=submitit asks the scheduler for each run's job."""

    cluster: str | None = None  # null: SLURM when it is there; local: this machine (submitit's local executor)
    partition: str | None = None
    time: int = 60  # minutes a job may run
    cpus_per_task: int = 2
    gpus_per_task: int = 0
    mem: int | None = None  # GB per job
    array_parallelism: int = 64  # jobs of the array running at once
    lost_after: float = 30.0  # minutes a job may stay in state UNKNOWN (the scheduler lost it) before it counts as failed
    additional_parameters: dict[str, Any] = field(default_factory=dict)  # any other sbatch option: {qos: high}

    def validate(self) -> None:
        if self.cluster not in (None, "slurm", "local"):
            raise unknown("cluster", str(self.cluster), ("slurm", "local"), key="compare.slurm.cluster")
        require(self.time >= 1, "compare.slurm.time", f"must be ≥ 1 (minutes), got {self.time}")
        require(self.cpus_per_task >= 1, "compare.slurm.cpus_per_task", f"must be ≥ 1, got {self.cpus_per_task}")
        require(self.gpus_per_task >= 0, "compare.slurm.gpus_per_task", f"must be ≥ 0, got {self.gpus_per_task}")
        require(self.mem is None or self.mem >= 1, "compare.slurm.mem", f"must be ≥ 1 (GB) or null, got {self.mem}")
        require(self.array_parallelism >= 1, "compare.slurm.array_parallelism", f"must be ≥ 1, got {self.array_parallelism}")
        require(self.lost_after > 0, "compare.slurm.lost_after", f"must be > 0 (minutes), got {self.lost_after}")


@dataclass
class CompareSettings:
    workers: int = 1  # runs at a time (each a single process)
    out_dir: str | None = None  # null: runs/compare/<recipe>-<hash of the command>
    baseline: str = "baseline"  # the arm the others are compared with
    dry_run: bool = False  # print the runs' fit commands and stop
    stop_early: bool = True  # each run ends once every skill is learned (stop.when_all_learned; censoring unaffected)
    launcher: str = "local"  # local (worker processes on this machine) | submitit (jobs on a cluster's scheduler)
    reply_timeout: float = 10.0  # minutes a local worker may go silent, or its fit without progress, before it is killed
    allow_changed: bool = False  # pool new runs with finished ones whose resolved config differs (recorded in plan.json)
    stack_seeds: bool = False  # an arm's seeds train together in one worker, their networks stacked (skilltrain.stacking)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def validate(self) -> None:
        require(self.workers >= 1, "compare.workers", f"must be ≥ 1, got {self.workers}")
        if self.launcher not in LAUNCHERS:
            raise unknown("launcher", self.launcher, LAUNCHERS, key="compare.launcher")
        require(self.reply_timeout > 0, "compare.reply_timeout", f"must be > 0 (minutes), got {self.reply_timeout}")
        if self.launcher == "local":
            cores = os.cpu_count() or 1
            require(self.workers <= min(4 * cores, 256), "compare.workers",
                    f"{self.workers} runs at a time on {cores} cores is too many (at most {min(4 * cores, 256)}; "
                    f"each run gets cores / workers threads)")
            if self.workers > cores:
                print(f"warning: compare.workers={self.workers} is more than the {cores} cores: the runs share them "
                      "(one thread each) and each is slower", file=sys.stderr)
        self.slurm.validate()


@dataclass
class Run:
    arm: str
    seed: int
    args: list[str]  # the `fit` arguments
    run_dir: Path
    own_process: bool = False  # it starts several processes itself (DDP): not in a shared worker
    command: str = "fit"  # its kind: fit | theory (a toy model's run: skilltrain.theory); comparison/kinds.py
    state: str = "pending"  # pending | done | failed
    note: str = ""


@dataclass
class Plan:
    recipe: str
    arms: dict[str, dict]
    seeds: list[int]
    settings: CompareSettings
    directory: Path
    identity: str = ""  # what defines the comparison: recipe, common overrides, arms, seeds (its directory's name)
    runs: list[Run] = field(default_factory=list)
    resolved: dict = field(default_factory=dict)  # what ran: each arm's resolved config, plugin sources, version
    kind: str = "fit"  # the kind of its runs: fit | theory (comparison/kinds.py)
    skipped: dict[str, str] = field(default_factory=dict)  # arm → why it was left out (Request.skip_refused)

    def record(self) -> dict:
        """plan.json's content: the command's identity and the resolved configs its runs were made with."""
        return {"identity": json.loads(self.identity), **self.resolved}


# ---- planning --------------------------------------------------------------------------------------------------


def flatten(prefix: str, value) -> list[str]:
    """A nested mapping as dotlist arguments: {"optim": {"lr": 0.1}} → ["optim.lr=0.1"] ({} stays a value). The one
    flattener: compare's arms, the API's, sweep's grid points and benchmark's tasks all go through it."""
    if isinstance(value, dict) and value:
        return [arg for k, v in value.items() for arg in flatten(f"{prefix}.{k}" if prefix else str(k), v)]
    return [f"{prefix}={json.dumps(value, separators=(',', ':'))}"]




def identity_tag(parts: list) -> str:
    """The short hash that names an experiment's directory (compare, sweep, benchmark) after what defines it."""
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=4).hexdigest()


def _arm_spec(name: str, spec, key: str) -> dict:
    spec = OmegaConf.to_container(spec) if isinstance(spec, (DictConfig, ListConfig)) else spec
    spec = spec or {}
    require(isinstance(spec, dict), key, "an arm is a mapping with `interventions` and/or `overrides`")
    extra = set(spec) - {"interventions", "overrides"}
    require(not extra, f"{key}.{sorted(extra)[0] if extra else ''}", "unknown key (an arm has interventions and overrides)")
    for part in ("interventions", "overrides"):
        require(isinstance(spec.get(part, {}) or {}, dict), f"{key}.{part}", "expected a mapping")
    return {"interventions": _nested(spec.get("interventions") or {}), "overrides": _nested(spec.get("overrides") or {})}


def _nested(mapping: dict) -> dict:
    """Dotted keys as nested mappings ({"optim.lr": 0.1} → {"optim": {"lr": 0.1}}), as the command line's
    `arms.<arm>.overrides.optim.lr=0.1` arrives: one arm, one form, whoever gave it."""
    out: dict = {}
    for key, value in mapping.items():
        head, _, rest = str(key).partition(".")
        value = _nested(value) if isinstance(value, dict) else value
        if rest:
            value = _nested({rest: value})
        if isinstance(out.get(head), dict) and isinstance(value, dict):
            out[head] = _merged(out[head], value)
        else:
            out[head] = value
    return out


def _merged(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = _merged(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


def check_name(name: str, key: str) -> str:
    """An arm's or a task's name becomes a folder of the comparison: a plain name, never a path."""
    require(bool(_NAME.match(name)) and ".." not in name and len(name) <= 100, key,
            f"'{name}' is not a valid name (letters, digits, _ . + = -; not a path; at most 100 characters)")
    return name


def arms_file_names() -> list[str]:
    folder = resources.files("skilltrain.conf").joinpath("arms")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_arms(given, recipe_arms: dict) -> dict[str, dict]:
    if given is None:
        require(recipe_arms, "arms", "is required, e.g. arms=[baseline,gradient_rescaling] (or an arms: section in the recipe)")
        given = recipe_arms
    if isinstance(given, str):
        path = Path(given)
        if given in arms_file_names():  # a shipped arms file: conf/arms/<name>.yaml
            path = Path(str(resources.files("skilltrain.conf").joinpath("arms", f"{given}.yaml")))
        require(path.is_file(), "arms", f"no arms file '{given}' (shipped: {', '.join(arms_file_names())}; "
                                        "or a path, or arms=[baseline,<intervention>,…])")
        loaded = OmegaConf.to_container(load_yaml(path.read_text(), f"arms file {given}"))
        given = loaded.get("arms", loaded)
    if isinstance(given, (DictConfig, dict)):
        return {check_name(str(n), "arms"): _arm_spec(str(n), spec, f"arms.{n}") for n, spec in dict(given).items()}
    require(isinstance(given, (ListConfig, list)) and len(given) >= 1, "arms",
            "needs arms to run, e.g. arms=[baseline,gradient_rescaling] (one arm: a report over seeds)")
    arms = {}
    known = ["baseline", *recipe_arms, *INTERVENTIONS.names()]
    for name in map(str, given):
        check_name(name, "arms")
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


def _settings_keys(node, prefix: str = "compare") -> list[str]:
    return [f"{prefix}.{k}" for k in node.keys()]


def compare_settings(*layers) -> CompareSettings:
    """`compare.*` from the recipe's `compare:` section and the command line, checked: a typo is one line naming the
    key and the closest valid one."""
    schema = OmegaConf.structured(CompareSettings)
    try:
        settings: CompareSettings = OmegaConf.to_object(OmegaConf.merge(schema, *layers))
    except Exception as e:
        key = str(getattr(e, "full_key", "") or "")
        parent, _, leaf = key.rpartition(".")
        node = schema.slurm if parent == "slurm" else schema
        prefix = f"compare.{parent}" if parent else "compare"
        if "not in" in str(e) or type(e).__name__ == "ConfigKeyError":
            raise unknown("key", f"{prefix}.{leaf}", _settings_keys(node, prefix), key=f"{prefix}.{leaf}") from None
        expected = type(OmegaConf.select(schema, key)).__name__ if key and OmegaConf.select(schema, key) is not None \
            else "another type"
        given = OmegaConf.select(OmegaConf.merge(*[OmegaConf.create(x) for x in layers]), key) if key else None
        raise UserError(f"compare.{key}: expected {expected}, got '{given}'") from None
    settings.validate()
    return settings


def arm_arguments(spec: dict) -> list[str]:
    """An arm's interventions and overrides as `fit` arguments."""
    args = flatten("interventions", spec["interventions"]) if spec["interventions"] else []
    return args + [a for k, v in spec["overrides"].items() for a in flatten(str(k), v)]


@dataclass
class Request:
    """What a comparison is asked to run, as objects. The command line (`Request.from_args`), `skilltrain.compare`,
    `sweep` and `benchmark` each build one; `make_plan` turns it into runs.

    `arms`: arm names, a mapping {arm: {"interventions": {...}, "overrides": {...}}}, an arms file's name or path, or
    None for the recipe's `arms:` section. `overrides`: `key=value` for every run. `settings`: `compare.*` as a
    mapping, over the recipe's `compare:` section."""

    recipe: str | None = None  # None: the default recipe
    arms: Any = None
    seeds: Any = 5  # a number of seeds, or a list of them
    overrides: list[str] = field(default_factory=list)
    settings: Any = field(default_factory=dict)
    out_dir: str | None = None  # the comparison directory (None: compare.out_dir, or one named after the command)
    # leave out (Plan.skipped, with why) the arms whose interventions refuse the task, rather than fail in their runs:
    # a benchmark, whose arms meet tasks they may not apply to. Needs out_dir (the directory is named before it is
    # known which arms apply).
    skip_refused: bool = False

    @classmethod
    def from_args(cls, args: list[str]) -> Request:
        """The `compare` command's `key=value` arguments."""
        cli = parse_overrides(args)
        settings = cli.pop("compare", None) or {}
        require(isinstance(settings, (DictConfig, dict)), "compare", "expected compare.<key>=value")
        out_dir = cli.pop("out_dir", None)  # as for fit: where the result goes, here the comparison directory
        recipe = cli.get("recipe")
        overrides = [a for a in args if a.split("=", 1)[0].split(".")[0] not in ("seeds", "arms", "compare", "out_dir",
                                                                                 "recipe")]
        return cls(None if recipe is None else str(recipe), cli.get("arms"), cli.get("seeds", 5), overrides,
                   OmegaConf.to_container(settings) if isinstance(settings, DictConfig) else dict(settings),
                   None if out_dir is None else str(out_dir))

    def common(self) -> list[str]:
        """Every run's arguments before its arm's: the recipe and the overrides."""
        return [*([f"recipe={self.recipe}"] if self.recipe is not None else []), *self.overrides]


def plan(args: list[str]) -> Plan:
    """The plan of the `compare` command's arguments (see `make_plan`)."""
    return make_plan(Request.from_args(args))


def make_plan(request: Request) -> Plan:
    """Everything a comparison will do, with every run's config validated (one-line errors before anything runs)."""
    seeds = parse_seeds(request.seeds)
    common = request.common()
    recipe = str(request.recipe or load_config([]).recipe)
    kind = kind_of_recipe(recipe)
    recipe_arms, recipe_compare = kind.sections(recipe, common)
    given = OmegaConf.to_container(request.settings) if isinstance(request.settings, DictConfig) else dict(request.settings)
    if request.out_dir is not None:
        require(given.get("out_dir") in (None, request.out_dir), "out_dir", f"'{request.out_dir}' and compare.out_dir="
                f"'{given.get('out_dir')}' disagree; give the comparison directory once")
        given["out_dir"] = request.out_dir
    settings = compare_settings(recipe_compare, given)
    arms = resolve_arms(request.arms, recipe_arms)
    for arm, spec in arms.items():
        kind.check_arm(arm, spec)
    if settings.baseline not in arms:
        raise unknown("baseline arm", settings.baseline, arms, key="compare.baseline")

    require(not request.skip_refused or settings.out_dir, "out_dir", "is required to leave out the arms that do not apply")
    defined_by = [recipe, sorted(common), arms, seeds]
    directory = Path(settings.out_dir or Path("runs") / "compare" / f"{recipe_stem(recipe)}-{identity_tag(defined_by)}")
    result = Plan(recipe, arms, seeds, settings, directory, kind=kind.command)
    measured: dict[str, dict] = {}
    configs: dict[str, dict] = {}  # arm → its resolved config (as every seed has it, less the seed and directory)
    sources: dict[str, str] = {}  # plugin source file → hash of its text
    for arm, spec in arms.items():
        arm_args = arm_arguments(spec)
        stop = [] if not settings.stop_early or any(a.startswith("stop.when_all_learned=") for a in [*common, *arm_args]) \
            else ["stop.when_all_learned=true"]
        defaults = [*stop, *kind.unless_given([*common, *arm_args])]  # set for the runs unless the user sets them
        checked = None
        for seed in seeds:
            run_dir = directory / arm / f"seed{seed}"
            run_args = [*common, *defaults, *arm_args, f"seed={seed}", f"out_dir={run_dir}",
                        *kind.extra_arguments(directory, arm)]
            # every run's config is valid before any runs: an arm's runs differ only in their seed (checked by
            # parse_seeds) and directory, so its config is checked once, with its first seed
            try:
                checked = checked or kind.check(run_args, recipe, applies=request.skip_refused)
            except UserError as e:
                raise UserError(f"arm {arm}: {e}") from None
            require(not (checked.refusal and arm == settings.baseline), f"arms.{arm}",
                    f"is the baseline (compare.baseline) and does not apply to recipe {recipe}: {checked.refusal}")
            if checked.refusal:
                break
            result.runs.append(Run(arm, seed, run_args, run_dir, own_process=checked.own_process, command=kind.command))
        if checked.refusal:
            result.skipped[arm] = checked.refusal
            continue
        measured[arm] = checked.measured
        configs[arm] = checked.resolved
        sources.update(checked.sources)
    result.arms = {arm: spec for arm, spec in arms.items() if arm not in result.skipped}
    result.identity = json.dumps([recipe, sorted(common), result.arms, seeds], sort_keys=True)
    first = next(iter(measured))
    for arm, what in measured.items():
        require(what == measured[first], f"arms.{arm}",
                f"must train the same skills and measure them alike as arm {first} (skills and metric.*), "
                f"to be compared: {what} vs {measured[first]}")
    from skilltrain import __version__

    result.resolved = {"skilltrain": __version__, "configs": configs, "plugin_sources": sources,
                       "allow_changed": []}
    return result


def _first_difference(old, new, prefix: str = "") -> str | None:
    """The first dotted key at which two resolved configs differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                return f"{where} {'added' if key not in old else 'removed'}"
            found = _first_difference(old[key], new[key], where)
            if found:
                return found
        return None
    return None if old == new else f"{prefix} {json.dumps(old)} → {json.dumps(new)}"


def _results_only(config: dict) -> dict:
    """A resolved config less what changes only a run's figures (analysis.plots): runs that differ there pool."""
    analysis = {k: v for k, v in (config.get("analysis") or {}).items() if k != "plots"}
    return {**config, "analysis": analysis} if "analysis" in config else config


def changes(saved: dict, plan: Plan) -> list[str]:
    """What differs between the resolved configs recorded in plan.json and this plan's: one phrase per change. A
    config recorded by an older skilltrain is migrated first: a key added since, at the value that reproduces the old
    runs, is no change."""
    found = []
    if saved.get("skilltrain") != plan.resolved["skilltrain"]:
        found.append(f"skilltrain {saved.get('skilltrain')} → {plan.resolved['skilltrain']}")
    for arm, config in plan.resolved["configs"].items():
        old = saved.get("configs", {}).get(arm)
        diff = None if old is None else _first_difference(_results_only(migrate(old)), _results_only(config))
        if diff:
            found.append(f"arm {arm}: {diff}")
    old_sources = saved.get("plugin_sources", {})
    for path, digest in plan.resolved["plugin_sources"].items():
        if old_sources.get(path, digest) != digest:
            found.append(f"plugin source {path} edited")
    return found


# ---- running ---------------------------------------------------------------------------------------------------


def read_summary(run_dir: Path) -> dict | None:
    from skilltrain.rundir import RunDir

    return RunDir(run_dir).read_summary()


def settle(run: Run, stopped_note: str) -> bool:
    """Record how `run` ended from its summary: done (completed or diverged), or stopped with a checkpoint (failed
    for now, resumed by the next command, `stopped_note` saying so). False when its summary says neither."""
    if settle_finished(run):
        return True
    if (read_summary(run.run_dir) or {}).get("status") == "stopped":
        run.state, run.note = "failed", stopped_note
        return True
    return False


def settle_finished(run: Run) -> bool:
    """Record `run` as done when its summary says it finished (completed or diverged): one that ended before the
    process that ran it died. False otherwise (the run is then not touched)."""
    from skilltrain.analysis.stats import COUNTED

    status = (read_summary(run.run_dir) or {}).get("status")
    if status in COUNTED:
        run.state, run.note = "done", status
    return status in COUNTED


def next_command(run: Run) -> list[str]:
    """Fresh, resumed (stopped or killed, with a checkpoint) or restarted (half-done without one); [] when finished."""
    from skilltrain.analysis.stats import COUNTED

    summary = read_summary(run.run_dir)
    if summary and summary.get("status") in COUNTED:  # finished: counted, never run again
        return []
    return kind(run.command).next_command(run)


def run_in_process(command: str, args: list[str]) -> int:
    """Run `fit <args>` or `theory <args>` (a next_command) in this process: its exit code, as `python -m skilltrain
    <command> <args>` ends (a UserError is one line and exit 2). What a comparison's workers and cluster jobs run."""
    return command_exit(command, lambda: kind(command).run(args))


def check_directory(plan: Plan) -> None:
    """A comparison directory holds one comparison: the same command continues it; another one is refused, so that
    runs of different commands never mix in one set of statistics. So is the same command when what it resolves to
    changed since (a recipe, preset or plugin edited, another skilltrain): unless `compare.allow_changed=true`, which
    is recorded in plan.json (`allow_changed`)."""
    path = plan.directory / "plan.json"
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise UserError(f"compare.out_dir: '{path}' is unreadable; choose another compare.out_dir") from None
    if not isinstance(saved, dict):  # written by an older skilltrain: the identity alone
        saved = {"identity": saved}
    if saved.get("identity") != json.loads(plan.identity):
        raise UserError(f"compare.out_dir: '{plan.directory}' holds a comparison made by another command (recipe, "
                        "arms, seeds or overrides differ); choose another compare.out_dir")
    if "configs" not in saved:
        return
    found = changes(saved, plan)
    plan.resolved["allow_changed"] = list(saved.get("allow_changed", []))
    if found and not plan.settings.allow_changed:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise UserError(f"compare.allow_changed: '{plan.directory}' holds runs of another config: {found[0]}{more}; "
                        "choose another compare.out_dir, or pool them anyway with compare.allow_changed=true")
    if found:
        plan.resolved["allow_changed"].append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changes": found})


_check_directory = check_directory  # (the name before it was public)
