"""The step progress bar (moved to skilltrain.callbacks.run.step_progress; this import path keeps working)."""

from skilltrain.callbacks.run.step_progress import StepProgress

__all__ = ["StepProgress"]
