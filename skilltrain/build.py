"""A run's parts, built from its config: `build_run(cfg) -> (module, datamodule, interventions)`.

Used by `fit` (skilltrain.run) and by analysis that rebuilds a trained model (skilltrain.analysis.representations),
so that both build a run the same way and analysis never imports the training loop.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def build_run(cfg: DictConfig, data: bool = True) -> tuple:
    """(module, datamodule, interventions) for a checked config: the SkillModule with its initial weights (drawn
    from `seed`), the SkillDataModule (its pool and held-out set drawn from `data.seed`, else `seed`; None with
    `data=False`, for a reader that needs only the model) and the interventions as callbacks, checked to work here
    and with each other (one-line errors)."""
    import lightning as L

    from skilltrain.config import to_container
    from skilltrain.data.datamodule import SkillDataModule
    from skilltrain.module import SkillModule

    L.seed_everything(cfg.seed, workers=True, verbose=False)  # before the model exists: its initial weights follow seed
    module = SkillModule(to_container(cfg))
    datamodule = None
    if data:
        data_seed = cfg.data.seed if cfg.data.seed is not None else cfg.seed
        datamodule = SkillDataModule(module.task, cfg.data.n_samples, cfg.data.batch_size, cfg.data.eval_samples,
                                     cfg.seed, data_seed)
    return module, datamodule, build_interventions(cfg, module.task)


def build_interventions(cfg: DictConfig, task) -> list:
    """The configured interventions as callbacks, checked to work here and with each other (one-line errors)."""
    from skilltrain.callbacks.intervention import build_intervention, check_composition

    interventions = [build_intervention(name, OmegaConf.to_object(params), task) for name, params in cfg.interventions.items()]
    check_composition(interventions, cfg)
    return interventions
