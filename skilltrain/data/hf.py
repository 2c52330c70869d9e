"""Users' own data through Hugging Face `datasets`: a table with input columns, a label and a skill column.

`data.path` is a directory written by `save_to_disk` (a Dataset or a DatasetDict), parquet/csv/json file(s)
(a glob is fine), or a hub dataset name when online. Each row is one sample of one skill (control form). Skills may
be strings (then every log names them by their string) or non-negative integer ids (named `data.skill_names[id]`
when given, else by the id). Everything is checked on load; a problem is one line naming the key.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from omegaconf import MISSING

from skilltrain.config import require
from skilltrain.data.base import DataConfig, Task
from skilltrain.data.stream import generator, mix_seed
from skilltrain.errors import UserError, closest, unknown
from skilltrain.registry import TASKS

KINDS = ("classification", "regression")
FILE_TYPES = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}


@dataclass
class HFConfig(DataConfig):
    name: str = "hf"
    path: str = MISSING  # save_to_disk directory, parquet/csv/json file(s), or a hub dataset name
    split: str = "train"  # the training split of a DatasetDict (a single Dataset or a file is used whole)
    eval_split: str | None = "auto"  # a held-out split; auto: eval/validation/test if the data has one; null: none
    #                                (without a held-out split, data.eval_fraction of each skill's rows is held out)
    eval_fraction: float = 0.2
    input_columns: list[str] | None = None  # null: every numeric column but the label and skill columns
    label_column: str = "label"
    skill_column: str = "skill"
    mix_column: str | None = None  # the groups the data-sampling interventions mix over; null: the skill column
    #                               (e.g. discovered skills, while logs and learn steps stay on the skill column)
    kind: str = "classification"  # classification (cross-entropy, accuracy) | regression (MSE on a float label)
    n_classes: int | None = None  # classification: null = largest label + 1
    batch_size: int | None = 256
    n_samples: int | None = None  # unused: the training rows are the data set's

    @property
    def accuracy(self) -> bool:
        """Whether the skills have an accuracy (the task's `accuracy`, decided by the config: validation reads it)."""
        return self.kind == "classification"

    def validate(self) -> None:
        super().validate()
        if self.kind not in KINDS:
            raise unknown("kind", self.kind, KINDS, key="data.kind")
        require(0 < self.eval_fraction < 1, "data.eval_fraction", f"must be in (0, 1), got {self.eval_fraction}")
        require(self.n_classes is None or self.n_classes >= 2, "data.n_classes", f"must be ≥ 2, got {self.n_classes}")
        require(self.frequencies is None, "data.frequencies",
                "cannot be set for a data set: skill frequencies are its row counts")
        require(self.mix_column != self.label_column, "data.mix_column",
                f"'{self.mix_column}' is the label column; it must name a column of groups to mix over")


def load_table(cfg: HFConfig):
    """(train Dataset, eval Dataset or None) from data.path."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(logging.CRITICAL)  # its own error lines would double ours
    path = cfg.path
    _check_exists(path)
    try:
        if os.path.isdir(path):
            loaded = datasets.load_from_disk(path)
        elif os.path.splitext(path)[1] in FILE_TYPES:
            require(glob.glob(path), "data.path", f"no file matches '{path}'")
            loaded = datasets.load_dataset(FILE_TYPES[os.path.splitext(path)[1]], data_files=path)
        elif os.path.exists(path):
            raise UserError(f"data.path: '{path}' is neither a save_to_disk directory nor a .parquet/.csv/.json file")
        else:
            loaded = datasets.load_dataset(path)
    except UserError:
        raise
    except Exception as e:  # missing files, unreachable hub, corrupt arrow files, …
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"data.path: could not load '{path}' ({type(e).__name__}: {first[:200]})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if cfg.split not in loaded:
            raise unknown("split", cfg.split, loaded.keys(), key="data.split")
        eval_split = cfg.eval_split
        if eval_split == "auto":
            eval_split = next((s for s in EVAL_SPLITS if s in loaded and s != cfg.split), None)
        elif eval_split is not None and eval_split not in loaded:
            raise unknown("split", eval_split, loaded.keys(), key="data.eval_split")
        return loaded[cfg.split], (loaded[eval_split] if eval_split else None)
    require(cfg.eval_split in (None, "auto"), "data.eval_split", f"'{path}' is a single table without splits")
    return loaded, None


EVAL_SPLITS = ("eval", "validation", "valid", "test")  # what eval_split=auto looks for, in this order


def _check_exists(path: str) -> None:
    """A local path that does not exist is one line at once; a name that could be a Hub dataset (`org/name`) is
    looked up there with a short timeout, instead of the `datasets` library's long retries."""
    if os.path.exists(path) or (os.path.splitext(path)[1] in FILE_TYPES and glob.glob(path)):
        return
    parts = path.split("/")
    local = (path.startswith((".", "/", "~")) or os.path.splitext(path)[1] != "" or len(parts) > 2
             or (len(parts) == 2 and os.path.isdir(parts[0])))
    if local:
        raise UserError(f"data.path: no file or directory '{path}'")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return  # offline by choice: `datasets` loads it from its cache, or says it is not there
    try:
        from huggingface_hub import HfApi

        HfApi().dataset_info(path, timeout=10)
    except Exception as e:  # not on the Hub, or the Hub unreachable
        if "404" in str(e) or "NotFound" in type(e).__name__:
            raise UserError(f"data.path: no local file or directory '{path}', and no such dataset on the Hugging Face "
                            "Hub") from None
        raise UserError(f"data.path: no local file or directory '{path}', and the Hugging Face Hub did not answer "
                        f"({type(e).__name__}); to load it from the cache, set HF_HUB_OFFLINE=1") from None


@TASKS.register("hf", "your own data: a Hugging Face dataset / parquet / csv / json table with a skill column", HFConfig)
class HFTask(Task):
    form = "control"
    loss: ClassVar[str] = "ce"

    def __init__(self, cfg: HFConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__(cfg, seed, dtype)
        self.loss = "ce" if cfg.kind == "classification" else "mse"
        self.accuracy = cfg.accuracy
        train, held_out = load_table(cfg)
        columns = list(train.column_names)
        require(len(train) > 0, "data.path", f"the data set '{cfg.path}' has no rows")
        for key in ("label_column", "skill_column", "mix_column"):
            col = getattr(cfg, key)
            if col is None:
                continue
            if col not in columns:
                guess = closest(col, columns)
                hint = f"did you mean '{guess}'? " if guess else ""
                raise UserError(f"data.{key}: no column '{col}' ({hint}columns: {', '.join(columns)})")
        inputs = self._input_columns(train, columns)
        tables = [train] if held_out is None else [train, held_out]
        x, y, skill_values = zip(*(self._arrays(t, inputs) for t in tables))
        self.skill_ids, names = self._skill_ids(np.concatenate(skill_values))
        ids = np.split(self.skill_ids, np.cumsum([len(v) for v in skill_values])[:-1])
        if self.loss == "ce":
            labels = np.concatenate(y)
            self.n_classes = cfg.n_classes or int(labels.max()) + 1
            require(labels.max() < self.n_classes, "data.label_column",
                    f"label {int(labels.max())} is out of range for data.n_classes={self.n_classes}")
        self.x = [torch.as_tensor(a) for a in x]
        self.y = [torch.as_tensor(a) for a in y]
        self.ids = [torch.as_tensor(a, dtype=torch.long) for a in ids]
        if cfg.token_form:
            require(all(not a.is_floating_point() for a in self.x), "data.token_form",
                    "needs integer input columns (token ids)")
            self.vocab_size, self.seq_len = int(max(a.max() for a in self.x)) + 1, self.x[0].shape[1]
        else:
            self.x = [a.to(dtype) for a in self.x]
        self.n_inputs = self.x[0].shape[1]
        self.skill_in_inputs = _inputs_tell_skills(x[0], ids[0], len(names))
        counts = torch.bincount(self.ids[0], minlength=len(names))
        for k, name in enumerate(names):
            require(counts[k] > 0, "data.skill_column", f"skill '{name}' has no rows in the training split")
        self.finish(names, (counts / counts.sum()).tolist())
        if cfg.mix_column is not None and cfg.mix_column != cfg.skill_column:
            self._mix_groups(train)

    def _mix_groups(self, train) -> None:
        """`data.mix_column`: each training row's group (what data-sampling interventions mix over), in batches as
        `mix`; the groups' names and natural frequencies (their row counts in the training split)."""
        values = np.asarray(train[self.cfg.mix_column], dtype=object)
        ids, names = _group_ids(values, "data.mix_column")
        self.mix = torch.as_tensor(ids, dtype=torch.long)
        counts = torch.bincount(self.mix, minlength=len(names))
        self.mix_groups = names
        self.mix_frequencies = (counts / counts.sum()).tolist()

    # ---- loading and checking ---------------------------------------------------------------------------------
    def _input_columns(self, table, columns: list[str]) -> list[str]:
        cfg = self.cfg
        if cfg.input_columns is None:
            chosen = [c for c in columns if c not in (cfg.label_column, cfg.skill_column, cfg.mix_column)
                      and _numeric(table.features[c])]
            require(chosen, "data.input_columns", "no numeric input columns besides the label and skill columns")
            return chosen
        for c in cfg.input_columns:
            if c not in columns:
                guess = closest(c, columns)
                raise UserError(f"data.input_columns: no column '{c}' ({f'did you mean {guess!r}? ' if guess else ''}"
                                f"columns: {', '.join(columns)})")
            require(_numeric(table.features[c]), "data.input_columns",
                    f"column '{c}' is not numeric ({table.features[c]}); inputs must be numbers or lists of numbers")
        return list(cfg.input_columns)

    def _arrays(self, table, inputs: list[str]):
        cfg = self.cfg
        data = table.with_format("numpy")
        parts = []
        for c in inputs:
            a = np.asarray(data[c])
            require(a.dtype != object, "data.input_columns", f"column '{c}' has rows of different lengths or missing values")
            parts.append(a.reshape(len(a), -1))
        x = np.concatenate(parts, axis=1)
        require(not np.issubdtype(x.dtype, np.floating) or np.isfinite(x).all(), "data.input_columns",
                "inputs contain NaN or infinite values")
        y = np.asarray(data[cfg.label_column])
        if cfg.kind == "classification":
            require(np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_) or
                    (np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all()),
                    "data.label_column", f"classification labels must be integers, column '{cfg.label_column}' is {y.dtype}")
            y = y.astype(np.int64)
            require(y.min() >= 0, "data.label_column", f"label {int(y.min())} is negative")
        else:
            require(np.issubdtype(y.dtype, np.number) and np.isfinite(y.astype(float)).all(), "data.label_column",
                    f"regression labels must be finite numbers, column '{cfg.label_column}' is {y.dtype}")
            y = y.astype(np.float64)
        return x, y, np.asarray(table[cfg.skill_column], dtype=object)

    def _skill_ids(self, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Skill values → ids 0..K-1 and names. Strings are names; integers are ids (named by data.skill_names)."""
        cfg = self.cfg
        missing = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and np.isnan(v))]
        require(not missing, "data.skill_column", f"row {missing[0] if missing else ''} has no skill")
        if all(isinstance(v, str) for v in values):
            names = sorted(set(values))
            for name in names:
                require(name and "/" not in name, "data.skill_column", f"skill name '{name}' must be non-empty without '/'")
            index = {n: i for i, n in enumerate(names)}
            return np.array([index[v] for v in values]), names
        require(all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values), "data.skill_column",
                "skills must be all strings (names) or all integers (ids)")
        ids = values.astype(np.int64)
        require(ids.min() >= 0, "data.skill_column", f"skill id {int(ids.min())} is negative")
        n = len(cfg.skill_names) if cfg.skill_names else int(ids.max()) + 1
        require(ids.max() < n, "data.skill_column",
                f"skill id {int(ids.max())} is out of range for the {n} names in data.skill_names")
        names = list(cfg.skill_names) if cfg.skill_names else [str(i) for i in range(n)]
        self.cfg.skill_names = None  # already applied: finish() must not rename again
        return ids, names

    # ---- samples ----------------------------------------------------------------------------------------------
    def fixed_split(self, g: torch.Generator) -> tuple[dict, dict]:
        if len(self.x) == 2:
            return self._rows(0, None), self._rows(1, None)
        train_idx, eval_idx = [], []
        for k, name in enumerate(self.skills):  # stratified: every skill keeps rows on both sides
            rows = (self.ids[0] == k).nonzero().flatten()
            rows = rows[torch.randperm(len(rows), generator=g)]
            n_eval = round(len(rows) * self.cfg.eval_fraction)
            require(len(rows) >= 2, "data.skill_column", f"skill '{name}' has {len(rows)} row; it needs ≥ 2 to hold one out")
            n_eval = min(max(n_eval, 1), len(rows) - 1)
            eval_idx.append(rows[:n_eval])
            train_idx.append(rows[n_eval:])
        train = torch.cat(train_idx)
        return self._rows(0, train[torch.randperm(len(train), generator=g)]), self._rows(0, torch.cat(eval_idx))

    def _rows(self, table: int, idx: torch.Tensor | None) -> dict:
        pick = (lambda t: t) if idx is None else (lambda t: t[idx])
        rows = {"x": pick(self.x[table]), "y": pick(self.y[table]), "skill": pick(self.ids[table])}
        if self.mix_groups is not None and table == 0:  # the training table's groups (the held-out set needs none)
            rows["mix"] = pick(self.mix)
        return rows

    def sample(self, n, generator_, skill=None):
        """Random training rows of the given skills (streaming over the table; pools use fixed_split)."""
        pool, _ = self.fixed_split(generator(mix_seed(self.seed, "hf")))
        out = []
        for k in skill.tolist():
            rows = (pool["skill"] == k).nonzero().flatten()
            out.append(rows[torch.randint(len(rows), (1,), generator=generator_)])
        return self._pick(pool, torch.cat(out))

    @staticmethod
    def _pick(pool: dict, idx: torch.Tensor) -> dict:
        return {k: v[idx] for k, v in pool.items()}


def _group_ids(values: np.ndarray, key: str) -> tuple[np.ndarray, list[str]]:
    """A column of group values (all strings, or all non-negative integers) → ids 0..G-1 and the groups' names."""
    require(not any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values), key, "a row has no value")
    if all(isinstance(v, str) for v in values):
        names = sorted(set(values))
    else:
        require(all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values), key,
                "values must be all strings or all integers")
        names = sorted(set(int(v) for v in values))
    require(len(names) >= 2, key, f"has {len(names)} group; mixing needs ≥ 2")
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[v if isinstance(v, str) else int(v)] for v in values]), [str(n) for n in names]


def _inputs_tell_skills(x: np.ndarray, ids: np.ndarray, k: int) -> bool:
    """Whether some input features are constant within each skill and, together, different for every skill (control
    bits, a task token, the skill id itself): then a shared head can tell the skills apart."""
    rows = [x[ids == s] for s in range(k)]
    rows = [r for r in rows if len(r)]
    constant = np.logical_and.reduce([(r == r[:1]).all(axis=0) for r in rows])
    return bool(constant.any()) and len({r[0, constant].tobytes() for r in rows}) == len(rows)


def _numeric(feature) -> bool:
    """A numeric scalar column, or a (nested) list of numbers."""
    dtype = getattr(feature, "dtype", None)
    if dtype is not None and dtype != "list":
        return dtype.startswith(("int", "uint", "float", "bool"))
    inner = getattr(feature, "feature", None)
    return inner is not None and _numeric(inner)
