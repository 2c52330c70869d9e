"""A run's config is validated once, by `load_config`: SkillModule takes it as it is, and a config skilltrain saved
(a checkpoint's, a run's config.yaml) is typed again without being checked again."""

from __future__ import annotations

import pytest
from helpers import fit_quietly, load


@pytest.fixture
def validations(monkeypatch) -> list[str]:
    """Counts config validations: each one checks the data section once (DataConfig.validate, which every task's
    config class extends)."""
    from skilltrain.data.base import DataConfig

    calls: list[str] = []
    check = DataConfig.validate

    def counted(self):
        calls.append(type(self).__name__)
        return check(self)

    monkeypatch.setattr(DataConfig, "validate", counted)
    return calls


def test_skill_module_takes_load_configs_config_as_it_is(validations):
    from skilltrain.config import to_container
    from skilltrain.module import SkillModule

    cfg = load("recipe=domino_2task", "model.widths=[6]")
    assert len(validations) == 1
    module = SkillModule(cfg)
    assert module.cfg is cfg
    assert module.hparams["config"] == to_container(cfg)  # the checkpoint stores plain containers
    SkillModule(to_container(cfg))  # a checkpoint's form: re-typed, not re-validated
    assert len(validations) == 1


def test_a_fit_validates_its_config_once(validations, tmp_path):
    fit_quietly("recipe=domino_2task", "model.widths=[6]", "trainer.max_steps=2", out_dir=tmp_path / "run")
    assert len(validations) == 1


def test_a_saved_config_is_restored_unchecked_and_migrated():
    from skilltrain.config import restore, to_container

    saved = to_container(load("recipe=compositional"))
    del saved["analysis"], saved["checkpoint"]["at_learn_steps"]  # as written before these keys existed
    saved["trainer"]["threads"] = 10_000  # refused today (beyond any machine's cores), not when the run was made
    cfg = restore(saved)
    assert cfg.trainer.threads == 10_000
    assert cfg.analysis.representations is False and cfg.checkpoint.at_learn_steps is False
