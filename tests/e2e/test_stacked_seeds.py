"""Seeds trained stacked (skilltrain.stacking, compare.stack_seeds=true) give what each seed gives alone: on a CPU in
float64, the same learn steps and steps, and curves and weights equal to 1e-9 relative (the stacked forward pass
multiplies batched matrices, whose sums round in another order: about 1e-16 apart per step). For every built-in
intervention mode that declares itself stackable, every README recipe, seeds that stop at different steps, a seed
that fails, and a resume of a stacked run on its own."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import threading
import time
from unittest import mock

import lightning as L
import pytest
import torch
from helpers import IDS, SETTINGS, SHORT_RUN, fit_quietly, load

RTOL = 1e-9


def _stacked(args: tuple, seeds: list[int], root, callbacks=()) -> list:
    """fit_stacked on `seeds`; checks that they did train stacked: as many shared backward passes as the longest
    run has steps, the first of them with every seed."""
    from skilltrain.stacking import SeedStack, fit_stacked

    cfgs = [load(*args, f"seed={s}", f"out_dir={root}/stacked{s}", "trainer.enable_progress_bar=false",
                 "logger.wandb.mode=disabled") for s in seeds]
    passes = []
    backward = SeedStack._backward

    def counted(self, losses):
        passes.append(len(losses))
        return backward(self, losses)

    with mock.patch.object(SeedStack, "_backward", counted), contextlib.redirect_stdout(io.StringIO()):
        results = fit_stacked(cfgs, callbacks=callbacks)
    steps = [r.summary["steps"] for r in results if not isinstance(r, BaseException)]
    accumulate = int(cfgs[0].trainer.get("accumulate_grad_batches") or 1)
    assert steps and passes[:1] == [len(seeds)] and len(passes) == max(steps) * accumulate, (passes[:3], len(passes), steps)
    return results


def _alone(args: tuple, seeds: list[int], root) -> None:
    for s in seeds:
        fit_quietly(*args, f"seed={s}", out_dir=root / f"alone{s}")


def _rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _close(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=RTOL, abs_tol=1e-300)


def assert_same_run(a, b) -> None:
    """The same steps, learn steps and status; curves (metrics.csv) and final weights equal to RTOL relative."""
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in ("steps", "status", "all_learned_step", "learn_order"):
        assert sa[key] == sb[key], key
    assert {k: v["learned_step"] for k, v in sa["skills"].items()} == {k: v["learned_step"] for k, v in sb["skills"].items()}
    ra, rb = _rows(a / "metrics.csv"), _rows(b / "metrics.csv")
    assert len(ra) == len(rb) and ra[0].keys() == rb[0].keys()
    bad = [(i, k, x[k], y[k]) for i, (x, y) in enumerate(zip(ra, rb)) for k in x if not _close(x[k], y[k])]
    assert not bad, bad[:5]
    wa = torch.load(a / "checkpoints/last.ckpt", weights_only=True)
    wb = torch.load(b / "checkpoints/last.ckpt", weights_only=True)
    assert wa["global_step"] == wb["global_step"]
    for k, v in wa["state_dict"].items():
        torch.testing.assert_close(v, wb["state_dict"][k], rtol=RTOL, atol=1e-12)
    # the checkpoint holds this seed's weights alone, not the stacked tensors they were rows of
    assert all(v.untyped_storage().nbytes() == v.numel() * v.element_size() for v in wa["state_dict"].values())


STACKABLE = [s for s in IDS if s != "loss_power (example plugin)"]
NOT_STACKABLE = ("grad_norm", "oracle", "learned", "upgrad", "upgrad_shared", "nash_mtl")  # they differentiate or
# rebuild the model


@pytest.mark.parametrize("setting", STACKABLE)
def test_every_built_in_mode_stacked_equals_alone_or_is_refused(setting, tmp_path, clean_registries):
    from skilltrain.stacking import stack_blockers

    name, _, args = SETTINGS[setting]
    run = (*SHORT_RUN, *args, "trainer.max_steps=40")
    why = stack_blockers(load(*run))
    if setting in NOT_STACKABLE:
        assert why and f"interventions.{name}" in why[0], why
        return
    assert why == []
    results = _stacked(run, [1, 2], tmp_path)
    assert [r.status for r in results] == ["completed", "completed"], results
    _alone(run, [1, 2], tmp_path)
    for s in (1, 2):
        assert_same_run(tmp_path / f"stacked{s}", tmp_path / f"alone{s}")


README_RECIPES = ["compositional", "compositional_control", "domino_2task", "modularity_regression", "grokking",
                  "multitask_parity", "multitask_parity_transformer", "rhm_transformer", "compositional_sparse_parity",
                  "dependency_chain"]


@pytest.mark.parametrize("recipe", README_RECIPES)
def test_readme_recipes_stacked_equal_alone_in_float64(recipe, tmp_path):
    run = (f"recipe={recipe}", "model.dtype=float64", "trainer.max_steps=30", "trainer.log_every_n_steps=5",
           "trainer.val_check_interval=10", "checkpoint.every_n_steps=null")
    _stacked(run, [1, 2], tmp_path)
    _alone(run, [1, 2], tmp_path)
    for s in (1, 2):
        assert_same_run(tmp_path / f"stacked{s}", tmp_path / f"alone{s}")


def test_seeds_that_stop_at_different_steps_keep_their_learn_steps(tmp_path):
    """domino_2task to the end: each seed stops 100 steps after its last skill (at different steps); the others
    train on without it."""
    run = ("recipe=domino_2task", "stop.when_all_learned=true")
    results = _stacked(run, [1, 2, 3], tmp_path)
    steps = [r.summary["steps"] for r in results]
    assert len(set(steps)) == 3, steps  # they did stop at different steps
    _alone(run, [1, 2, 3], tmp_path)
    for s in (1, 2, 3):
        assert_same_run(tmp_path / f"stacked{s}", tmp_path / f"alone{s}")


class _FailSeed(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.cfg.seed == 2 and trainer.global_step == 15:
            raise RuntimeError("seed 2 breaks")


class _FailSeedBeforeBackward(L.Callback):
    """Between its forward pass and its backward pass: the others wait for its loss in the shared backward."""

    def on_before_backward(self, trainer, pl_module, loss):
        if pl_module.cfg.seed == 2 and trainer.global_step == 15:
            raise RuntimeError("seed 2 breaks")


class _FailSeedInValidation(L.Callback):
    """In its evaluation: the others wait for its batch in the next shared forward pass."""

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if pl_module.cfg.seed == 2 and trainer.global_step == 20:
            raise RuntimeError("seed 2 breaks")


@pytest.mark.parametrize("failing", [_FailSeed, _FailSeedBeforeBackward, _FailSeedInValidation])
def test_a_seed_that_fails_leaves_the_others_training(failing, tmp_path):
    run = (*SHORT_RUN, "trainer.max_steps=40", "trainer.val_check_interval=10")
    results = _stacked(run, [1, 2, 3], tmp_path, callbacks=[failing()])
    assert isinstance(results[1], RuntimeError) and "seed 2 breaks" in str(results[1])
    assert results[0].status == results[2].status == "completed"
    _alone(run, [1, 3], tmp_path)
    for s in (1, 3):
        assert_same_run(tmp_path / f"stacked{s}", tmp_path / f"alone{s}")


class _Signal(L.Callback):
    """Sends the process `signum` (`times` times) from seed `seed`'s thread: in its setup (before it has joined the
    stack), or at the end of step `at` (before its next forward pass, while the others wait for it, when sent more
    than once)."""

    def __init__(self, signum, seed, at=None, times=1):
        self.signum, self.seed, self.at, self.times = signum, seed, at, times

    def _send(self, stack=None):
        for n in range(self.times):
            os.kill(os.getpid(), self.signum)
            if stack is None:
                time.sleep(0.5)  # the main thread's handler has run
            elif n == 0:  # the handler has run to its end, where it hands SIGINT back to Python (two signals sent
                # before it runs would arrive as one, and a busy machine can take longer than any fixed sleep)
                _until(lambda: stack.stop_signal == self.signum
                       and signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the handler's first run")
            else:
                _until(lambda: stack.meeting.aborted, "the handler's second run")

    def setup(self, trainer, pl_module, stage):
        if pl_module.cfg.seed == self.seed and self.at is None:
            self._send()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.cfg.seed == self.seed and trainer.global_step == self.at and self.times == 1:
            self._send()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.cfg.seed == self.seed and trainer.global_step == self.at and self.times > 1:
            # every other seed waits for this one first: on a busy machine one may lag behind, and a seed between
            # two steps rightly stops at the first signal
            me, meeting = pl_module.stack.i, pl_module.stack.stack.meeting
            _until(lambda: set(meeting.arrived) >= meeting.active - {me}, "the other seeds at the step")
            self._send(pl_module.stack.stack)


def _until(condition, what: str, timeout: float = 60) -> None:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"no {what} within {timeout} s"
        time.sleep(0.01)


def _signalled(tmp_path, signal_callback, seeds=(1, 2, 3)):
    from skilltrain.stacking import fit_stacked

    cfgs = [load(*SHORT_RUN, "trainer.max_steps=200", f"seed={s}", f"out_dir={tmp_path}/s{s}",
                 "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled") for s in seeds]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        results = fit_stacked(cfgs, callbacks=[signal_callback])
    assert not [t for t in threading.enumerate() if t.name.startswith("seed-")], "a seed still trains"
    return results


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_seed_at_the_end_of_its_step_each_with_its_checkpoint(signum, tmp_path):
    results = _signalled(tmp_path, _Signal(signum, seed=1, at=10))
    assert [r.status for r in results] == ["stopped"] * 3, results
    assert [r.exit_code for r in results] == [128 + signum] * 3
    assert all(r.message.startswith(f"stopped by {'Ctrl-C (SIGINT)' if signum == signal.SIGINT else 'SIGTERM'}")
               for r in results), [r.message for r in results]
    for s, r in zip((1, 2, 3), results):
        assert r.summary["steps"] < 200
        ckpt = torch.load(tmp_path / f"s{s}/checkpoints/last.ckpt", weights_only=True)
        assert ckpt["global_step"] == r.summary["steps"]


def test_ctrl_c_while_the_seeds_start_stops_those_not_yet_started_too(tmp_path):
    """Seed 2 is asked while it sets up (seed 1 waits in the stack, seed 3 has not started): all three stop."""
    results = _signalled(tmp_path, _Signal(signal.SIGINT, seed=2))
    assert [r.status for r in results] == ["stopped"] * 3, results
    assert all(r.summary["steps"] <= 2 for r in results), [r.summary["steps"] for r in results]


def test_a_second_ctrl_c_stops_every_seed_at_once_and_they_have_ended_when_fit_stacked_returns(tmp_path):
    from skilltrain.stacking import Interrupted

    results = _signalled(tmp_path, _Signal(signal.SIGINT, seed=1, at=10, times=2))
    assert all(isinstance(r, Interrupted) for r in results), results
    assert not any((tmp_path / f"s{s}/summary.json").exists() for s in (1, 2, 3))


def test_a_stacked_run_resumes_on_its_own(tmp_path):
    """A stacked run's checkpoint is an ordinary run's: resumed alone, it ends as a run trained alone throughout."""
    from skilltrain.run import fit

    run = (*SHORT_RUN, "interventions.skill_reweighting.mode=online", "interventions.skill_reweighting.update_every=3")
    _stacked((*run, "trainer.max_steps=30"), [1, 2], tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        fit(load("ckpt_path=last", f"out_dir={tmp_path}/stacked1", "trainer.max_steps=60",
                 "trainer.enable_progress_bar=false"), show=False)
    _alone((*run, "trainer.max_steps=60"), [1], tmp_path)
    assert_same_run(tmp_path / "stacked1", tmp_path / "alone1")


def test_compare_with_stack_seeds_gives_the_comparison_without(tmp_path):
    """Through compare's workers: the stackable arm's seeds train stacked, the other arm's one after another (its
    log says why), and every run ends as in the same comparison without stacking."""
    from helpers import run_cli

    args = ["compare", *SHORT_RUN, "trainer.max_steps=40", "seeds=2", "arms.baseline={}",
            "arms.grad_norm.interventions.gradient_rescaling.mode=grad_norm", "compare.workers=2"]
    for name, extra in (("stacked", ["compare.stack_seeds=true"]), ("alone", [])):
        result = run_cli(*args, *extra, f"compare.out_dir={tmp_path}/{name}")
        assert result.returncode == 0, result.stderr[-2000:]
    logs = tmp_path / "stacked/logs"
    assert "not stacked" not in (logs / "baseline-stacked-seeds.log").read_text()
    note = "not stacked: interventions.gradient_rescaling (GradNormWeighting)"
    assert note in (logs / "grad_norm-stacked-seeds.log").read_text()
    for arm in ("baseline", "grad_norm"):
        for s in (1, 2):
            assert f"run_dir: {tmp_path}/stacked/{arm}/seed{s}" in (logs / f"{arm}-seed{s}.log").read_text()
            assert_same_run(tmp_path / f"stacked/{arm}/seed{s}", tmp_path / f"alone/{arm}/seed{s}")


def test_stacked_seeds_each_log_to_their_own_wandb_run(tmp_path, monkeypatch):
    """W&B offline (its default mode): each seed has its own W&B run, its id the run's, with its steps logged."""
    from skilltrain.rundir import RunDir
    from skilltrain.stacking import fit_stacked

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfgs = [load(*SHORT_RUN, "trainer.max_steps=30", f"seed={s}", f"out_dir={tmp_path}/s{s}", "logger.wandb.mode=offline",
                 "trainer.enable_progress_bar=false") for s in (1, 2)]
    with contextlib.redirect_stdout(io.StringIO()):
        results = fit_stacked(cfgs)
    assert [r.status for r in results] == ["completed", "completed"], results
    for s in (1, 2):
        runs = list((tmp_path / f"s{s}/wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs
        history = runs[0] / f"run-{RunDir(tmp_path / f's{s}').run_id}.wandb"
        assert history.is_file() and history.stat().st_size > 4000
        assert "error" not in (runs[0] / "files/output.log").read_text().lower()
