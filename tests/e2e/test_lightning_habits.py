"""What users of Lightning and W&B expect to work: other Lightning loggers, callbacks from the config in Lightning
CLI's form, W&B sweep agents driving `fit`, quiet logs."""

from __future__ import annotations

import os
import sys

import pytest
import yaml
from helpers import fit_quietly, run_cli

from skilltrain.cli import main

SMALL = ("recipe=compositional", "trainer.max_steps=20", "trainer.log_every_n_steps=5")


def test_tensorboard_and_any_other_lightning_logger(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit_quietly(*SMALL, "logger.tensorboard=true", f"logger.extra=[{{class_path: lightning.pytorch.loggers.CSVLogger, "
                f"init_args: {{save_dir: {tmp_path}/other, name: mine}}}}]", out_dir=tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run/tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "skill/x1x2/acc", "skill/x1x2x3x4/loss"} <= tags
    assert [e.step for e in events.Scalars("skill/x1x2/acc")] == [0, 5, 10, 15]
    other = (tmp_path / "other/mine/version_0/metrics.csv").read_text().splitlines()[0]
    assert "skill/x3x4/acc" in other


CALLBACK = '''
import json
import lightning as L


class CountSteps(L.Callback):
    def __init__(self, path, every=1):
        self.path, self.every, self.steps = path, every, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every == 0:
            self.steps.append(trainer.global_step)

    def on_train_end(self, trainer, pl_module):
        with open(self.path, "w") as f:
            json.dump(self.steps, f)
'''


def test_callbacks_from_the_config_in_lightning_cli_form(tmp_path, capsys):
    (tmp_path / "my_callbacks.py").write_text(CALLBACK)
    spec = f"{{class_path: {tmp_path}/my_callbacks.py:CountSteps, init_args: {{path: {tmp_path}/steps.json, every: 5}}}}"
    fit_quietly(*SMALL, f"callbacks=[{spec}]", out_dir=tmp_path / "run")
    assert (tmp_path / "steps.json").read_text() == "[5, 10, 15, 20]"
    bad = {
        "{class_path: lightning.pytorch.callbacks.LearningRateMonitr}":
            "callbacks[0].class_path: cannot import 'lightning.pytorch.callbacks.LearningRateMonitr'",
        "{class_path: lightning.pytorch.callbacks.LearningRateMonitor, init_args: {logging_interval: stepp}}":
            "callbacks[0].init_args: lightning.pytorch.callbacks.LearningRateMonitor: MisconfigurationException",
        "{class_path: torch.nn.Linear, init_args: {in_features: 2, out_features: 3}}":
            "callbacks[0].class_path: torch.nn.Linear made a Linear, not a lightning.pytorch.callbacks.callback.Callback",
        "{clas_path: x.Y}": "callbacks[0]: expected {class_path: my.module.MyClass",
    }
    for given, message in bad.items():
        assert main(["fit", *SMALL, f"callbacks=[{given}]", f"out_dir={tmp_path}/bad"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not (tmp_path / "bad").exists()


SWEEP = """
method: grid
metric: {name: skill/x3x4/acc, goal: maximize}
parameters:
  optim.lr: {values: [0.003, 0.001]}
  model.widths: {values: [[40, 40]]}
command:
  - ${env}
  - ${interpreter}
  - -m
  - skilltrain
  - fit
  - recipe=domino_2task
  - trainer.max_steps=30
  - ${args}
"""


@pytest.mark.slow
def test_a_wandb_sweep_agent_drives_fit_unchanged(tmp_path):
    """The command a `wandb agent` runs for this sweep config (built by W&B's own code, with the values its grid
    picks first), in W&B's offline mode: `--key=value` arguments, the agent's run id, and no warning in a default run."""
    import subprocess

    from wandb.sdk.launch.sweeps import utils

    sweep = yaml.safe_load(SWEEP)
    picked = {"args": {name: {"value": spec["values"][0]} for name, spec in sweep["parameters"].items()}}
    values = {**utils.create_sweep_command_args(picked), "interpreter": [sys.executable], "env": ["/usr/bin/env"]}
    argv = []
    for part in map(str, utils.create_sweep_command(sweep["command"])):  # as wandb_agent.Agent expands it
        argv += (values.get(part[2:-1]) or []) if part.startswith("${") else [part]
    assert "--optim.lr=0.003" in argv and "--model.widths=[40, 40]" in argv
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SWEEP_ID": "sweep42", "WANDB_RUN_ID": "agentrun1",
           "WANDB_API_KEY": ""}
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning" not in result.stderr.lower(), result.stderr  # e.g. W&B's "anonymous setting has no effect"
    assert "it/s" not in result.stderr and "Epoch 0" not in result.stderr  # no Lightning bars in a log
    assert "step 30/30 · loss" in result.stderr  # skilltrain's own progress lines
    run_dir = tmp_path / result.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["optim"]["lr"] == 0.003 and config["model"]["widths"] == [40, 40]
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert [p.name.rsplit("-", 1)[1] for p in offline] == ["agentrun1"]  # the agent's run, so the sweep sees it
    assert list(offline[0].glob("*.wandb"))


def test_argparse_style_overrides(tmp_path):
    result = run_cli("print-config", "--recipe=domino_2task", "--optim.lr=0.003", "--data.frequencies=[1.0, 0.05]")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["optim"]["lr"] == 0.003 and config["data"]["frequencies"] == [1.0, 0.05]
