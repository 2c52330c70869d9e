"""Configs saved by a run (its config.yaml, a checkpoint's hyper-parameters), and resuming a run with one.

`migrate` is the one place that knows what older versions of skilltrain wrote: it brings a saved config up to the
current keys. A resume continues a run as it was configured: its config.yaml, with command-line changes only to how
it runs (`RESUMABLE_SECTIONS`), never to what it trains (`identity`).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from skilltrain.config.layers import Layers, load_defaults, load_yaml
from skilltrain.config.schema import BUDGET_SCHEDULERS, DEFAULT_ANALYSIS, DEFAULT_DISCOVER
from skilltrain.errors import UserError, require

# What may change when a run is resumed: how long and how it runs, not what it trains.
RESUMABLE_SECTIONS = ("trainer", "logger", "checkpoint", "out_dir", "ckpt_path", "overwrite", "diverge_factor", "plugins",
                      "callbacks", "stop", "analysis")


def migrate(container: dict) -> dict:
    """A config saved by an older skilltrain, with the keys added since at the values that reproduce the old run:
    `analysis.*` (no analyses; a run's own curves.png drawn), `checkpoint.at_learn_steps` (false) and `discover.*`
    (nothing recorded)."""
    return {**container,
            "analysis": {**DEFAULT_ANALYSIS, **(container.get("analysis") or {})},
            "discover": {**DEFAULT_DISCOVER, **(container.get("discover") or {})},
            "checkpoint": {"at_learn_steps": False, **(container.get("checkpoint") or {})}}


def identity(container: dict) -> dict:
    """The parts of a config that define what is trained (they must match to resume)."""
    return {k: v for k, v in container.items() if k not in RESUMABLE_SECTIONS}


def run_dir_of_checkpoint(ckpt_path: str, out_dir: str | None) -> Path:
    """The run a checkpoint belongs to: out_dir, or the directory above a checkpoint's `checkpoints/` folder."""
    if out_dir:
        return Path(out_dir)
    require(ckpt_path != "last", "ckpt_path", "ckpt_path=last needs out_dir=<run directory> to know which run to resume")
    path = Path(ckpt_path)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def resume_layers(cli: DictConfig) -> tuple[DictConfig, Layers]:
    """(the run's saved config, migrated; the layers of the resumed config: it, then the command line)."""
    from skilltrain.rundir import RunDir

    run = RunDir(run_dir_of_checkpoint(str(cli.ckpt_path), cli.get("out_dir")))
    run.require("config", key="ckpt_path", kind="a skilltrain run directory")
    run_dir, saved_path = run.path, run.config_path
    saved = OmegaConf.create(migrate(OmegaConf.to_container(load_yaml(saved_path.read_text(), str(saved_path)))))
    lacking = sorted(_dotted_keys(load_defaults()) - _dotted_keys(saved))
    require(not lacking, "ckpt_path", f"'{run_dir}' was written by an older skilltrain (its saved config has no "
            f"{', '.join(lacking[:3])}{', …' if len(lacking) > 3 else ''}); resume it with the version that made it, "
            "or start a new run")
    cli = OmegaConf.merge(cli, {"out_dir": str(run_dir)})
    return saved, [(str(saved_path), saved), ("the command line", cli)]


def check_unchanged(saved: DictConfig, resumed: dict) -> None:
    """A resume changes nothing that defines what is trained, nor a learning-rate schedule's budget."""
    before, after = identity(OmegaConf.to_container(saved)), identity(resumed)
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            raise UserError(f"{key}: cannot change when resuming a run (this run was trained with its saved config); "
                            "change only trainer.*, logger.* or checkpoint.*, or start a new run")
    scheduler, steps = resumed["optim"]["scheduler"], resumed["trainer"]["max_steps"]
    if scheduler in BUDGET_SCHEDULERS and steps != saved.trainer.max_steps:
        raise UserError(f"trainer.max_steps: cannot change when resuming a run whose optim.scheduler="
                        f"{scheduler} decays over its {saved.trainer.max_steps} steps (the rest of the run "
                        "would follow another schedule); resume with the same budget, or start a new run")


def _dotted_keys(node: DictConfig, prefix: str = "") -> set[str]:
    """Every key of a config, dotted (`metric.min_samples`); plugins' sections (data, model, …) are not walked."""
    keys = set()
    for key in node:
        dotted = f"{prefix}{key}"
        keys.add(dotted)
        value = node._get_node(key)
        if isinstance(value, DictConfig) and key not in ("data", "model", "interventions"):
            keys |= _dotted_keys(value, dotted + ".")
    return keys
