"""A comparison's plan checks each arm's config once: an arm's runs differ only in their seed and directory."""

from __future__ import annotations

import pytest

from skilltrain.comparison import plan
from skilltrain.comparison.kinds import FitRuns
from skilltrain.errors import UserError


@pytest.fixture
def checks(monkeypatch) -> list[list[str]]:
    calls: list[list[str]] = []
    check = FitRuns.check

    def counted(self, args, recipe, **kwargs):
        calls.append(list(args))
        return check(self, args, recipe, **kwargs)

    monkeypatch.setattr(FitRuns, "check", counted)
    return calls


def test_each_arm_is_checked_once_and_every_seed_gets_its_run(checks):
    the_plan = plan(["recipe=domino_2task", "arms=[baseline,gradient_rescaling]", "seeds=[3,5,7]"])
    assert len(checks) == 2
    assert [a for a in checks[0] if a.startswith("seed=")] == ["seed=3"]
    assert [(r.arm, r.seed) for r in the_plan.runs] == [(arm, s) for arm in ("baseline", "gradient_rescaling")
                                                        for s in (3, 5, 7)]
    assert [a for a in the_plan.runs[-1].args if a.startswith(("seed=", "out_dir="))] == \
        ["seed=7", f"out_dir={the_plan.directory / 'gradient_rescaling' / 'seed7'}"]
    assert set(the_plan.resolved["configs"]) == {"baseline", "gradient_rescaling"}


def test_a_bad_seed_is_still_refused_before_anything_is_checked(checks):
    with pytest.raises(UserError, match="seeds"):
        plan(["recipe=domino_2task", "arms=[baseline]", "seeds=[1,-2]"])
    assert checks == []
