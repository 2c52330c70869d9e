"""What a comparison will run: its arms × paired seeds, each run's validated `fit` arguments and directory, and for
each run what is left to do (nothing, a resume, a restart)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from skilltrain.config import _load_yaml, load_config, load_config_plugins, parse_overrides, recipe_sections, recipe_stem, require
from skilltrain.errors import UserError, unknown
from skilltrain.registry import INTERVENTIONS
from skilltrain.theory.config import is_theory_recipe, load_theory_config
from skilltrain.theory.config import recipe_arms as theory_recipe_sections
from skilltrain.theory.run import cfg_skills

LAUNCHERS = ("local", "submitit")


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
    additional_parameters: dict[str, Any] = field(default_factory=dict)  # any other sbatch option: {qos: high}

    def validate(self) -> None:
        if self.cluster not in (None, "slurm", "local"):
            raise unknown("cluster", str(self.cluster), ("slurm", "local"), key="compare.slurm.cluster")
        require(self.time >= 1, "compare.slurm.time", f"must be ≥ 1 (minutes), got {self.time}")
        require(self.cpus_per_task >= 1, "compare.slurm.cpus_per_task", f"must be ≥ 1, got {self.cpus_per_task}")
        require(self.gpus_per_task >= 0, "compare.slurm.gpus_per_task", f"must be ≥ 0, got {self.gpus_per_task}")
        require(self.mem is None or self.mem >= 1, "compare.slurm.mem", f"must be ≥ 1 (GB) or null, got {self.mem}")
        require(self.array_parallelism >= 1, "compare.slurm.array_parallelism", f"must be ≥ 1, got {self.array_parallelism}")


@dataclass
class CompareSettings:
    workers: int = 1  # runs at a time (each a single process)
    out_dir: str | None = None  # null: runs/compare/<recipe>-<hash of the command>
    baseline: str = "baseline"  # the arm the others are compared with
    dry_run: bool = False  # print the runs' fit commands and stop
    stop_early: bool = True  # each run ends once every skill is learned (stop.when_all_learned; censoring unaffected)
    launcher: str = "local"  # local (worker processes on this machine) | submitit (jobs on a cluster's scheduler)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def validate(self) -> None:
        require(self.workers >= 1, "compare.workers", f"must be ≥ 1, got {self.workers}")
        if self.launcher not in LAUNCHERS:
            raise unknown("launcher", self.launcher, LAUNCHERS, key="compare.launcher")
        self.slurm.validate()


@dataclass
class Run:
    arm: str
    seed: int
    args: list[str]  # the `fit` arguments
    run_dir: Path
    own_process: bool = False  # it starts several processes itself (DDP): not in a shared worker
    command: str = "fit"  # fit | theory (a toy model's run: skilltrain.theory)
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
    theory = is_theory_recipe(recipe)
    if theory:
        recipe_arms, recipe_compare = theory_recipe_sections(recipe)
    else:
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
    for arm, spec in arms.items():
        require(not (theory and spec["interventions"]), f"arms.{arm}",
                "a toy model's run takes no interventions; give the arm overrides (e.g. optim.name=sgd)")
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
            run_args = [*common, *arm_args, f"seed={seed}", f"out_dir={run_dir}"]
            if not theory:
                run_args += ["trainer.enable_progress_bar=false", f"logger.wandb.group=compare-{directory.name}",
                             f"logger.wandb.job_type={arm}"]
            if settings.stop_early and not any(a.startswith("stop.when_all_learned=") for a in [*common, *arm_args]):
                run_args.insert(len(common), "stop.when_all_learned=true")
            try:  # every run's config is valid before any runs
                if theory:
                    cfg = load_theory_config(run_args)
                    require(not cfg.scaling.dims, "scaling.dims", "a scaling sweep is one run over its own seeds "
                            f"(scaling.seeds); run it with `python -m skilltrain theory recipe={recipe}`, not compare")
                    result.runs.append(Run(arm, seed, run_args, run_dir, command="theory"))
                    measured[arm] = {"skills": cfg_skills(cfg)[0], "metric": {"threshold": cfg.metric.threshold}}
                    continue
                cfg = load_config(run_args)
                _check_visible_to_runs(cfg)
            except UserError as e:
                raise UserError(f"arm {arm}: {e}") from None
            result.runs.append(Run(arm, seed, run_args, run_dir, own_process=_several_processes(cfg)))
            measured[arm] = _what_is_measured(cfg)
    first = next(iter(measured))
    for arm, what in measured.items():
        require(what == measured[first], f"arms.{arm}",
                f"must train the same skills and measure them alike as arm {first} (skills and metric.*), "
                f"to be compared: {what} vs {measured[first]}")
    return result


def _several_processes(cfg) -> bool:
    """Whether a run starts processes of its own (DDP on several devices or nodes)."""
    t = cfg.trainer
    return str(t.strategy).startswith("ddp") or t.num_nodes > 1 or str(t.devices) not in ("1", "[0]")


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
    from skilltrain.rundir import RunDir

    return RunDir(run_dir).read_summary()


def settle(run: Run, stopped_note: str) -> bool:
    """Record how `run` ended from its summary: done (completed or diverged), or stopped with a checkpoint (failed
    for now, resumed by the next command, `stopped_note` saying so). False when its summary says neither."""
    from skilltrain.analysis.stats import COUNTED

    status = (_summary(run.run_dir) or {}).get("status")
    if status in COUNTED:
        run.state, run.note = "done", status
    elif status == "stopped":
        run.state, run.note = "failed", stopped_note
    else:
        return False
    return True


def _command(run: Run) -> list[str]:
    """Fresh, resumed (stopped or killed, with a checkpoint) or restarted (half-done without one); [] when finished."""
    from skilltrain.analysis.stats import COUNTED
    from skilltrain.rundir import RunDir

    summary = _summary(run.run_dir)
    if summary and summary.get("status") in COUNTED:  # finished: counted, never run again
        return []
    if run.command == "theory":  # a toy model's run takes seconds: no checkpoints, a half-written one restarts
        return ["theory", *run.args, *(["overwrite=true"] if run.run_dir.exists() else [])]
    if RunDir(run.run_dir).has_checkpoint():  # stopped, or killed after a checkpoint: continue it
        return ["fit", "ckpt_path=last", f"out_dir={run.run_dir}", "trainer.enable_progress_bar=false"]
    restart = ["overwrite=true"] if run.run_dir.exists() else []
    return ["fit", *run.args, *restart]


def _check_directory(plan: Plan) -> None:
    """A comparison directory holds one comparison: the same command continues it; another one is refused, so
    that runs of different commands never mix in one set of statistics."""
    saved = plan.directory / "plan.json"
    if saved.is_file() and saved.read_text() != plan.identity:
        raise UserError(f"compare.out_dir: '{plan.directory}' holds a comparison made by another command (recipe, "
                        "arms, seeds or overrides differ); choose another compare.out_dir")
