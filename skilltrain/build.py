"""A run's parts, built from its config: `build_run(cfg) -> (module, datamodule, interventions)`, and
`build_model(cfg) -> module`, the model as it trains (what a run's checkpoints fit), for a reader of a run.

Used by `fit` (skilltrain.run) and by analysis that rebuilds a trained model (skilltrain.analysis.representations),
so that both build a run the same way, analysis never imports the training loop, and nothing calls Lightning's
hooks by hand. Neither builds the callbacks or loggers a config names (`fit` does that itself).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def build_run(cfg: DictConfig, data: bool = True) -> tuple:
    """(module, datamodule, interventions) for a checked config: the SkillModule with its initial weights (drawn
    from `seed`), the SkillDataModule (its pool and held-out set drawn from `data.seed`, else `seed`; None with
    `data=False`, for a reader that needs only the model) and the interventions as callbacks, checked to work here
    and with each other (one-line errors). The module keeps `cfg` itself (`module.cfg`), not a copy: change neither
    afterwards."""
    import lightning as L

    from skilltrain.data.datamodule import SkillDataModule
    from skilltrain.module import SkillModule

    L.seed_everything(cfg.seed, workers=True, verbose=False)  # before the model exists: its initial weights follow seed
    module = SkillModule(cfg)  # the checked config itself: typing a copy of it again costs ~40 ms a run
    datamodule = None
    if data:
        data_seed = cfg.data.seed if cfg.data.seed is not None else cfg.seed
        datamodule = SkillDataModule(module.task, cfg.data.n_samples, cfg.data.batch_size, cfg.data.eval_samples,
                                     cfg.seed, data_seed)
    return module, datamodule, build_interventions(cfg, module.task)


def build_model(cfg: DictConfig):
    """The run's SkillModule as it trains, without data: seeded and built as `build_run` builds it, with the model an
    architecture intervention (modular_routing) puts in place at the start of training, so that a checkpoint's
    weights fit it. For a reader of a run: nothing but the module and its interventions is built."""
    from skilltrain.callbacks.architecture import Architecture

    module, _, interventions = build_run(cfg, data=False)
    for intervention in interventions:
        if isinstance(intervention, Architecture):
            intervention.replace_model(module)
    return module


def build_interventions(cfg: DictConfig, task) -> list:
    """The configured interventions as callbacks, checked to work here and with each other (one-line errors)."""
    from skilltrain.callbacks.intervention import build_intervention, check_composition

    interventions = [build_intervention(name, OmegaConf.to_object(params), task) for name, params in cfg.interventions.items()]
    check_composition(interventions, cfg)
    return interventions
