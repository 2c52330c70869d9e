"""Compositional skill structures: atomic sparse parities with composites, and dependency chains/graphs of skills.

A composite's target is a function of its parts' targets, so a network that has learned the parts is close to the
composite: the Domino effect along a dependency structure (exp. 2 in docs/experiments.md, generalised).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from skilltrain.config import require
from skilltrain.data.base import DataConfig, Task, parity, random_bits
from skilltrain.errors import UserError, closest, unknown
from skilltrain.registry import TASKS


@dataclass
class CompositionalSparseParityConfig(DataConfig):
    name: str = "compositional_sparse_parity"
    n_atomic: int = 4  # atomic skills, each the parity of its own random k-subset of the task bits (disjoint subsets)
    n_bits: int = 32  # task bits, after the n_atomic control bits
    k: int = 2  # bits per atomic parity
    composites: list[list[int]] = field(default_factory=lambda: [[0, 1], [2, 3]])  # each: the atomic skills it combines
    alpha: float = 0.0  # Zipf exponent over the atomic skills (0 = uniform), unless data.frequencies is given
    composite_weight: float | None = None  # each composite's weight next to the atomic weights i^(−alpha); null = their mean
    n_samples: int | None = None  # streaming by default (fresh samples every step)
    batch_size: int | None = 1024
    eval_samples: int = 500  # per skill

    def validate(self) -> None:
        super().validate()
        require(self.n_atomic >= 1, "data.n_atomic", f"must be ≥ 1, got {self.n_atomic}")
        require(self.k >= 1, "data.k", f"must be ≥ 1, got {self.k}")
        need = self.n_atomic * self.k
        require(need <= self.n_bits, "data.n_bits",
                f"{self.n_atomic} atomic skills of {self.k} disjoint bits need n_bits ≥ {need}, got {self.n_bits}")
        require(self.alpha >= 0, "data.alpha", f"must be ≥ 0, got {self.alpha}")
        w = self.composite_weight
        require(w is None or w > 0, "data.composite_weight", f"must be > 0 or null, got {w}")
        seen: dict[frozenset[int], int] = {}
        for i, parts in enumerate(self.composites):
            key = f"data.composites[{i}]"
            require(len(set(parts)) == len(parts) >= 2, key, f"a composite needs ≥ 2 distinct atomic skills, got {list(parts)}")
            for j in parts:
                require(0 <= j < self.n_atomic, key, f"atomic skill {j} is out of range [0, {self.n_atomic})")
            require(frozenset(parts) not in seen, key, f"repeats data.composites[{seen.get(frozenset(parts))}]")
            seen[frozenset(parts)] = i


@TASKS.register(
    "compositional_sparse_parity",
    "multi-hot control bits pick atomic sparse parities or composites of them; label = parity of the union of the parts",
    CompositionalSparseParityConfig,
)
class CompositionalSparseParity(Task):
    """Control form. Input [n_atomic control bits | task bits]: atomic skill i sets control bit i, a composite sets
    the bits of all its parts. Since the parts' subsets are disjoint, a composite's label is the XOR of its parts'."""

    form = "control"
    loss = "ce"

    def __init__(self, cfg: CompositionalSparseParityConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        g = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(cfg.n_bits, generator=g)[: cfg.n_atomic * cfg.k]
        self.subsets = chosen.view(cfg.n_atomic, cfg.k).sort(dim=1).values  # [n_atomic, k], disjoint
        parts = [[i] for i in range(cfg.n_atomic)] + [list(c) for c in cfg.composites]
        self.control = torch.zeros(len(parts), cfg.n_atomic, dtype=torch.long)  # [K, n_atomic] multi-hot per skill
        self.bit_mask = torch.zeros(len(parts), cfg.n_bits, dtype=torch.long)  # [K, n_bits] union of the parts' subsets
        for j, p in enumerate(parts):
            self.control[j, p] = 1
            self.bit_mask[j, self.subsets[p].flatten()] = 1
        self.n_inputs = cfg.n_atomic + cfg.n_bits
        if cfg.token_form:  # control bits as ids 2 (off) / 3 (on), task bits as ids 0 / 1
            self.vocab_size, self.seq_len = 4, self.n_inputs
        atomic = [float(i ** (-cfg.alpha)) for i in range(1, cfg.n_atomic + 1)]
        weight = cfg.composite_weight if cfg.composite_weight is not None else sum(atomic) / len(atomic)
        names = [f"a{i}" for i in range(cfg.n_atomic)] + ["+".join(f"a{i}" for i in c) for c in cfg.composites]
        self.finish(names, atomic + [weight] * len(cfg.composites))
        self.prerequisites = {cfg.n_atomic + j: ("and", list(c)) for j, c in enumerate(cfg.composites)}

    def sample(self, n, generator, skill=None):
        assert skill is not None and len(skill) == n
        bits = random_bits(n, self.cfg.n_bits, generator, self.dtype)
        control = self.on(bits.device, self.control)[skill]
        y = (bits.long() * self.on(bits.device, self.bit_mask)[skill]).sum(dim=1) % 2
        if self.tokens:
            return {"x": torch.cat([2 + control, bits.long()], dim=1), "y": y, "skill": skill}
        return {"x": torch.cat([control.to(self.dtype), bits], dim=1), "y": y, "skill": skill}


OPS = ("and", "or", "xor")
STRUCTURES = ("chain", "graph")


@dataclass
class DependencyGraphConfig(DataConfig):
    name: str = "dependency_graph"
    n_bits: int = 32  # input bits
    k: int = 2  # bits per leaf parity: leaf p_j is the parity of bits j·k … (j+1)·k − 1
    structure: str = "chain"  # chain | graph
    length: int = 4  # chain: skills c1 … c{length}, c1 = p0 and c_j = c_{j−1} ⊕ p_{j−1}
    n_leaves: int = 4  # graph: the leaf parities p0 … p{n_leaves−1}, the first skills
    graph: dict[str, Any] = field(default_factory=dict)  # graph: name → {op: and|or|xor, of: [leaves or earlier names]}

    def validate(self) -> None:
        super().validate()
        require(self.k >= 1, "data.k", f"must be ≥ 1, got {self.k}")
        if self.structure not in STRUCTURES:
            raise unknown("structure", self.structure, STRUCTURES, key="data.structure")
        if self.structure == "chain":
            require(self.length >= 1, "data.length", f"must be ≥ 1, got {self.length}")
            require(not self.graph, "data.graph", "is only used with data.structure=graph")
            leaves = self.length
        else:
            require(self.n_leaves >= 1, "data.n_leaves", f"must be ≥ 1, got {self.n_leaves}")
            leaves = self.n_leaves
            self.check_graph()
        require(leaves * self.k <= self.n_bits, "data.n_bits",
                f"{leaves} leaf parities of {self.k} disjoint bits need n_bits ≥ {leaves * self.k}, got {self.n_bits}")

    def check_graph(self) -> None:
        """Every composite combines ≥ 2 distinct leaves or earlier composites with a known op (so no cycles)."""
        leaves = [f"p{i}" for i in range(self.n_leaves)]
        known = list(leaves)  # what the next composite may use
        for name, node in self.graph.items():
            key = f"data.graph.{name}"
            require(name not in leaves, key, "is the name of a leaf parity; choose another name")
            require(name and "/" not in name, key, "a skill name must be non-empty without '/'")
            require(isinstance(node, dict) and set(node) == {"op", "of"}, key,
                    f"expected {{op: and|or|xor, of: [children]}}, got {node}")
            if node["op"] not in OPS:
                raise unknown("op", node["op"], OPS, key=f"{key}.op")
            children = node["of"]
            names_only = isinstance(children, list) and all(isinstance(c, str) for c in children)
            require(names_only and len(set(children)) == len(children) >= 2, f"{key}.of",
                    f"expected a list of ≥ 2 distinct skill names, got {children}")
            for child in children:
                if child in known:
                    continue
                require(child != name, f"{key}.of", f"{name} cannot depend on itself")
                require(child not in self.graph, f"{key}.of",
                        f"{child} is declared after {name}; children must be leaves or earlier composites")
                guess = closest(child, known)
                hint = f"did you mean {guess}?" if guess else f"valid: {', '.join(known)}"
                raise UserError(f"{key}.of: unknown skill '{child}' ({hint})")
            known.append(name)


@TASKS.register(
    "dependency_graph",
    "leaf parities combined by a chain (c_j = c_{j−1} ⊕ p_{j−1}) or a graph of and/or/xor composites; one output each",
    DependencyGraphConfig,
)
class DependencyGraph(Task):
    """Outputs form, like compositional_parity: one output unit per skill, MSE to the 0/1 target."""

    form = "outputs"
    loss = "mse"

    def __init__(self, cfg: DependencyGraphConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        chain = cfg.structure == "chain"
        n_leaves = cfg.length if chain else cfg.n_leaves
        self.leaves = [list(range(j * cfg.k, (j + 1) * cfg.k)) for j in range(n_leaves)]
        self.n_inputs = cfg.n_bits
        if cfg.token_form:  # one token per bit, ids 0 and 1
            self.vocab_size, self.seq_len = 2, cfg.n_bits
        if chain:  # the chain's skills are its prefixes: c_j = p0 ⊕ … ⊕ p_{j−1}
            names = [f"c{j}" for j in range(1, cfg.length + 1)]
            self.nodes = []
        else:
            names = [f"p{i}" for i in range(n_leaves)] + list(cfg.graph)
            self.nodes = [(node["op"], [names.index(c) for c in node["of"]]) for node in cfg.graph.values()]
        self.finish(names, [1.0] * len(names))
        if chain:  # c_j builds on c_{j−1}
            self.prerequisites = {j: ("and", [j - 1]) for j in range(1, cfg.length)}
        else:  # a xor needs every part, like an and
            self.prerequisites = {n_leaves + i: ("or" if op == "or" else "and", children)
                                  for i, (op, children) in enumerate(self.nodes)}

    def sample(self, n, generator, skill=None):
        bits = random_bits(n, self.n_inputs, generator, self.dtype)
        values = torch.stack([parity(bits, s) for s in self.leaves], dim=1)  # [n, n_leaves] in {0, 1}
        if self.cfg.structure == "chain":
            values = values.cumsum(dim=1) % 2
        columns = list(values.unbind(1))
        for op, children in self.nodes:  # in declaration order: children are always computed already
            parts = torch.stack([columns[c] for c in children], dim=1)
            columns.append(parts.amin(1) if op == "and" else parts.amax(1) if op == "or" else parts.sum(1) % 2)
        y = torch.stack(columns, dim=1).to(self.dtype)
        return {"x": bits.long() if self.tokens else bits, "y": y}
