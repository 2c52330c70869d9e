"""skilltrain's Python API: what the command line does, as functions. (`skilltrain.fit`, `skilltrain.compare`, …)

    import skilltrain

    run = skilltrain.fit("domino_2task", ["seed=1", "interventions.gradient_rescaling={}"])
    run.summary["skills"]["x3x4"]["learned_step"]

    result = skilltrain.compare("domino_2task", seeds=5, arms=["baseline", "gradient_rescaling"], workers=2)
    result.statistics["skills"]["x3x4"]["gradient_rescaling"]["speedup"]   # median, ci, p_value

Overrides are the command line's `key=value` strings. A mistake raises `skilltrain.UserError` with the one line the
command line would print (it names the key, and the closest valid one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from skilltrain.comparison import ComparisonResult
from skilltrain.errors import UserError
from skilltrain.run import RunResult


def load_config(recipe: str | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """The resolved, validated run config of `recipe` (a name or a YAML path) with `overrides` (`key=value`)."""
    from skilltrain.config import load_config as load

    return load([*([f"recipe={recipe}"] if recipe else []), *overrides])


def fit(recipe: str | None = None, overrides: Sequence[str] = (), *, config: DictConfig | Mapping | None = None,
        callbacks: Sequence[Any] = (), show: bool = True) -> RunResult:
    """Train one run, in this process, and return its result (`run_dir`, `summary`, `status`).

    Either `recipe` and `overrides`, or a whole `config` (from `load_config`, or `print-config`'s YAML loaded as a
    dict). `callbacks`: extra Lightning callbacks. `show=False` prints no table. Under DDP, the processes other than
    rank 0 get a result without a summary.
    """
    from skilltrain.config import from_container
    from skilltrain.run import fit as run_fit

    if config is not None and (recipe is not None or overrides):
        raise UserError("fit: give a recipe with overrides, or a whole config, not both")
    if config is None:
        cfg = load_config(recipe, overrides)
    else:
        cfg = from_container(OmegaConf.to_container(config) if isinstance(config, DictConfig) else dict(config),
                             "the config passed to fit")
    result = run_fit(cfg, callbacks, show)
    if result is None:  # a DDP rank other than 0
        return RunResult(Path(cfg.out_dir or "."), "completed")
    return result


def compare(recipe: str | None = None, *, seeds: int | Sequence[int] = 5, arms: Sequence[str] | Mapping | str,
            overrides: Sequence[str] = (), workers: int | None = None, out_dir: str | None = None,
            show: bool = True) -> ComparisonResult:
    """Compare arms over paired seeds (the runs in `workers` worker processes, or SLURM jobs with
    `compare.launcher=submitit`); returns the statistics as data and the comparison's directory. Rerunning the same
    comparison resumes it.

    `arms`: names (`["baseline", "gradient_rescaling"]`), a mapping `{arm: {"interventions": {...}, "overrides":
    {...}}}`, or the name of an arms file. Interventions, models and tasks you registered in this process are not
    seen by the runs: load them from a plugin (`overrides=["plugins=[my_plugin.py]"]`).
    """
    from skilltrain.comparison import Request, make_plan, run_plan

    request = Request.from_args([*([f"recipe={recipe}"] if recipe else []), *overrides])  # overrides may hold compare.*
    request.seeds = seeds if isinstance(seeds, int) else list(seeds)
    request.arms = arms if isinstance(arms, str) else {str(k): v for k, v in arms.items()} if isinstance(arms, Mapping) \
        else [str(a) for a in arms]
    if workers is not None:
        request.settings = {**request.settings, "workers": workers}
    if out_dir is not None:
        request.out_dir = str(out_dir)
    return run_plan(make_plan(request), show=show)


def intervention(name: str, task, **params):
    """A registered intervention as a Lightning callback, for your own `lightning.Trainer`: its parameters are
    checked as `interventions.<name>.<param>` would be (one-line UserError).

        trainer = lightning.Trainer(callbacks=[skilltrain.intervention("gradient_rescaling", module.task)])
    """
    from skilltrain.callbacks.intervention import build_intervention
    from skilltrain.config import check_intervention_params, translate
    from skilltrain.registry import INTERVENTIONS

    entry = INTERVENTIONS.get(name)
    schema = OmegaConf.structured(entry.schema) if entry.schema else OmegaConf.create({})
    try:
        values = OmegaConf.to_object(OmegaConf.merge(schema, params))
    except Exception as e:
        raise translate(e, schema, "the parameters") from None
    check_intervention_params(name, values)
    return build_intervention(name, values, task)
