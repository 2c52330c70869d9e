"""Freeze a task's training pool and held-out set as a Hugging Face DatasetDict (`save_to_disk`).

    python -m skilltrain export-data recipe=multitask_parity data.n_samples=20000 path=data/mtp

Columns: `x` (the inputs: a list of floats, or token ids), `y` (the label, or one target per skill in the outputs
form) and, in the control form, `skill` (the skill's name). A control-form export loads back with
`data.name=hf data.path=<path> data.input_columns=[x] data.label_column=y data.skill_column=skill`.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from skilltrain.config import require
from skilltrain.data import build_task
from skilltrain.data.base import DTYPES
from skilltrain.data.stream import make_pool_and_eval


def export_data(cfg: DictConfig, path: str) -> dict[str, int]:
    """Write the DatasetDict {"train", "eval"} to `path` (which must not exist); return the row counts."""
    target = Path(path)
    require(not target.exists(), "path", f"'{path}' already exists; export-data never overwrites (choose a new path)")
    data_seed = cfg.data.seed if cfg.data.seed is not None else cfg.seed
    task = build_task(OmegaConf.to_object(cfg.data), data_seed, DTYPES[cfg.model.dtype])
    pool, eval_set = make_pool_and_eval(task, cfg.data.n_samples, cfg.data.eval_samples, data_seed)
    require(pool is not None, "data.n_samples",
            "this task streams fresh samples (data.n_samples=null); pass data.n_samples=N to export N training samples")

    def named(rows: dict) -> dict:
        return {**rows, "skill": [task.skills[k] for k in rows["skill"].tolist()]} if "skill" in rows else rows

    return save_dataset(target, {"train": named(pool), "eval": named(eval_set)})


def save_dataset(path: str | Path, splits: dict[str, dict]) -> dict[str, int]:
    """Save splits {name: {"x": tensor, "y": tensor, "skill": skill names (optional), any other column of names}}
    as a DatasetDict at `path` (save_to_disk), in the columns `data.name=hf` reads back (input_columns=[x],
    label_column=y, skill_column=skill; another column of names can be a data.mix_column); the row counts."""
    import datasets

    def table(rows: dict) -> datasets.Dataset:
        columns = {"x": rows["x"].tolist(), "y": rows["y"].tolist()}
        for key, names in rows.items():
            if key not in ("x", "y"):
                columns[key] = [str(s) for s in names]
        return datasets.Dataset.from_dict(columns)

    datasets.disable_progress_bars()
    tables = datasets.DatasetDict({name: table(rows) for name, rows in splits.items()})
    tables.save_to_disk(str(path))
    return {name: len(split) for name, split in tables.items()}
