"""What every model config takes (`model.*`); models add their own keys."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from skilltrain.data.base import DTYPES
from skilltrain.errors import UserError, unknown

HEADS = ("auto", "shared", "per_skill")


@dataclass
class ModelConfig:
    name: str = MISSING
    dtype: str = "float32"  # float32 | float64 (the paper's parity runs) | bfloat16 | float16
    head: str = "auto"  # control-form tasks: shared | per_skill (one output block per skill) | auto (the task's choice)
    compile: bool = False  # torch.compile the model's forward (in place: checkpoints keep their keys)

    def validate(self) -> None:
        if self.dtype not in DTYPES:
            raise unknown("dtype", self.dtype, DTYPES, key="model.dtype")
        if self.head not in HEADS:
            raise unknown("head", self.head, HEADS, key="model.head")


def require_tokens(task, model: str) -> None:
    """One line for a model that reads token ids (`model`: how to name it) given a task of feature vectors."""
    if not task.tokens:
        raise UserError(f"model.name: {model} needs token inputs; task {task.cfg.name} gives vectors "
                        "unless data.token_form=true")
