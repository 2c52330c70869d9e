"""A modular MLP: one block-diagonal sub-network per skill (exp. 4 in docs/experiments.md, the Domino model's remedy).

Every hidden layer is split into K blocks, one per skill; weights between blocks are masked to exactly zero (the
mask multiplies the weight in the forward pass, so masked entries also get exactly zero gradient). Skill k's
outputs (its output units in the outputs form, or its block of a per-skill head) read only block k. With
`split_inputs` the input features are split into K blocks too: the paper's two independent 1→50→50→1 networks.
In the control form each sample is also routed by its skill id: only its skill's block is active, so a shared
head sees one module at a time.

Each block is initialised like a PyTorch Linear layer of the block's own size (bound 1/√fan_in of the block), so
a module starts like the small independent network it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from skilltrain.config import require
from skilltrain.data.base import Task
from skilltrain.models.mlp import ACTIVATIONS, HiddenLayersConfig, flat_input_size, flatten_input
from skilltrain.registry import MODELS


def split_sizes(n: int, k: int) -> list[int]:
    """n units into k contiguous blocks as even as possible."""
    return [len(part) for part in torch.arange(n).tensor_split(k)]


def block_mask(in_sizes: list[int], out_sizes: list[int]) -> torch.Tensor:
    """[out, in] 0/1 mask with ones on the diagonal blocks."""
    return torch.block_diag(*[torch.ones(o, i) for i, o in zip(in_sizes, out_sizes)])


class MaskedLinear(nn.Linear):
    """A Linear layer whose weight is multiplied by a fixed 0/1 mask: masked weights stay zero, gradients there are 0."""

    def __init__(self, mask: torch.Tensor, bias: bool = True):
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("mask", mask.clone())
        with torch.no_grad():  # each output unit: Linear's default init over the inputs it actually reads
            fan_in = mask.sum(dim=1, keepdim=True).clamp(min=1)
            bound = 1 / fan_in.sqrt()
            self.weight.uniform_(-1, 1).mul_(bound * mask)
            if bias:
                self.bias.uniform_(-1, 1).mul_(bound.squeeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


@dataclass
class ModularMLPConfig(HiddenLayersConfig):
    name: str = "modular_mlp"
    widths: list[int] = field(default_factory=lambda: [100, 100])  # total hidden widths, split evenly among skills
    activation: str = "silu"
    split_inputs: bool = False  # also give each skill its own contiguous block of input features


@MODELS.register("modular_mlp", "one block-diagonal MLP module per skill (masked weights, routed by skill id)",
                 ModularMLPConfig)
class ModularMLP(nn.Module):
    def __init__(self, cfg: ModularMLPConfig, task: Task, n_outputs: int):
        super().__init__()
        k = task.n_skills
        self.vocab_size = task.vocab_size
        n_inputs = flat_input_size(task)
        for i, w in enumerate(cfg.widths):
            require(w >= k, f"model.widths[{i}]", f"must be ≥ the number of skills ({k}) to give each a block, got {w}")
        if cfg.split_inputs:
            require(n_inputs >= k, "model.split_inputs", f"needs at least one input per skill ({k}), the task has {n_inputs}")
        self.routes_by_skill = task.form == "control"
        shared_head = task.form == "control" and n_outputs == task.n_outputs
        self.shared_head = shared_head
        sizes = [split_sizes(n_inputs, k) if cfg.split_inputs else None, *[split_sizes(w, k) for w in cfg.widths]]
        layers = []
        for ins, outs in zip(sizes[:-1], sizes[1:]):
            mask = block_mask(ins, outs) if ins else torch.ones(sum(outs), n_inputs)
            layers.append(MaskedLinear(mask))
        out_sizes = [n_outputs] if shared_head else split_sizes(n_outputs, k)
        last = sizes[-1]
        head_mask = torch.ones(n_outputs, sum(last)) if shared_head else block_mask(last, out_sizes)
        self.hidden = nn.ModuleList(layers)
        self.head = MaskedLinear(head_mask)
        self.act = ACTIVATIONS[cfg.activation]()
        # gates[j][skill] = which units of hidden layer j belong to that skill's module
        for j, outs in enumerate(sizes[1:]):
            self.register_buffer(f"gate{j}", block_mask([1] * k, outs).T.contiguous(), persistent=False)

    def skill_owners(self) -> dict[str, torch.Tensor]:
        """Which skill owns each entry of each parameter (its index, or −1 where the skills share it): an entry is
        owned by skill k when only skill k's loss depends on it. A hidden unit of module k, its incoming weights and
        its bias are skill k's (routing zeroes the unit on every other skill's samples; without routing it feeds only
        skill k's outputs); so are skill k's output rows of a per-skill head, and a shared head's weights that read
        module k (routed, they see skill k's samples only). A shared head's bias is shared."""
        owners = {}
        for j, layer in enumerate(self.hidden):
            unit = getattr(self, f"gate{j}").argmax(0)  # each hidden unit is in exactly one module
            owners[f"hidden.{j}.weight"] = unit[:, None].expand_as(layer.weight).clone()
            owners[f"hidden.{j}.bias"] = unit.clone()
        if self.shared_head:
            owners["head.weight"] = unit[None, :].expand_as(self.head.weight).clone()
            owners["head.bias"] = torch.full(self.head.bias.shape, -1, dtype=unit.dtype, device=unit.device)
        else:
            sizes = torch.tensor(split_sizes(self.head.out_features, len(self.gate0)), device=unit.device)
            out = torch.repeat_interleave(torch.arange(len(sizes), device=unit.device), sizes)  # skill of each output
            owners["head.weight"] = out[:, None].expand_as(self.head.weight).clone()
            owners["head.bias"] = out.clone()
        return owners

    def block_norms(self) -> torch.Tensor:
        """[K]: each skill's module's size, the norm of its hidden units' incoming weights over all hidden layers."""
        total = 0
        for j, layer in enumerate(self.hidden):
            squares = (layer.weight * layer.mask).detach().pow(2).sum(1)  # per hidden unit
            total = total + getattr(self, f"gate{j}").to(squares) @ squares
        return total.sqrt()

    def forward(self, x: torch.Tensor, skill: torch.Tensor | None = None) -> torch.Tensor:
        x = flatten_input(x, self.vocab_size, self.head.weight.dtype)
        for j, layer in enumerate(self.hidden):
            x = self.act(layer(x))
            if self.routes_by_skill and skill is not None:
                x = x * getattr(self, f"gate{j}")[skill]
        return self.head(x)
