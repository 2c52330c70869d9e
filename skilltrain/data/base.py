"""The task contract: what a skill-tagged sample looks like.

A task declares its skills (names, frequencies) and makes samples. Two data forms (docs/extending.md, "the batch contract"):

- **outputs** form (the paper's Fig 2/16/19 runs): every sample carries all K targets, one output unit per skill;
  `y` is `[n, K]`. A skill's frequency p_k is a loss mask: at each step each sample carries skill k's loss with
  probability p_k (skill k is "present" in a p_k fraction of the batch).
- **control** form (Michaud's multitask sparse parity, users' datasets): each sample belongs to one skill, `skill`
  is `[n]`; `y` is `[n]`. A skill's frequency is its sampling probability. The output head is shared by all
  skills, or (`head = "per_skill"`, e.g. the paper's two-output regression) one block of outputs per skill, of
  which each sample uses its own skill's.

Inputs are a float vector `x: [n, n_inputs]`, or, in token form (`vocab_size` set), token ids `x: [n, seq_len]`.

Everything downstream turns a batch into the per-sample × per-skill loss matrix L[B, K] with its mask M[B, K].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from omegaconf import MISSING

from skilltrain.config import require

FORMS = ("outputs", "control")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
LOSSES = ("mse", "ce")


@dataclass
class DataConfig:
    """Parameters every task takes (`data.*`); tasks add their own."""

    name: str = MISSING
    n_samples: int | None = 10000  # training pool (full-batch mode, as the paper); null = fresh samples every step
    batch_size: int | None = None  # null = full batch: the whole pool every step
    eval_samples: int = 2000  # held-out samples (outputs form: in all; control form: per skill)
    frequencies: list[float] | None = None  # per skill: loss-mask rate (outputs form) or sampling weight (control)
    skill_names: list[str] | None = None  # rename the skills in logs and tables
    seed: int | None = None  # seed of the data (pool, eval set, task structure); null = the run seed
    token_form: bool = False  # inputs as a sequence of token ids (for a transformer) instead of a float vector

    def validate(self) -> None:
        n, b = self.n_samples, self.batch_size
        require(n is None or n >= 1, "data.n_samples", f"must be ≥ 1, or null to stream fresh samples, got {n}")
        require(b is None or b >= 1, "data.batch_size", f"must be ≥ 1, or null for full batch, got {b}")
        require(n is not None or b is not None, "data.batch_size",
                "must be set when data.n_samples is null (streaming has no 'full batch')")
        require(n is None or b is None or b <= n, "data.batch_size", f"{b} is larger than the training pool data.n_samples={n}")
        require(self.eval_samples >= 1, "data.eval_samples", f"must be ≥ 1, got {self.eval_samples}")
        require(self.seed is None or self.seed >= 0, "data.seed", f"must be ≥ 0 or null, got {self.seed}")
        for i, p in enumerate(self.frequencies or []):
            require(p > 0, f"data.frequencies[{i}]", f"must be > 0, got {p}")
        names = self.skill_names or []
        require(len(set(names)) == len(names), "data.skill_names", "names must be distinct")
        for i, s in enumerate(names):
            require(s and "/" not in s, f"data.skill_names[{i}]", f"must be non-empty without '/', got '{s}'")

    def check_skill_count(self, k: int) -> None:
        """Frequencies and names, when given, must have one entry per skill."""
        if self.frequencies is not None:
            require(len(self.frequencies) == k, "data.frequencies",
                    f"expected {k} values (one per skill of {self.name}), got {len(self.frequencies)}")
        if self.skill_names is not None:
            require(len(self.skill_names) == k, "data.skill_names",
                    f"expected {k} names (one per skill of {self.name}), got {len(self.skill_names)}")


class Task:
    """A skill-structured problem. Subclasses set the class attributes and implement `sample`."""

    form: ClassVar[str]  # "outputs" | "control"
    loss: ClassVar[str]  # "mse" | "ce"
    accuracy: ClassVar[bool] = True  # False for regression skills: only their loss is measured
    head: ClassVar[str] = "shared"  # control form: "shared" or "per_skill" output head (model.head=auto follows this)
    skill_in_inputs: bool = True  # control form: the inputs tell the skill (control bits, a task token)
    n_classes: int = 2  # classes per output (ce only)
    vocab_size: int | None = None  # token form: x holds ids in [0, vocab_size)
    seq_len: int | None = None  # token form: tokens per sample
    # control form: a second grouping of the training rows (batch key `mix`, ids into `mix_groups`) that the
    # data-sampling interventions mix over instead of the skills (data.mix_column of a table); None: the skills
    mix_groups: list[str] | None = None
    mix_frequencies: list[float] | None = None  # the groups' natural shares of the training rows

    def __init__(self, cfg: DataConfig, seed: int, dtype: torch.dtype = torch.float32):
        self.cfg = cfg
        self.seed = seed  # data seed: the task's random structure (subsets, rules) derives from it
        self.dtype = dtype
        self.skills: list[str] = []
        self.frequencies: list[float] = []
        self.n_inputs: int = 0
        # Declared dependency structure, for theory fits (skilltrain.theory.fit): skill index → (gate, its parts'
        # indices); gate "and" (needs all parts) or "or" (any one). Empty: independent skills.
        self.prerequisites: dict[int, tuple[str, list[int]]] = {}

    def finish(self, skills: list[str], frequencies: list[float]) -> None:
        """Set skill names and frequencies, honouring `data.skill_names` / `data.frequencies`."""
        self.cfg.check_skill_count(len(skills))
        self.skills = list(self.cfg.skill_names or skills)
        freqs = list(self.cfg.frequencies or frequencies)
        if self.form == "outputs":
            for i, p in enumerate(freqs):
                require(0 < p <= 1, f"data.frequencies[{i}]", f"a loss-mask rate must be in (0, 1], got {p}")
        else:
            total = sum(freqs)
            freqs = [p / total for p in freqs]
        self.frequencies = freqs

    @property
    def n_skills(self) -> int:
        return len(self.skills)

    @property
    def n_outputs(self) -> int:
        """Outputs of a shared head: one block per skill in the outputs form, one block in the control form."""
        per = self.n_classes if self.loss == "ce" else 1
        return per * self.n_skills if self.form == "outputs" else per

    @property
    def mixing(self) -> tuple[list[str], list[float]]:
        """(names, natural frequencies) of what the data-sampling interventions mix over: `mix_groups`, or the skills."""
        if self.mix_groups is not None:
            return list(self.mix_groups), list(self.mix_frequencies)
        return list(self.skills), list(self.frequencies)

    @property
    def tokens(self) -> bool:
        return self.vocab_size is not None

    def sample(self, n: int, generator: torch.Generator, skill: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`n` fresh samples on `generator.device`: {"x", "y"} (+ "skill" in the control form, given by the caller)."""
        raise NotImplementedError

    def on(self, device: torch.device, constant: torch.Tensor) -> torch.Tensor:
        """One of this task's constant tensors on `device`, copied there on first use only: a copy from the host on
        every batch would make each GPU step wait for it."""
        if constant.device == device:
            return constant
        copies = self.__dict__.setdefault("_device_copies", {})
        key = (id(constant), device)
        if key not in copies:
            copies[key] = (constant, constant.to(device))  # holding `constant` keeps its id from being reused
        return copies[key][1]

    def fixed_split(self, generator: torch.Generator) -> tuple[dict, dict] | None:
        """Tasks with a small, enumerable input set (modular addition) return their (train pool, held-out set);
        the default None means samples are drawn with `sample`."""
        return None

    def describe(self) -> str:
        return f"{type(self).__name__}({self.n_skills} skills, {self.form} form, {self.loss})"

    @staticmethod
    def from_skills(skills: list[str], *, form: str = "control", loss: str = "ce", n_classes: int = 2,
                    frequencies: list[float] | None = None, accuracy: bool | None = None) -> Task:
        """A task that only describes data made elsewhere (your own LightningDataModule), for `SkillModule` and the
        interventions: its skill names, data form, loss, classes per output and skill frequencies (default: equal;
        control form: sampling probabilities, normalised; outputs form: loss-mask rates in (0, 1]). Regression
        skills (loss="mse") have no accuracy unless `accuracy=True` (outputs > 0.5 against 0/1 targets)."""
        require(form in FORMS, "form", f"must be one of {', '.join(FORMS)}, got {form!r}")
        require(loss in LOSSES, "loss", f"must be one of {', '.join(LOSSES)}, got {loss!r}")
        require(len(skills) >= 1 and len(set(skills)) == len(skills), "skills", "must be distinct names, at least one")
        task = _DescribedTask(DataConfig(name="external", frequencies=frequencies), 0)
        task.form, task.loss, task.n_classes = form, loss, n_classes
        task.accuracy = loss == "ce" if accuracy is None else accuracy
        task.finish(list(skills), [1.0] * len(skills))
        return task


class _DescribedTask(Task):
    """See `Task.from_skills`: skills without a sampler."""

    def sample(self, n, generator, skill=None):
        raise NotImplementedError("a task made by Task.from_skills describes data made elsewhere; it has no sampler")


def zipf(n: int, alpha: float) -> list[float]:
    """Zipf frequencies p_i ∝ i^(−alpha), i = 1..n, normalised."""
    weights = [i ** (-alpha) for i in range(1, n + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def random_bits(n: int, n_bits: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return torch.randint(0, 2, (n, n_bits), generator=generator, device=generator.device).to(dtype)


def parity(bits: torch.Tensor, subset: list[int] | torch.Tensor) -> torch.Tensor:
    """XOR of the given columns of a {0, 1} matrix, as a long tensor."""
    return bits[:, subset].sum(dim=1).long() % 2
