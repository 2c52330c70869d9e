"""Your own Lightning script: your model, your LightningDataModule, your Trainer — with skilltrain's per-skill
metrics, learn steps and interventions as callbacks.

    python examples/plain_lightning.py [--max-steps 1500] [--intervention gradient_rescaling]

The data: two skills in the outputs form (arXiv 2501.12391's two-skill sparse parity): every sample is a random
32-bit string with two targets, x1⊕x2 (skill "frequent", in every sample's loss) and x3⊕x4 (skill "rare", in a fresh
10% of the samples each step: the `loss_mask`). The batch contract every skilltrain piece reads:

    {"x": [B, ...], "y": [B, K] (outputs form) or [B] (control form),
     "loss_mask": BoolTensor[B, K] (outputs form, optional), "skill": LongTensor[B] (control form)}
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from torch import nn

import skilltrain


class TwoParities(L.LightningDataModule):
    """Fresh batches of 32 random bits; the rare skill's loss is masked in to `rates[1]` of the samples. It
    implements `set_skill_rates`, so data-sampling interventions (skill_reweighting.mode=balanced_sampling) can
    change the rates."""

    def __init__(self, batch_size: int = 1024, rates=(1.0, 0.1), seed: int = 0):
        super().__init__()
        self.batch_size, self.rates, self.seed = batch_size, torch.tensor(rates), seed

    def set_skill_rates(self, rates: torch.Tensor) -> None:
        self.rates = rates.float().cpu()

    def _batch(self, generator: torch.Generator, n: int) -> dict[str, torch.Tensor]:
        bits = torch.randint(0, 2, (n, 32), generator=generator).float()
        y = torch.stack([(bits[:, 0] + bits[:, 1]) % 2, (bits[:, 2] + bits[:, 3]) % 2], dim=1)
        mask = torch.rand(n, 2, generator=generator) < self.rates
        return {"x": bits, "y": y, "loss_mask": mask}

    def train_dataloader(self):
        module = self  # batches are made lazily, so that a rate set after step t applies from step t+1

        class Stream(torch.utils.data.IterableDataset):
            def __iter__(self):
                g = torch.Generator().manual_seed(module.seed)
                while True:
                    yield module._batch(g, module.batch_size)

        return torch.utils.data.DataLoader(Stream(), batch_size=None)

    def val_dataloader(self):
        held_out = self._batch(torch.Generator().manual_seed(self.seed + 1), 2000)
        held_out["loss_mask"] = torch.ones_like(held_out["loss_mask"])
        return torch.utils.data.DataLoader([held_out], batch_size=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--intervention", default=None, help="a registered intervention, e.g. gradient_rescaling")
    args = parser.parse_args()

    L.seed_everything(0, verbose=False)
    task = skilltrain.Task.from_skills(["frequent", "rare"], form="outputs", loss="mse", accuracy=True,
                                       frequencies=[1.0, 0.1])
    model = nn.Sequential(nn.Linear(32, 50), nn.ReLU(), nn.Linear(50, 2))  # your own nn.Module: x → one output per skill
    module = skilltrain.SkillModule(model=model, task=task, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3))
    progress = skilltrain.SkillProgress(task.skills, metric="acc", threshold=0.9, every=10)  # learn steps, curves
    callbacks = [progress]
    if args.intervention:
        callbacks.append(skilltrain.intervention(args.intervention, task))
    trainer = L.Trainer(max_steps=args.max_steps, callbacks=callbacks, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, val_check_interval=100,
                        check_val_every_n_epoch=None, num_sanity_val_steps=0, log_every_n_steps=10)
    trainer.fit(module, datamodule=TwoParities())
    for skill in task.skills:
        print(f"{skill}: learned at step {progress.learned[skill]} (on {progress.learned_samples[skill]} samples)")


if __name__ == "__main__":
    main()
