"""Your own skill-tagged task, as a plugin: sparse majority votes, one skill per task.

    python -m skilltrain fit recipe=examples/majority.yaml       # the recipe loads this plugin itself

A task declares its skills and their frequencies (`self.finish(names, frequencies)`) and makes samples on demand:
`sample(n, generator, skill)` returns {"x", "y"} for the given skill ids (control form: each sample belongs to one
skill, and skilltrain draws the skills with the frequencies) — the same contract as the built-in tasks, so every
intervention, metric and comparison works on it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import skilltrain


@dataclass
class MajorityConfig(skilltrain.DataConfig):
    name: str = "sparse_majority"
    n_tasks: int = 4
    n_bits: int = 24  # task bits, after the n_tasks one-hot control bits
    k: int = 5  # bits per vote (odd: no ties)
    alpha: float = 1.0  # Zipf exponent of the task frequencies
    n_samples: int | None = None  # fresh samples every step
    batch_size: int | None = 512
    eval_samples: int = 500  # per task

    def validate(self) -> None:
        super().validate()
        if self.k % 2 == 0 or not 1 <= self.k <= self.n_bits:
            raise ValueError(f"k must be odd and in [1, n_bits], got {self.k}")


@skilltrain.register_task("sparse_majority", "control bits pick a task; label = majority of its k bits (example)",
                          MajorityConfig)
class SparseMajority(skilltrain.Task):
    form = "control"  # one skill per sample, picked by its control bits
    loss = "ce"

    def __init__(self, cfg: MajorityConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        g = torch.Generator().manual_seed(seed)  # the task's structure comes from the data seed
        self.subsets = torch.stack([torch.randperm(cfg.n_bits, generator=g)[: cfg.k] for _ in range(cfg.n_tasks)])
        self.n_inputs = cfg.n_tasks + cfg.n_bits
        weights = [i ** -cfg.alpha for i in range(1, cfg.n_tasks + 1)]
        self.finish([f"vote{i}" for i in range(cfg.n_tasks)], [w / sum(weights) for w in weights])

    def sample(self, n, generator, skill=None):
        bits = torch.randint(0, 2, (n, self.cfg.n_bits), generator=generator, device=generator.device)
        votes = bits.gather(1, self.subsets.to(bits.device)[skill]).sum(1)
        control = torch.nn.functional.one_hot(skill, self.cfg.n_tasks)
        x = torch.cat([control, bits], dim=1).to(self.dtype)
        return {"x": x, "y": (votes > self.cfg.k // 2).long(), "skill": skill}
