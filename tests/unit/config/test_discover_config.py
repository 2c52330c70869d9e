"""discover.*: checked once, at config time."""

from __future__ import annotations

import pytest
from helpers import load

from skilltrain.errors import UserError


def test_defaults_and_overrides_are_typed():
    cfg = load("recipe=multitask_parity", "discover.record=true", "discover.n_samples=300", "discover.params=[model.layers.0]")
    assert cfg.discover.record is True and cfg.discover.n_samples == 300 and list(cfg.discover.params) == ["model.layers.0"]
    assert load("recipe=multitask_parity").discover.record is False


@pytest.mark.parametrize("args, message", [
    (("recipe=compositional", "discover.record=true"), "^discover.record: task compositional_parity is of the outputs form"),
    (("recipe=multitask_parity", "discover.n_samples=1"), r"^discover.n_samples: must be ≥ 2"),
    (("recipe=multitask_parity", "discover.params=[]"), "^discover.params: expected parameter names"),
])
def test_bad_discover_settings_are_one_line(args, message):
    with pytest.raises(UserError, match=message):
        load(*args)
