"""Run by the DDP tests in a subprocess: `fit` with a probe that records, on every rank, what each rank used.

    python tests/helpers/ddp_probe.py OUT_DIR key=value ...

Lightning's DDP launcher starts this same script for the other ranks; each rank writes OUT_DIR/rank<r>.json with,
per step, the intervention weights/rates it used and its per-skill statistics, and its final weights' checksum.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch

from skilltrain.config import load_config
from skilltrain.run import fit


def _plain(value):
    return value.tolist() if isinstance(value, torch.Tensor) else value


class Probe(L.Callback):
    def __init__(self, out: Path):
        self.out, self.rows = out, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        row = {"step": pl_module.train_stats_step, "rows": len(batch["y"]),
               "stats": pl_module.train_stats["loss"].tolist()}
        if "skill" in batch:  # this rank's own batch: how many samples of each skill it drew
            row["local_counts"] = torch.bincount(batch["skill"], minlength=len(pl_module.skills)).tolist()
        for iv in pl_module.interventions:
            for key in ("skill_weights", "stream_rates", "mixture"):
                value = getattr(iv, key, None)
                if isinstance(value, torch.Tensor):
                    row[f"{iv.name}.{key}"] = value.tolist()
            row[f"{iv.name}.state"] = {k: _plain(v) for k, v in iv.state_dict().items()}
        stream = trainer.datamodule.stream
        row["stream_rates"] = stream.rates.tolist()
        self.rows.append(row)

    def on_train_end(self, trainer, pl_module):
        weights = {k: float(v.double().sum()) for k, v in pl_module.state_dict().items()}
        path = self.out / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"rows": self.rows, "weights": weights, "world": trainer.world_size}))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    fit(load_config(sys.argv[2:]), callbacks=[Probe(out)])
