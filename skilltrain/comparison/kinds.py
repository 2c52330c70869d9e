"""The kinds of run a comparison can hold: a network's `fit`, or a toy model's `theory` run. A kind knows how to read
its recipe's `arms:` / `compare:` sections, what each run's arguments add, how to check a run's config and what it
measures, and how to continue a run that did not finish. The plan asks its kind; it never branches on it."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from skilltrain.config import load_config, load_config_plugins, parse_overrides, recipe_sections, require
from skilltrain.config.layers import run_layers
from skilltrain.errors import UserError, unknown

PER_RUN_KEYS = ("seed", "out_dir", "overwrite", "ckpt_path")


@dataclass
class Checked:
    """One run's config, checked, as the plan records it."""

    measured: dict  # the skills it learns and how "learned" is measured: what paired arms must share
    resolved: dict  # its resolved config less the per-run keys (plan.json)
    sources: dict  # the plugin source files it uses, each with a hash of its text
    own_process: bool = False  # it starts processes of its own (DDP): not in a shared worker
    refusal: str | None = None  # why its interventions refuse its task (asked for with `check(..., applies=True)`)


class FitRuns:
    """A network trained by `python -m skilltrain fit`."""

    command = "fit"

    def sections(self, recipe: str, common: list[str]) -> tuple[dict, dict]:
        load_config_plugins(common)  # a plugin's interventions can be arms
        return recipe_sections(recipe)

    def check_arm(self, arm: str, spec: dict) -> None:
        pass

    def extra_arguments(self, directory: Path, arm: str) -> list[str]:
        return ["trainer.enable_progress_bar=false", f"logger.wandb.group=compare-{directory.name}",
                f"logger.wandb.job_type={arm}"]

    def unless_given(self, given: list[str]) -> list[str]:
        """What a comparison's runs are set to unless the user sets it (on the command line, in the recipe or a
        preset): no per-run curves.png (the comparison plots every run together; analysis.plots=per_run keeps them)."""
        _, layers = run_layers(parse_overrides(given))
        user_set = any(OmegaConf.select(layer, "analysis.plots", default=None) is not None for _, layer in layers[1:])
        return [] if user_set else ["analysis.plots=none"]

    def check(self, args: list[str], recipe: str, applies: bool = False) -> Checked:
        """The run's config, loaded and checked once. With `applies`, also whether its interventions work on its task
        (`Checked.refusal`): that imports them, and with them Lightning, so only a benchmark, which leaves out the
        arms that do not apply to a task, asks."""
        cfg = load_config(args)
        _check_visible_to_runs(cfg)
        task = _task(cfg)
        return Checked({"skills": task.skills, "metric": dict(cfg.metric)}, resolved_config(cfg), plugin_sources(cfg),
                       _several_processes(cfg), _refusal(cfg, task) if applies else None)

    def next_command(self, run) -> list[str]:
        """Resumed from its checkpoint (stopped, or killed after one), or restarted (half-done without one)."""
        from skilltrain.rundir import RunDir

        if RunDir(run.run_dir).has_checkpoint():
            return ["fit", "ckpt_path=last", f"out_dir={run.run_dir}", "trainer.enable_progress_bar=false"]
        return ["fit", *run.args, *(["overwrite=true"] if run.run_dir.exists() else [])]

    def run(self, args: list[str]) -> int:
        from skilltrain.run import fit_command

        return fit_command(args)


class TheoryRuns:
    """A toy model's run (`python -m skilltrain theory`): seconds long, no checkpoints, no interventions."""

    command = "theory"

    def sections(self, recipe: str, common: list[str]) -> tuple[dict, dict]:
        from skilltrain.theory.config import recipe_arms

        return recipe_arms(recipe)

    def check_arm(self, arm: str, spec: dict) -> None:
        require(not spec["interventions"], f"arms.{arm}",
                "a toy model's run takes no interventions; give the arm overrides (e.g. optim.name=sgd)")

    def extra_arguments(self, directory: Path, arm: str) -> list[str]:
        return []

    def unless_given(self, given: list[str]) -> list[str]:
        return []

    def check(self, args: list[str], recipe: str, applies: bool = False) -> Checked:
        """The run's config, loaded and checked once (a toy model's run has no interventions to refuse it)."""
        from skilltrain.theory.config import load_theory_config
        from skilltrain.theory.run import cfg_skills

        cfg = load_theory_config(args)
        require(not cfg.scaling.dims, "scaling.dims", "a scaling sweep is one run over its own seeds (scaling.seeds); "
                f"run it with `python -m skilltrain theory recipe={recipe}`, not compare")
        return Checked({"skills": cfg_skills(cfg)[0], "metric": {"threshold": cfg.metric.threshold}}, resolved_config(cfg), {})

    def next_command(self, run) -> list[str]:
        """A half-written run restarts (it takes seconds)."""
        return ["theory", *run.args, *(["overwrite=true"] if run.run_dir.exists() else [])]

    def run(self, args: list[str]) -> int:
        from skilltrain.theory.run import theory_command

        return theory_command(args)


