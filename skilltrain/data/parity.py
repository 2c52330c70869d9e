"""Sparse-parity tasks of experiments 1–3 (docs/experiments.md).

Bits are indexed from 1 in skill names, as in the paper: skill "x1x2" is x1 ⊕ x2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skilltrain.config import require
from skilltrain.data.base import DataConfig, Task, parity, random_bits, zipf
from skilltrain.registry import TASKS


def bit_name(subset: list[int]) -> str:
    return "".join(f"x{i + 1}" for i in subset)


class _ParityOutputs(Task):
    """Outputs form: one output unit per skill, each the parity of a subset of the input bits, MSE to the 0/1 target."""

    form = "outputs"
    loss = "mse"

    def setup_subsets(self, n_bits: int, subsets: list[list[int]], frequencies: list[float]) -> None:
        self.n_inputs = n_bits
        if self.cfg.token_form:  # one token per bit, ids 0 and 1
            self.vocab_size, self.seq_len = 2, n_bits
        self.subsets = subsets
        self.finish([bit_name(s) for s in subsets], frequencies)

    def sample(self, n, generator, skill=None):
        bits = random_bits(n, self.n_inputs, generator, self.dtype)
        y = torch.stack([parity(bits, s) for s in self.subsets], dim=1).to(self.dtype)
        return {"x": bits.long() if self.tokens else bits, "y": y}


@dataclass
class MaskedParityConfig(DataConfig):
    name: str = "masked_parity"
    n_bits: int = 32
    k: int = 2  # bits per parity; skill j uses bits j*k+1 … (j+1)*k
    frequencies: list[float] | None = None  # one per skill; the number of skills is its length (default [1.0, 0.1])

    def validate(self) -> None:
        super().validate()
        require(self.k >= 1, "data.k", f"must be ≥ 1, got {self.k}")
        n_skills = len(self.frequencies or [1.0, 0.1])
        require(n_skills * self.k <= self.n_bits, "data.n_bits",
                f"{n_skills} skills of {self.k} disjoint bits need n_bits ≥ {n_skills * self.k}, got {self.n_bits}")


@TASKS.register(
    "masked_parity", "exp. 1: K disjoint k-bit parities, one output each; frequency = loss-mask rate", MaskedParityConfig
)
class MaskedParity(_ParityOutputs):
    def __init__(self, cfg: MaskedParityConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        freqs = list(cfg.frequencies or [1.0, 0.1])
        subsets = [list(range(j * cfg.k, (j + 1) * cfg.k)) for j in range(len(freqs))]
        self.setup_subsets(cfg.n_bits, subsets, freqs)


@dataclass
class CompositionalParityConfig(DataConfig):
    name: str = "compositional_parity"
    n_bits: int = 32
    control: bool = False  # the non-compositional control: the third skill is x5⊕x6⊕x7⊕x8, sharing no bits

    def validate(self) -> None:
        super().validate()
        need = 8 if self.control else 4
        require(self.n_bits >= need, "data.n_bits", f"must be ≥ {need}, got {self.n_bits}")


@TASKS.register(
    "compositional_parity",
    "exp. 2: outputs x3⊕x4, x1⊕x2 and their composite x1⊕x2⊕x3⊕x4 (data.control=true: x5⊕x6⊕x7⊕x8)",
    CompositionalParityConfig,
)
class CompositionalParity(_ParityOutputs):
    def __init__(self, cfg: CompositionalParityConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        third = [4, 5, 6, 7] if cfg.control else [0, 1, 2, 3]
        self.setup_subsets(cfg.n_bits, [[2, 3], [0, 1], third], [1.0, 1.0, 1.0])
        self.prerequisites = {} if cfg.control else {2: ("and", [0, 1])}  # the composite needs both parts


@dataclass
class MultitaskParityConfig(DataConfig):
    name: str = "multitask_parity"
    n_tasks: int = 10
    n_bits: int = 32  # task bits, after the n_tasks one-hot control bits
    k: int = 3  # bits per task's parity (a fixed random k-subset of the task bits per task)
    alpha: float = 1.5  # Zipf exponent: p_i ∝ i^(−alpha), unless data.frequencies is given
    n_samples: int | None = None  # streaming by default (fresh samples every step)
    batch_size: int | None = 2048
    eval_samples: int = 1000  # per task

    def validate(self) -> None:
        super().validate()
        require(self.n_tasks >= 1, "data.n_tasks", f"must be ≥ 1, got {self.n_tasks}")
        require(1 <= self.k <= self.n_bits, "data.k", f"must be in [1, data.n_bits={self.n_bits}], got {self.k}")
        require(self.alpha >= 0, "data.alpha", f"must be ≥ 0, got {self.alpha}")


@TASKS.register(
    "multitask_parity",
    "exp. 3 (Michaud): one-hot control bits pick a task; label = parity of that task's random k-subset; Zipf frequencies",
    MultitaskParityConfig,
)
class MultitaskParity(Task):
    form = "control"
    loss = "ce"

    def __init__(self, cfg: MultitaskParityConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        g = torch.Generator().manual_seed(seed)
        self.subsets = torch.stack([torch.randperm(cfg.n_bits, generator=g)[: cfg.k].sort().values for _ in range(cfg.n_tasks)])
        self.n_inputs = cfg.n_tasks + cfg.n_bits
        if cfg.token_form:  # [task token (id 2 + task), one token per bit (ids 0, 1)]
            self.vocab_size, self.seq_len = 2 + cfg.n_tasks, 1 + cfg.n_bits
        width = len(str(cfg.n_tasks - 1))
        self.finish([f"task{i:0{width}d}" for i in range(cfg.n_tasks)], zipf(cfg.n_tasks, cfg.alpha))

    def task_bits(self, n, generator, skill) -> tuple[torch.Tensor, torch.Tensor]:
        """(the task bits [n, n_bits], each sample's label: the parity of its task's subset of them)."""
        assert skill is not None and len(skill) == n
        bits = random_bits(n, self.cfg.n_bits, generator, self.dtype)
        subsets = self.on(bits.device, self.subsets)[skill]  # [n, k]
        return bits, bits.gather(1, subsets).sum(dim=1).long() % 2

    def sample(self, n, generator, skill=None):
        bits, y = self.task_bits(n, generator, skill)
        if self.tokens:
            return {"x": torch.cat([2 + skill[:, None], bits.long()], dim=1), "y": y, "skill": skill}
        control = torch.nn.functional.one_hot(skill, self.n_skills).to(self.dtype)
        return {"x": torch.cat([control, bits], dim=1), "y": y, "skill": skill}


@dataclass
class HiddenTaskParityConfig(MultitaskParityConfig):
    name: str = "hidden_task_parity"
    n_tasks: int = 4
    n_bits: int = 16  # task bits, after the control bits (two per bit of the task's index)

    def validate(self) -> None:
        require(self.n_tasks >= 2, "data.n_tasks", f"must be ≥ 2, got {self.n_tasks}")
        super().validate()
        require(not self.token_form, "data.token_form", "hidden_task_parity has float inputs only")


@TASKS.register(
    "hidden_task_parity",
    "multitask parity whose task index is the XOR of pairs of control bits: clustering the inputs cannot find the tasks",
    HiddenTaskParityConfig,
)
class HiddenTaskParity(MultitaskParity):
    """Like multitask_parity, but the task is hidden in the inputs: bit j of the task's index is the XOR of control
    bits 2j and 2j+1, each of which is a fair coin on its own. Every control bit, and the task bits, have the same
    distribution in every task, so no clustering of the inputs separates the tasks (k-means: ARI ≈ 0); a network
    that learns a task computes the XOR, and how it learns (its gradients, its loss curves) can tell the tasks apart."""

    def __init__(self, cfg: HiddenTaskParityConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        self.index_bits = max(1, (cfg.n_tasks - 1).bit_length())
        self.n_inputs = 2 * self.index_bits + cfg.n_bits

    def sample(self, n, generator, skill=None):
        bits, y = self.task_bits(n, generator, skill)
        index = (skill[:, None] >> torch.arange(self.index_bits, device=bits.device)) & 1  # [n, index bits]
        first = torch.randint(0, 2, (n, self.index_bits), generator=generator, device=bits.device)
        control = torch.stack([first, first ^ index], dim=2).flatten(1).to(self.dtype)  # pairs (c, c ⊕ bit)
        return {"x": torch.cat([control, bits], dim=1), "y": y, "skill": skill}
