"""Modular addition of exp. 5 in docs/experiments.md (grokking): all p² pairs (a, b), a fixed train / held-out split."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skilltrain.config import require
from skilltrain.data.base import DataConfig, Task
from skilltrain.errors import unknown
from skilltrain.registry import TASKS

SKILLS = ("whole", "residue")


@dataclass
class ModularAdditionConfig(DataConfig):
    name: str = "modular_addition"
    p: int = 59  # modulus: inputs are the tokens a, b in [0, p), label (a + b) mod p
    train_fraction: float = 0.8  # share of the p² pairs in the training pool; the rest is the held-out set
    skills: str = "whole"  # whole: one skill "sum" | residue: skill r_i = pairs with ((a + b) mod p) mod n_residue_skills = i
    n_residue_skills: int = 4  # skills.residue only
    n_samples: int | None = 10000  # ignored: the pool is round(train_fraction · p²) pairs
    eval_samples: int = 2000  # ignored: the held-out set is the other pairs

    def validate(self) -> None:
        super().validate()
        require(self.p >= 2, "data.p", f"must be ≥ 2, got {self.p}")
        n_train = round(self.train_fraction * self.p**2)
        require(0 < n_train < self.p**2, "data.train_fraction",
                f"must leave both a training pool and a held-out set of the {self.p**2} pairs, got {self.train_fraction}")
        if self.skills not in SKILLS:
            raise unknown("skill split", self.skills, SKILLS, key="data.skills")
        if self.skills == "residue":
            r = self.n_residue_skills
            require(2 <= r <= self.p, "data.n_residue_skills", f"must be in [2, data.p={self.p}], got {r}")
        require(self.frequencies is None, "data.frequencies",
                "must be null: modular_addition is a fixed data set (all p² pairs), its skill shares are given")


@TASKS.register(
    "modular_addition",
    "exp. 5 (grokking): tokens a, b → (a + b) mod p; all p² pairs, data.train_fraction trained (data.n_samples ignored)",
    ModularAdditionConfig,
)
class ModularAddition(Task):
    """Control form, always tokens [a, b]. Skill of a pair: one skill `sum`, or its label's residue mod R."""

    form = "control"
    loss = "ce"

    def __init__(self, cfg: ModularAdditionConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        self.n_classes = cfg.p
        self.n_inputs = 2
        self.vocab_size, self.seq_len = cfg.p, 2  # token form whatever data.token_form says
        self.n_groups = cfg.n_residue_skills if cfg.skills == "residue" else 1  # skill = label mod n_groups
        # Skill i holds the labels i, i + R, … < p; every label is the sum of exactly p pairs, so these are the shares.
        sizes = [len(range(i, cfg.p, self.n_groups)) for i in range(self.n_groups)]
        width = len(str(self.n_groups - 1))
        names = ["sum"] if cfg.skills == "whole" else [f"r{i:0{width}d}" for i in range(self.n_groups)]
        self.finish(names, [c / cfg.p for c in sizes])

    def rows(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        y = (a + b) % self.cfg.p
        return {"x": torch.stack([a, b], dim=1), "y": y, "skill": y % self.n_groups}

    def fixed_split(self, generator):
        p = self.cfg.p
        pairs = torch.randperm(p * p, generator=generator, device=generator.device)  # pair a·p + b, shuffled
        n_train = round(self.cfg.train_fraction * p * p)
        train, held_out = pairs[:n_train], pairs[n_train:]
        return self.rows(train // p, train % p), self.rows(held_out // p, held_out % p)

    def sample(self, n, generator, skill=None):
        """Uniform random pairs of the given skills (only for streaming; training uses the fixed split)."""
        assert skill is not None and len(skill) == n
        p, g, device = self.cfg.p, self.n_groups, generator.device
        a = torch.randint(0, p, (n,), generator=generator, device=device)
        sizes = (p - skill + g - 1) // g  # labels of skill i: i, i + g, … < p
        label = skill + g * (torch.rand(n, generator=generator, device=device, dtype=torch.float64) * sizes).long()
        return self.rows(a, (label - a) % p)
