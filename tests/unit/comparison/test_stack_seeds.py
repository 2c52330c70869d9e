"""compare.stack_seeds: which runs go to a worker together, what cannot be stacked (and says why), and the meeting
point of stacked seeds: a seed that leaves is not waited for. Stacked runs against runs alone:
tests/e2e/test_stacked_seeds.py."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import EXAMPLE_PLUGIN, SHORT_RUN, load

from skilltrain.comparison import plan
from skilltrain.comparison.launch import Runner
from skilltrain.stacking import _Rendezvous, stack_blockers


def _groups(tmp_path, *extra):
    p = plan(["recipe=domino_2task", "seeds=3", "arms=[baseline,gradient_rescaling]", f"compare.out_dir={tmp_path}/c",
              *extra])
    return [[(run.arm, run.seed) for run, _ in group] for group in Runner(p, show=False)._groups(
        [(run, ["fit", *run.args]) for run in p.runs])]


def test_with_stack_seeds_an_arms_seeds_go_to_one_worker_together(tmp_path):
    assert _groups(tmp_path, "compare.stack_seeds=true") == [
        [("baseline", 1), ("baseline", 2), ("baseline", 3)],
        [("gradient_rescaling", 1), ("gradient_rescaling", 2), ("gradient_rescaling", 3)]]
    assert _groups(tmp_path) == [[(a, s)] for a in ("baseline", "gradient_rescaling") for s in (1, 2, 3)]


@pytest.mark.parametrize("extra, why", [
    (["model.compile=true"], "model.compile=true"),
    (["trainer.precision=bf16-mixed"], "full precision"),
    (["trainer.strategy=ddp", "trainer.devices=2"], "one device only"),
    (["interventions.gradient_rescaling.mode=grad_norm"], "GradNormWeighting) does not declare itself stackable"),
    ([EXAMPLE_PLUGIN, "interventions.loss_power.power=2"], "interventions.loss_power"),
])
def test_what_cannot_be_stacked_says_why(extra, why, clean_registries):
    assert stack_blockers(load(*SHORT_RUN)) == []
    found = stack_blockers(load(*SHORT_RUN, *extra))
    assert any(why in w for w in found), found


def test_dropout_cannot_be_stacked():
    assert stack_blockers(load("recipe=multitask_parity_transformer")) == []
    found = stack_blockers(load("recipe=multitask_parity_transformer", "model.dropout=0.1"))
    assert any("dropout" in w for w in found), found


def _meet_all(meeting: _Rendezvous, members: list[int], kind=lambda i: "step", leaving: int | None = None):
    results, errors = {}, {}

    def member(i):
        try:
            if i == leaving:
                time.sleep(0.3)  # the others are waiting by then: its leaving must complete their meeting
                meeting.leave(i)
                return
            results[i] = meeting.meet(i, kind(i), i * 10, lambda got: {j: (v, sorted(got)) for j, v in got.items()})
        except RuntimeError as e:
            errors[i] = str(e)

    threads = [threading.Thread(target=member, args=(i,)) for i in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads), "a member still waits"
    return results, errors


def test_members_meet_and_each_gets_its_own_part():
    results, errors = _meet_all(_Rendezvous(3), [0, 1, 2])
    assert errors == {} and results == {0: (0, [0, 1, 2]), 1: (10, [0, 1, 2]), 2: (20, [0, 1, 2])}


def test_a_member_that_leaves_is_not_waited_for():
    results, errors = _meet_all(_Rendezvous(3), [0, 1, 2], leaving=1)
    assert errors == {} and results == {0: (0, [0, 2]), 2: (20, [0, 2])}


def test_members_out_of_step_fail_together_rather_than_mix_their_work():
    results, errors = _meet_all(_Rendezvous(2), [0, 1], kind=lambda i: "forward" if i == 0 else "backward")
    assert results == {} and set(errors) == {0, 1}