KINDS = {kind.command: kind for kind in (FitRuns(), TheoryRuns())}


def kind_of_recipe(recipe: str):
    """The kind of run a recipe makes: a toy model's recipe (a `theory:` section) makes theory runs."""
    from skilltrain.theory.config import is_theory_recipe

    return KINDS["theory"] if is_theory_recipe(recipe) else KINDS["fit"]


def kind(command: str):
    if command not in KINDS:
        raise unknown("command", command, tuple(KINDS))
    return KINDS[command]


# ---- what a fit run's config records and must satisfy ----------------------------------------------------------------


def resolved_config(cfg) -> dict:
    """A run's resolved config as plain data, less what differs between the runs of an arm (seed, directory)."""
    from skilltrain.files import dumps_json

    data = OmegaConf.to_container(cfg, resolve=True)
    return json.loads(dumps_json({k: v for k, v in data.items() if k not in PER_RUN_KEYS}))  # as plan.json holds it


def _used_entries(cfg) -> list:
    """(registry, name, mode) of every registered thing a run uses: its task, model, optimizer, interventions."""
    from skilltrain.registry import INTERVENTIONS, MODELS, OPTIMIZERS, TASKS

    used = [(TASKS, cfg.data.name, None), (MODELS, cfg.model.name, None), (OPTIMIZERS, cfg.optim.name, None)]
    return used + [(INTERVENTIONS, name, getattr(params, "mode", None)) for name, params in cfg.interventions.items()]


def _source(entry, mode):
    return entry.mode_sources.get(mode, entry.source) if entry.modes else entry.source


def plugin_sources(cfg) -> dict[str, str]:
    """The source files of the plugins' entries a run uses, each with a hash of its text: an edit between reruns
    changes what ran."""
    from skilltrain.registry import BUILTIN

    found = {}
    for registry, name, mode in _used_entries(cfg):
        entry = registry.get(name)
        source = _source(entry, mode)
        if source == BUILTIN:
            continue
        try:
            path = inspect.getsourcefile(entry.modes.get(mode) if entry.modes else entry.obj)
            found[str(path)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        except (TypeError, OSError):  # no file to read (a module built in memory): its plugin's name stands for it
            found[str(source)] = "unreadable"
    return found


def _several_processes(cfg) -> bool:
    """Whether a run starts processes of its own (DDP on several devices or nodes)."""
    t = cfg.trainer
    return str(t.strategy).startswith("ddp") or t.num_nodes > 1 or str(t.devices) not in ("1", "[0]")


def _check_visible_to_runs(cfg) -> None:
    """Every run is a new process: what it uses must be built in, or come from a plugin it loads too. An entry
    registered by this process's own code would make every run of the arm fail; refuse it here, in one line."""
    from skilltrain.registry import THIS_PROCESS

    for registry, name, mode in _used_entries(cfg):
        if _source(registry.get(name), mode) == THIS_PROCESS:
            raise UserError(f"{registry.key}: {registry.kind} '{name}' is registered by this process only, and each run of "
                            "a comparison is a new process; put it in a plugin (plugins=[my_plugin.py], its own "
                            "run guarded by `if __name__ == \"__main__\":`)")


def _refusal(cfg, task) -> str | None:
    """None when the run's interventions work on its task; else their one-line refusal. Any UserError of
    build_interventions counts, as it always has for the benchmark: a task an intervention refuses, and also two
    interventions that cannot be combined (check_composition), which then leave the arm out of every task, each
    with its reason in the leaderboard. Mistakes in the config itself (unknown keys, bad values) are raised by
    load_config before this is asked."""
    from skilltrain.build import build_interventions

    try:
        build_interventions(cfg, task)
    except UserError as e:
        return str(e)
    return None


def _task(cfg):
    """The run's task, its data drawn as the run draws it: the skills it learns (what paired arms must share)."""
    from skilltrain.data import build_task
    from skilltrain.data.base import DTYPES

    data_seed = cfg.data.seed if cfg.data.seed is not None else cfg.seed
    return build_task(OmegaConf.to_object(cfg.data), data_seed, DTYPES[cfg.model.dtype])
