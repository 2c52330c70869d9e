"""Multilayer perceptron: input → hidden widths → outputs. Token inputs are one-hot encoded and flattened."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from skilltrain.config import require
from skilltrain.data.base import Task
from skilltrain.errors import unknown
from skilltrain.models.base import ModelConfig
from skilltrain.registry import MODELS

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def flat_input_size(task: Task) -> int:
    """Input width of a model that reads a flat vector: the features, or the one-hot encoded tokens."""
    return task.vocab_size * task.seq_len if task.tokens else task.n_inputs


def flatten_input(x: torch.Tensor, vocab_size: int | None, dtype: torch.dtype) -> torch.Tensor:
    """Token ids [B, T] → their one-hot encodings, flattened [B, T·V]; a feature vector passes unchanged."""
    return x if vocab_size is None else F.one_hot(x, vocab_size).flatten(1).to(dtype)


@dataclass
class HiddenLayersConfig(ModelConfig):
    """Hidden widths and activation: what the MLP-like models share."""

    widths: list[int] = field(default_factory=lambda: [50])
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        require(len(self.widths) >= 1, "model.widths", "must list at least one hidden width, e.g. [50]")
        for i, w in enumerate(self.widths):
            require(w >= 1, f"model.widths[{i}]", f"must be ≥ 1, got {w}")
        if self.activation not in ACTIVATIONS:
            raise unknown("activation", self.activation, ACTIVATIONS, key="model.activation")


@dataclass
class MLPConfig(HiddenLayersConfig):
    name: str = "mlp"
    widths: list[int] = field(default_factory=lambda: [50])  # hidden widths: the paper's [32, 50, 3] is widths=[50]
    activation: str = "relu"
    bias: bool = True


@MODELS.register("mlp", "MLP with hidden model.widths and model.activation (PyTorch default init)", MLPConfig)
class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig, task: Task, n_outputs: int):
        super().__init__()
        self.vocab_size = task.vocab_size
        sizes = [flat_input_size(task), *cfg.widths]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b, bias=cfg.bias), ACTIVATIONS[cfg.activation]()]
        layers.append(nn.Linear(sizes[-1], n_outputs, bias=cfg.bias))
        self.layers = nn.Sequential(*layers)
        # an output block per skill: the outputs form (skill k's loss reads its own outputs), or a per-skill head (each
        # sample reads its own skill's block); None where the skills share every output
        per_skill = task.form == "control" and n_outputs == task.n_outputs * task.n_skills
        blocks = task.n_skills > 1 and (task.form == "outputs" or per_skill)
        self.skill_block = n_outputs // task.n_skills if blocks else None

    def skill_owners(self) -> dict[str, torch.Tensor]:
        """Which skill owns each parameter entry (−1: shared; only skill k's loss depends on an entry skill k owns):
        the output layer's rows of skill k's block of outputs, where each skill has one; everything else is shared."""
        if self.skill_block is None:
            return {}
        head, name = self.layers[-1], f"layers.{len(self.layers) - 1}"
        out = torch.arange(head.out_features, device=head.weight.device) // self.skill_block  # skill of each output
        owners = {f"{name}.weight": out[:, None].expand_as(head.weight).clone()}
        if head.bias is not None:
            owners[f"{name}.bias"] = out.clone()
        return owners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(flatten_input(x, self.vocab_size, self.layers[0].weight.dtype))
