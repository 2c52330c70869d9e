"""A lean training step: between two logging boundaries, skilltrain's own code reads nothing back from the device and
copies nothing to it — for the baseline and every registered intervention mode. On a GPU each such read is a
synchronisation that stalls the step; the values are read once per `trainer.log_every_n_steps` instead.

Counted: `.item()`, `.tolist()`, `.cpu()`, `.numpy()`, `bool()`, `float()`, `int()` of a tensor, and device copies
(`.to(<device or tensor>)`, `.cuda()`, `torch.tensor/as_tensor(..., device=...)`), when called from skilltrain's own
files (the package and its callbacks). PyTorch's and Lightning's own internals are not ours to change, and read only
host-side values here (e.g. Adam's step counter lives on the CPU). An intervention whose method needs the host every
step (a solver on the host: jacobian_descent) says so (`host_every_step`), and its reads are checked to be its own.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import IDS, SETTINGS, SHORT_RUN, load
from torch.overrides import TorchFunctionMode

import skilltrain
import skilltrain.callbacks
from skilltrain.run import fit

READS = {"item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"}
COPIES = {"to", "cuda", "as_tensor", "tensor"}
OURS = (str(Path(skilltrain.__file__).parent), str(Path(skilltrain.callbacks.__file__).parent))
TORCH = str(Path(torch.__file__).parent)


def _moves(func_name: str, args, kwargs) -> bool:
    if func_name == "cuda":
        return True
    if func_name in ("as_tensor", "tensor"):
        return kwargs.get("device") is not None
    target = [*args[1:], *kwargs.values()]  # Tensor.to(self, ...)
    # a device, a device name or a tensor (its device) as a target is a copy; a dtype alone or a flag is not
    return any(isinstance(a, (torch.device, torch.Tensor, str)) for a in target)


class CountHostTraffic(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in READS or (name in COPIES and _moves(name, args, kwargs)):
            frame = sys._getframe(1)
            while frame and (frame.f_code.co_filename.startswith(TORCH) or frame.f_code.co_filename == __file__):
                frame = frame.f_back
            if frame and frame.f_code.co_filename.startswith(OURS):
                self.calls.append(f"{name} at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}")
        return func(*args, **kwargs)


class Window(L.Callback):
    """Counts from the end of step `first - 1` to the end of step `last`: steps first..last, batch making included.
    (Last in the callback list: every other callback's end-of-step work is inside the window.)"""

    def __init__(self, first: int, last: int):
        self.first, self.last = first, last
        self.mode = CountHostTraffic()
        self.active = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.declared = any(getattr(cb, "host_every_step", False) for cb in trainer.callbacks)
        step = trainer.global_step  # steps taken so far
        if self.active and step == self.last + 1:
            self.mode.__exit__(None, None, None)
            self.active = False
        elif step == self.first:
            self.mode.__enter__()
            self.active = True


LEAN = ("trainer.max_steps=30", "trainer.log_every_n_steps=10", "trainer.val_check_interval=1000",
        "checkpoint.every_n_steps=null", "trainer.enable_progress_bar=true")


@pytest.mark.parametrize("setting", ["baseline", *IDS])
def test_no_host_reads_or_device_copies_between_logging_boundaries(setting, tmp_path, clean_registries):
    args = SETTINGS[setting][2] if setting != "baseline" else ()
    window = Window(11, 18)  # boundaries: the logs at steps 10 and 20, the read-backs at the end of steps 9 and 19
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        fit(load(*SHORT_RUN, *args, *LEAN, f"out_dir={tmp_path}/run", "logger.wandb.mode=disabled"), callbacks=[window],
            show=False)
    assert not window.active
    if window.declared:  # an intervention that says it solves on the host every step (jacobian_descent) does, and only
        assert window.mode.calls and all("jacobian_weighting.py" in c for c in window.mode.calls)  # there
    else:
        assert window.mode.calls == [], window.mode.calls


@pytest.mark.parametrize("recipe", ["multitask_parity", "compositional_sparse_parity", "rhm_transformer", "grokking",
                                    "modularity_regression"])
def test_every_task_makes_its_batches_without_host_traffic(recipe, tmp_path):
    """The data side of the step, across the task kinds: a task's constants (parity subsets, control codes, grammar
    rules) and the stream's skill rates are copied to the device once, not with every batch."""
    window = Window(11, 18)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        fit(load(f"recipe={recipe}", "data.batch_size=64", "data.eval_samples=20", *LEAN, f"out_dir={tmp_path}/run",
                 "logger.wandb.mode=disabled"), callbacks=[window], show=False)
    assert not window.active
    if window.declared:  # an intervention that says it solves on the host every step (jacobian_descent) does, and only
        assert window.mode.calls and all("jacobian_weighting.py" in c for c in window.mode.calls)  # there
    else:
        assert window.mode.calls == [], window.mode.calls
