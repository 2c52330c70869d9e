"""SkillProgress (moved to skilltrain.callbacks.run.skill_progress; this import path keeps working)."""

from skilltrain.callbacks.run.skill_progress import MIN_SAMPLES, SkillProgress

__all__ = ["MIN_SAMPLES", "SkillProgress"]
