"""The divergence guard (moved to skilltrain.callbacks.run.divergence_guard; this import path keeps working)."""

from skilltrain.callbacks.run.divergence_guard import DivergenceGuard, TrainingDiverged

__all__ = ["DivergenceGuard", "TrainingDiverged"]
