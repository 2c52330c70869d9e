"""Helpers the tests share (imported as `from helpers import ...`; conftest.py holds only fixtures)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from skilltrain.testing import SHORT_RUN as KIT_SHORT_RUN
from skilltrain.testing import differences


def load(*args: str):
    from skilltrain.config import load_config

    return load_config(list(args))


def fit_quietly(*args: str, out_dir: Path) -> dict:
    """Run `fit` in this process with the given overrides; return its summary.json."""
    from skilltrain.run import fit

    cfg = load(*args, f"out_dir={out_dir}", "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled")
    with contextlib.redirect_stdout(io.StringIO()):
        fit(cfg)
    return json.loads((out_dir / "summary.json").read_text())


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m skilltrain …` in a subprocess (an `env` value of None removes that variable)."""
    full_env = {k: v for k, v in {**os.environ, "WANDB_MODE": "disabled", **(env or {})}.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "skilltrain", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Background:
    """A command run in the background while the test watches it. Its output goes to files `<name>.out` and
    `<name>.err` in `directory`, not to pipes: a pipe nobody reads until the end can fill and stall the command. A
    test that fails while the command runs stops it (with its process group, if it has one of its own), so that it
    does not take a core from the other tests."""

    def __init__(self, command: list[str], directory: Path, name: str, **popen):
        self.out, self.err = directory / f"{name}.out", directory / f"{name}.err"
        self.own_group = bool(popen.get("start_new_session"))
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(command, stdout=out, stderr=err, text=True, **popen)

    def wait_until(self, condition, what: str, timeout: float = 120) -> None:
        """Until `condition()` holds; fails at once, with the command's stderr, if the command ends first."""
        start = time.monotonic()
        with self.stopped_on_failure():
            while not condition():
                if self.proc.poll() is not None:
                    raise AssertionError(f"the command ended (exit {self.proc.returncode}) before {what}:\n"
                                         + self.err.read_text()[-1500:])
                assert time.monotonic() - start < timeout, f"no {what} within {timeout} s:\n{self.err.read_text()[-1500:]}"
                time.sleep(0.02)

    def finish(self, timeout: float = 120) -> tuple[str, str]:
        """Wait for the command to end (with its process group, if it has one: DDP's other ranks): its (stdout,
        stderr)."""
        start = time.monotonic()
        with self.stopped_on_failure():
            while self.proc.poll() is None or self._group_alive():
                assert time.monotonic() - start < timeout, f"not ended within {timeout} s:\n{self.err.read_text()[-1500:]}"
                time.sleep(0.02)
        return self.out.read_text(), self.err.read_text()

    def _group_alive(self) -> bool:
        if not self.own_group:
            return False
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    @contextlib.contextmanager
    def stopped_on_failure(self):
        try:
            yield
        except BaseException:
            if self.own_group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
            raise


HELPERS = Path(__file__).resolve().parent  # tests/helpers: also the DDP probe and the single-node SLURM setup
ROOT = HELPERS.parents[1]  # the repository
EXAMPLES = ROOT / "examples"


# A short run that exercises the minibatch stream, evaluations, loss masks and periodic checkpoints (the test kit's).
SHORT_RUN = KIT_SHORT_RUN


def same_run(a, b):
    """Identical final weights, optimizer state, callback states, metrics.csv and summary results (the test kit's
    `resumes` check)."""
    assert differences(a, b) == []


EXAMPLE_PLUGIN = f"plugins=[{EXAMPLES / 'own_intervention.py'}]"

# id → (name, mode, the overrides that enable it). Each registered (name, mode) needs at least one entry.
SETTINGS = {
    "inverse_frequency": ("skill_reweighting", "inverse_frequency", ("interventions.skill_reweighting={}",)),
    "self": ("skill_reweighting", "self", ("interventions.skill_reweighting.mode=self",)),
    "balanced_sampling": ("skill_reweighting", "balanced_sampling",
                          ("interventions.skill_reweighting.mode=balanced_sampling",)),
    "online_eg": ("skill_reweighting", "online", ("interventions.skill_reweighting.mode=online",
                                                  "interventions.skill_reweighting.update_every=3")),
    "online_exp3": ("skill_reweighting", "online", ("interventions.skill_reweighting.mode=online",
                                                    "interventions.skill_reweighting.algorithm=exp3",
                                                    "interventions.skill_reweighting.signal=progress",
                                                    "interventions.skill_reweighting.update_every=3")),
    "resource_guided": ("skill_reweighting", "resource", ("interventions.skill_reweighting.mode=resource",
                                                          "interventions.skill_reweighting.fit_every=10")),  # fits at log steps
    "loss_normalize": ("gradient_rescaling", "loss_normalize", ("interventions.gradient_rescaling={}",)),
    "grad_norm": ("gradient_rescaling", "grad_norm", ("interventions.gradient_rescaling.mode=grad_norm",
                                                      "interventions.gradient_rescaling.target=gradnorm")),
    "sign": ("gradient_rescaling", "sign", ("interventions.gradient_rescaling.mode=sign",)),
    "oracle": ("modular_routing", "oracle", ("interventions.modular_routing={}",)),
    "learned": ("modular_routing", "learned", ("interventions.modular_routing.mode=learned",)),
    "upgrad": ("jacobian_descent", None, ("interventions.jacobian_descent={}",)),
    "nash_mtl": ("jacobian_descent", None, ("interventions.jacobian_descent.aggregator=nash_mtl",)),  # has state
    # a shared trunk and the output rows each skill owns: the owned entries get their gradient through a loss term
    "upgrad_shared": ("jacobian_descent", None, ("interventions.jacobian_descent.params=shared",)),
    "loss_power (example plugin)": ("loss_power", None, (EXAMPLE_PLUGIN, "interventions.loss_power.power=2")),
}
IDS = list(SETTINGS)
