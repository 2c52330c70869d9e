"""Every registered intervention mode — the example plugin's included — has test settings (tests/helpers: SETTINGS)
and a method card; registering a mode without them fails here. The runs of every mode: tests/e2e/test_every_intervention.py."""

from __future__ import annotations

from helpers import EXAMPLE_PLUGIN, SETTINGS, SHORT_RUN, load

from skilltrain.callbacks.intervention import build_intervention, card_problems
from skilltrain.config import to_container
from skilltrain.registry import INTERVENTIONS

BASE = SHORT_RUN


def unchecked() -> list[str]:
    """Registered (name, mode) pairs without test settings, and classes without a complete method card (each
    setting builds its class: one mode may have several, e.g. online's EG and EXP3)."""
    covered = {(name, mode) for name, mode, _ in SETTINGS.values()}
    problems = [f"{entry.name}{'.' + mode if mode else ''}: no test settings in helpers.SETTINGS"
                for entry in INTERVENTIONS.entries() for mode in entry.modes or [None] if (entry.name, mode) not in covered]
    built = [(entry.name, mode, ()) for entry in INTERVENTIONS.entries() for mode in entry.modes or [None]
             if (entry.name, mode) not in covered]  # a card is owed even before settings are written
    classes = set()
    for name, mode, args in [*SETTINGS.values(), *built]:
        mode_arg = [f"interventions.{name}.mode={mode}"] if mode else []
        cfg = load(*BASE, *args, f"interventions.{name}={{}}" if not args else "seed=2", *mode_arg)
        classes.add(type(build_intervention(name, _params(cfg, name), _task(cfg))))
    return problems + [p for cls in sorted(classes, key=lambda c: c.__name__) for p in card_problems(cls)]


def _task(cfg):
    from skilltrain.module import SkillModule

    return SkillModule(to_container(cfg)).task


def _params(cfg, name):
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg.interventions[name])


def test_every_registered_mode_has_test_settings_and_a_method_card(clean_registries):
    load(EXAMPLE_PLUGIN)  # the example plugin's intervention is registered like any user's
    assert unchecked() == []


def test_a_new_mode_without_settings_or_card_is_caught(clean_registries):
    import skilltrain
    from skilltrain.callbacks.loss_weighting import LossWeighting

    @skilltrain.register_intervention("skill_reweighting", mode="uncarded")
    class Uncarded(LossWeighting):
        def loss_weights(self, module, losses, mask, stats):
            return None

    problems = unchecked()
    assert "skill_reweighting.uncarded: no test settings in helpers.SETTINGS" in problems
    assert "Uncarded: its docstring has no 'Formula.' paragraph" in problems
