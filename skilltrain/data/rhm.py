"""The Random Hierarchy Model (Cagnetta, Petrini, Wyart et al.; exp. 6 in docs/experiments.md).

A class symbol is rewritten L times: at each level every symbol has m production rules (synonyms), each an s-tuple of
the v lower-level symbols, and the rules of one level are distinct tuples, so no tuple belongs to two symbols of a
level. An input is the s^L leaf tokens; since every expansion can be parsed back uniquely, the inputs of a class are
in one-to-one correspondence with the rule choices at its (s^L − 1)/(s − 1) internal nodes:
n_c · m^((s^L − 1)/(s − 1)) distinct inputs in all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skilltrain.config import require
from skilltrain.data.base import DataConfig, Task
from skilltrain.data.stream import exact_counts
from skilltrain.registry import TASKS

RANDPERM_LIMIT = 10**7  # index spaces up to this size are drawn from exactly with randperm; larger ones by rejection


def internal_nodes(s: int, L: int) -> int:
    """Internal nodes of a tree of branching s and depth L: 1 + s + … + s^(L−1)."""
    return (s**L - 1) // (s - 1)


@dataclass
class RHMConfig(DataConfig):
    name: str = "rhm"
    v: int = 8  # vocabulary: the symbols of every level below the top
    n_c: int = 4  # classes: the top-level symbols; one skill each
    m: int = 4  # synonyms: production rules per symbol
    s: int = 2  # branching: each rule is an s-tuple of symbols
    L: int = 3  # depth: an input is the s^L leaf tokens
    n_samples: int | None = 4096  # training pool of distinct inputs; null = fresh (possibly repeated) inputs every step
    batch_size: int | None = 256
    eval_samples: int = 256  # held-out distinct inputs per class, none of them in the pool

    def validate(self) -> None:
        super().validate()
        for key in ("v", "n_c", "s"):
            require(getattr(self, key) >= 2, f"data.{key}", f"must be ≥ 2, got {getattr(self, key)}")
        require(self.m >= 1, "data.m", f"must be ≥ 1, got {self.m}")
        require(self.L >= 1, "data.L", f"must be ≥ 1, got {self.L}")
        tuples = self.v**self.s
        require(self.m * self.n_c <= tuples, "data.m",
                f"m·n_c = {self.m * self.n_c} rules of the top level must be distinct s-tuples, but v^s = {tuples}")
        require(self.L == 1 or self.m * self.v <= tuples, "data.m",
                f"m·v = {self.m * self.v} rules of a lower level must be distinct s-tuples, but v^s = {tuples}")
        self.check_skill_count(self.n_c)
        per_class = self.m ** internal_nodes(self.s, self.L)
        freqs = self.frequencies or [1.0] * self.n_c
        pool = exact_counts([p / sum(freqs) for p in freqs], self.n_samples or 0)
        need = max(pool) + self.eval_samples
        key = "data.n_samples" if self.n_samples else "data.eval_samples"
        require(need <= per_class, key, f"{need} distinct inputs of one class (training pool + held-out set), but a class "
                                        f"has only m^{internal_nodes(self.s, self.L)} = {per_class}")


def distinct_rows(base: int, width: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` distinct rows of `width` digits in [0, base): a uniformly random subset, in random order."""
    device = generator.device
    if base**width <= RANDPERM_LIMIT:
        index = torch.randperm(base**width, generator=generator, device=device)[:count]
        powers = base ** torch.arange(width - 1, -1, -1, device=device)
        return index[:, None] // powers % base
    rows = torch.empty(0, width, dtype=torch.long, device=device)
    while len(rows) < count:  # the space is huge next to count: few repeats to draw again
        more = torch.randint(0, base, (count - len(rows), width), generator=generator, device=device)
        rows = torch.cat([rows, more]).unique(dim=0)
    return rows[torch.randperm(len(rows), generator=generator, device=device)]


@TASKS.register(
    "rhm",
    "exp. 6: Random Hierarchy Model (v, n_c, m, s, L); input = the s^L leaves of a class's random expansion; skills = classes",
    RHMConfig,
)
class RHM(Task):
    form = "control"
    loss = "ce"

    def __init__(self, cfg: RHMConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        g = torch.Generator().manual_seed(seed)
        # rules[l][symbol, j] = the s-tuple of the j-th rule of a level-l symbol (level 0: the classes)
        self.rules = [distinct_rows(cfg.v, cfg.s, parents * cfg.m, g).view(parents, cfg.m, cfg.s)
                      for parents in [cfg.n_c] + [cfg.v] * (cfg.L - 1)]
        self.nodes = internal_nodes(cfg.s, cfg.L)
        self.n_classes = cfg.n_c
        self.n_inputs = cfg.s**cfg.L * cfg.v
        if cfg.token_form:  # the leaf tokens themselves
            self.vocab_size, self.seq_len = cfg.v, cfg.s**cfg.L
        width = len(str(cfg.n_c - 1))
        self.finish([f"class{i:0{width}d}" for i in range(cfg.n_c)], [1.0] * cfg.n_c)

    def expand(self, cls: torch.Tensor, choices: torch.Tensor) -> torch.Tensor:
        """Leaf tokens [n, s^L] of classes `cls` [n] with rule choices [n, nodes] (root first, then level by level)."""
        symbols, used = cls[:, None], 0
        for rules in self.rules:
            width = symbols.shape[1]
            chosen = choices[:, used : used + width]
            symbols = self.on(cls.device, rules)[symbols, chosen].flatten(1)  # [n, width, s] → [n, width · s]
            used += width
        return symbols

    def rows(self, cls: torch.Tensor, choices: torch.Tensor) -> dict[str, torch.Tensor]:
        leaves = self.expand(cls, choices)
        x = leaves if self.tokens else torch.nn.functional.one_hot(leaves, self.cfg.v).flatten(1).to(self.dtype)
        return {"x": x, "y": cls, "skill": cls}

    def sample(self, n, generator, skill=None):
        assert skill is not None and len(skill) == n
        choices = torch.randint(0, self.cfg.m, (n, self.nodes), generator=generator, device=generator.device)
        return self.rows(skill, choices)

    def fixed_split(self, generator):
        """A training pool (each class in proportion to its frequency) and `eval_samples` held-out inputs per class,
        all distinct inputs (distinct rule choices give distinct inputs)."""
        n_pool = self.cfg.n_samples or 0
        counts = exact_counts(self.frequencies, n_pool)
        pool, held_out = [], []
        for c, count in enumerate(counts):
            choices = distinct_rows(self.cfg.m, self.nodes, count + self.cfg.eval_samples, generator)
            cls = torch.full((len(choices),), c, device=generator.device)
            pool.append(self.rows(cls[:count], choices[:count]))
            held_out.append(self.rows(cls[count:], choices[count:]))
        joined = {k: torch.cat([part[k] for part in pool]) for k in pool[0]}
        shuffle = torch.randperm(n_pool, generator=generator, device=generator.device)
        held = {k: torch.cat([part[k] for part in held_out]) for k in held_out[0]}
        return ({k: v[shuffle] for k, v in joined.items()} if self.cfg.n_samples else None), held
