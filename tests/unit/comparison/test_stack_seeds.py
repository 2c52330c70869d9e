"""compare.stack_seeds: which runs go to a worker together, what cannot be stacked (and says why), and the meeting
point of stacked seeds: a seed that leaves is not waited for. Stacked runs against runs alone:
tests/e2e/test_stacked_seeds.py."""

from __future__ import annotations

import sys
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


def test_a_member_waiting_when_the_meeting_is_aborted_is_interrupted_and_so_is_a_later_one():
    from skilltrain.stacking import Interrupted

    meeting, raised = _Rendezvous(2), {}

    def member(i):
        try:
            meeting.meet(i, "step", i, lambda got: dict.fromkeys(got))
        except Interrupted as e:
            raised[i] = str(e)

    first = threading.Thread(target=member, args=(0,))
    first.start()
    time.sleep(0.2)  # it waits for member 1, which never comes
    meeting.abort()
    first.join(10)
    assert not first.is_alive() and "second Ctrl-C" in raised[0]
    member(1)
    assert 1 in raised


class _FakeWorker:
    """Answers a fit_stack request as a worker would: writes the seeds' output to the shared log, returns codes."""

    def __init__(self, output: str, codes):
        self.output, self.codes, self.why = output, codes, ""
        self.proc = type("Proc", (), {"pid": 12345})()

    def run(self, command, log):
        with open(log, "a") as f:
            f.write(self.output)
        return self.codes

    def alive(self):
        return self.codes is not None

    def close(self):
        pass


def _runner(tmp_path, monkeypatch, *workers):
    p = plan(["recipe=domino_2task", "seeds=3", "arms=[baseline]", f"compare.out_dir={tmp_path}/c",
              "compare.stack_seeds=true"])
    runner = Runner(p, show=False)
    runner.logs.mkdir(parents=True)
    answers = list(workers)
    monkeypatch.setattr(runner, "_worker", lambda: answers.pop(0))
    return runner, p.runs


def _attempt(runner, runs):
    runner.run_stacked(runs, [["fit", *run.args] for run in runs])


def test_each_attempt_of_stacked_seeds_is_copied_once_into_each_runs_log(tmp_path, monkeypatch):
    runner, runs = _runner(tmp_path, monkeypatch, _FakeWorker("first attempt\n", [130, 130, 130]),
                           _FakeWorker("second attempt\n", [130, 130, 130]))
    _attempt(runner, runs)
    _attempt(runner, runs)
    text = (runner.logs / "baseline-seed2.log").read_text()
    assert text.count("first attempt") == 1 and text.count("second attempt") == 1


def test_a_stacked_seeds_failure_note_is_its_own_line_not_the_last_of_the_shared_log(tmp_path, monkeypatch):
    output = ("error: seed 2: RuntimeError: seed 2 breaks\nnote: seed 3: every skill learned\n"
              "run_dir: x\nrun_dir: y\n")
    runner, runs = _runner(tmp_path, monkeypatch, _FakeWorker(output, [0, 1, 0]))
    _attempt(runner, runs)
    assert runs[1].state == "failed" and runs[1].note == "exit code 1: error: seed 2: RuntimeError: seed 2 breaks"


def test_when_the_worker_dies_the_seeds_that_had_finished_count(tmp_path, monkeypatch):
    from skilltrain.files import write_json

    runner, runs = _runner(tmp_path, monkeypatch, _FakeWorker("…\n", None))
    runs[0].run_dir.mkdir(parents=True)
    write_json(runs[0].run_dir / "summary.json", {"status": "completed"})
    _attempt(runner, runs)
    assert (runs[0].state, runs[0].note) == ("done", "completed")
    assert [r.state for r in runs[1:]] == ["failed", "failed"]


def test_a_worker_answer_that_is_not_one_code_per_seed_is_a_failure_not_a_crash(tmp_path, monkeypatch):
    runner, runs = _runner(tmp_path, monkeypatch, _FakeWorker("…\n", 2))
    _attempt(runner, runs)
    assert all(r.state == "failed" and "answered 2 for 3 seeds" in r.note for r in runs)


