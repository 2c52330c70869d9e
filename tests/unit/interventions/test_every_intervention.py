"""Every registered intervention mode — the example plugin's included — has test settings (tests/helpers: SETTINGS)
and a method card; registering a mode without them fails here. The runs of every mode: tests/e2e/test_every_intervention.py."""

from __future__ import annotations

from helpers import EXAMPLE_PLUGIN, SETTINGS, load

from skilltrain.registry import INTERVENTIONS
from skilltrain.testing import card_problems_of


def unchecked() -> list[str]:
    """Registered (name, mode) pairs without test settings, and classes without a complete method card (the test
    kit's `card` check; each setting builds its class: one mode may have several, e.g. online's EG and EXP3)."""
    covered = {(name, mode) for name, mode, _ in SETTINGS.values()}
    missing = [(entry.name, mode) for entry in INTERVENTIONS.entries() for mode in entry.modes or [None]
               if (entry.name, mode) not in covered]
    problems = [f"{name}{'.' + mode if mode else ''}: no test settings in helpers.SETTINGS" for name, mode in missing]
    built = [(name, {"mode": mode} if mode else None, ()) for name, mode in missing]  # a card is owed before settings
    for name, settings, args in [*((name, None, args) for name, _, args in SETTINGS.values()), *built]:
        problems += [p for p in card_problems_of(name, settings, args) if p not in problems]
    return problems


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
