"""The run's own callbacks, one per file: what every `fit` adds to the Trainer besides the interventions.

- skill_progress.SkillProgress: when each skill is learned, and the per-skill curves
- divergence_guard.DivergenceGuard: stops a run whose loss goes non-finite or explodes (TrainingDiverged)
- stop_on_sigint.StopOnSigint: a first Ctrl-C stops at a step boundary, on every rank alike
- stop_when_all_learned.StopWhenAllLearned: `stop.when_all_learned`
- checkpoints.RunCheckpoints: the run's checkpoints, written atomically and never of a diverged state
- step_progress.StepProgress: the progress bar (or plain lines in a log)
- wandb_setup.WandbSetup: the config and per-skill keys for W&B
- discover_recording.DiscoverRecording: `discover.record`, the probe set's per-sample loss curves for `discover`
- heartbeat: when the run last made progress (a step, an evaluation batch, a checkpoint), for a comparison's worker
"""

from skilltrain.callbacks.run.checkpoints import RunCheckpoints
from skilltrain.callbacks.run.discover_recording import DiscoverRecording
from skilltrain.callbacks.run.divergence_guard import DivergenceGuard, TrainingDiverged
from skilltrain.callbacks.run.skill_progress import SkillProgress
from skilltrain.callbacks.run.step_progress import StepProgress
from skilltrain.callbacks.run.stop_on_sigint import StopOnSigint
from skilltrain.callbacks.run.stop_when_all_learned import StopWhenAllLearned
from skilltrain.callbacks.run.wandb_setup import WandbSetup

__all__ = ["DiscoverRecording", "DivergenceGuard",
           "RunCheckpoints", "SkillProgress", "StepProgress", "StopOnSigint", "StopWhenAllLearned",
           "TrainingDiverged", "WandbSetup"]