def test_a_worker_asked_for_stacked_seeds_answers_one_code_per_seed_when_the_command_exits(monkeypatch):
    import skilltrain.stacking
    from skilltrain.comparison.worker import run_one

    def exits(args):
        raise SystemExit(2)

    monkeypatch.setattr(skilltrain.stacking, "stacked_fit_command", exits)
    assert run_one([["a"], ["b"], ["c"]], "fit_stack") == ([2, 2, 2], True)
    monkeypatch.setattr(skilltrain.stacking, "stacked_fit_command", lambda args: sys.exit())
    assert run_one([["a"], ["b"]], "fit_stack") == ([0, 0], True)  # sys.exit() is success, as a shell sees it


def test_seeds_run_one_after_another_keep_their_codes_when_a_later_one_exits(monkeypatch):
    import skilltrain.run
    import skilltrain.stacking

    calls = []

    def fit_command(args):
        calls.append(args)
        if len(calls) == 2:
            sys.exit(1)  # (Lightning's exit after a second Ctrl-C)
        return 0

    monkeypatch.setattr(skilltrain.stacking, "stack_blockers", lambda cfg: ["not today"])
    monkeypatch.setattr(skilltrain.run, "fit_command", fit_command)
    assert skilltrain.stacking.stacked_fit_command([[*SHORT_RUN, f"seed={s}"] for s in (1, 2, 3)]) == [0, 1, 0]


def test_a_failed_seed_without_a_line_of_its_own_points_to_the_shared_log(tmp_path, monkeypatch):
    runner, runs = _runner(tmp_path, monkeypatch, _FakeWorker("error: data.n_bitz: unknown key\nrun_dir: x\n", [2, 0, 0]))
    _attempt(runner, runs)
    assert runs[0].note == "exit code 2: its output is in baseline-stacked-seeds.log"


def test_a_model_that_cannot_even_be_built_runs_its_seeds_one_after_another(monkeypatch, capsys):
    import skilltrain.run
    import skilltrain.stacking

    def broken(cfg):
        raise ValueError("no such layer")

    monkeypatch.setattr(skilltrain.stacking, "stack_blockers", broken)
    monkeypatch.setattr(skilltrain.run, "fit_command", lambda args: 0)
    assert skilltrain.stacking.stacked_fit_command([list(SHORT_RUN) + ["seed=1"], list(SHORT_RUN) + ["seed=2"]]) == [0, 0]
    assert "not stacked: could not check whether they can be (ValueError: no such layer)" in capsys.readouterr().err


def test_batch_norm_cannot_be_stacked(clean_registries):
    from dataclasses import dataclass

    import torch

    import skilltrain

    @dataclass
    class NormedConfig(skilltrain.ModelConfig):
        name: str = "normed"

    @skilltrain.register_model("normed", "a linear layer after batch norm", NormedConfig)
    class Normed(torch.nn.Module):
        def __init__(self, cfg, task, n_outputs):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.BatchNorm1d(task.n_inputs), torch.nn.Linear(task.n_inputs, n_outputs))

        def forward(self, x):
            return self.net(x)

    found = stack_blockers(load(*SHORT_RUN, "model.name=normed"))
    assert any("batch norm" in w for w in found), found


def test_a_model_that_changes_a_buffer_in_its_forward_pass_is_refused_not_trained_on_stale_copies():
    from types import SimpleNamespace

    import torch

    from skilltrain.stacking import SeedStack

    class Counting(torch.nn.Module):
        def __init__(self, changes: bool):
            super().__init__()
            self.lin, self.changes = torch.nn.Linear(2, 1), changes
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x):
            if self.changes:
                self.calls.add_(1)
            return self.lin(x)

    batches = {0: (torch.ones(3, 2), None), 1: (torch.ones(3, 2), None)}
    for changes in (False, True):
        stack = SeedStack(2)
        stack._stack({i: SimpleNamespace(model=Counting(changes)) for i in (0, 1)})
        if changes:
            with pytest.raises(RuntimeError, match="changes its buffer 'calls' in its forward pass"):
                stack._forward(batches)
        else:
            assert [o.shape for o in stack._forward(batches).values()] == [(3, 1), (3, 1)]
