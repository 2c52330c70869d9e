"""Stopping a run (moved to skilltrain.callbacks.run.stop_on_sigint and .stop_when_all_learned; this import path
keeps working)."""

from skilltrain.callbacks.run.stop_on_sigint import StopOnSigint
from skilltrain.callbacks.run.stop_when_all_learned import StopWhenAllLearned

__all__ = ["StopOnSigint", "StopWhenAllLearned"]
