"""The run"s checkpoints (moved to skilltrain.callbacks.run.checkpoints; this import path keeps working)."""

from skilltrain.callbacks.run.checkpoints import RunCheckpoints

__all__ = ["RunCheckpoints"]
