"""Tests generated from the registry: every registered intervention mode — the example plugin's included — passes the
test kit's checks (skilltrain.testing, what `python -m skilltrain check` runs on a user's plugin): it trains and logs
its `intervention/<name>/…` keys, resumes bit for bit, and holds the same state on two DDP processes (that each mode
has test settings and a method card: tests/unit/interventions/test_every_intervention.py)."""

from __future__ import annotations

import pytest
from helpers import IDS, SETTINGS

from skilltrain.testing import check_intervention


@pytest.mark.parametrize("setting", IDS)
def test_it_trains_and_logs_its_keys(setting, tmp_path, clean_registries):
    name, _, args = SETTINGS[setting]
    check_intervention(name, overrides=args, checks=["trains"], out_dir=tmp_path)


@pytest.mark.parametrize("setting", IDS)
def test_it_resumes_bit_exactly(setting, tmp_path, clean_registries):
    name, _, args = SETTINGS[setting]
    check_intervention(name, overrides=args, checks=["resumes"], out_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.parametrize("setting", IDS)
def test_two_ddp_processes_hold_identical_state(setting, tmp_path, clean_registries):
    """Every rank draws its own batches (skills missing from one rank's batch), yet all-reduced statistics make
    every rank's intervention state the same, step by step."""
    name, _, args = SETTINGS[setting]
    check_intervention(name, overrides=args, checks=["ddp"], out_dir=tmp_path)
