"""What a run is made of, built from its config: the interventions (and, for analysis, the model they shape).

Used by `fit` (skilltrain.run) and by analysis that rebuilds a trained model (skilltrain.analysis.representations),
so that analysis never imports the training loop.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def build_interventions(cfg: DictConfig, task) -> list:
    """The configured interventions as callbacks, checked to work here and with each other (one-line errors)."""
    from skilltrain.callbacks.intervention import build_intervention, check_composition

    interventions = [build_intervention(name, OmegaConf.to_object(params), task) for name, params in cfg.interventions.items()]
    check_composition(interventions, cfg)
    return interventions
