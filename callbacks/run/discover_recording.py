"""`discover.record=true`: what `python -m skilltrain discover` needs to find skills without labels.

A fixed probe set of `discover.n_samples` training samples is drawn once, at the start of training, with a generator
seeded from the run seed: rows of the training pool (without replacement), or, when the run streams, fresh samples
of the training distribution (each skill as often as it is trained). At the start and at every logged step
(`trainer.log_every_n_steps`), the per-sample loss of every probe sample is computed under no_grad, in eval mode, as
the module computes it (SkillModule.loss_matrix, summed over the skills the sample carries), and kept on the training
device (no synchronisation at the step; n × steps / log interval floats).

The probe and the curves travel with every checkpoint (a resumed run continues the same probe and curves), and rank
0 writes them into the run directory (`discover_probe.pt`, `discover_losses.pt`, through skilltrain.rundir) whenever
a checkpoint is written and when training ends.
"""

from __future__ import annotations

import lightning as L
import torch

from skilltrain.data.stream import generator, mix_seed
from skilltrain.rundir import RunDir


class DiscoverRecording(L.Callback):
    def __init__(self, run: RunDir, n_samples: int, seed: int, every: int):
        self.run, self.n_samples, self.seed, self.every = run, n_samples, seed, every
        self.probe: dict | None = None  # {"x", "y", "skill", "skill_names"}; tensors on the training device
        self.steps: list[int] = []
        self._losses: list[torch.Tensor] = []  # [n] per recorded step, on the training device

    # ---- the probe -------------------------------------------------------------------------------------------
    def draw_probe(self, task, pool: dict | None) -> dict:
        """`n_samples` training samples (fewer when the pool is smaller), the same for a given run seed."""
        g = generator(mix_seed(self.seed, "discover"))
        if pool is not None:
            n_pool = len(pool["y"])
            idx = torch.randperm(n_pool, generator=g)[: min(self.n_samples, n_pool)]
            rows = {k: v[idx.to(v.device)] for k, v in pool.items() if k in ("x", "y", "skill")}
        else:
            rates = torch.tensor(task.frequencies, dtype=torch.float64)
            skill = torch.multinomial(rates, self.n_samples, replacement=True, generator=g)
            rows = {k: v for k, v in task.sample(self.n_samples, g, skill).items() if k in ("x", "y", "skill")}
        return {**rows, "skill_names": list(task.skills)}

    def on_train_start(self, trainer, pl_module) -> None:
        device = pl_module.device
        if self.probe is None:  # a resume restored its probe (load_state_dict)
            stream = getattr(trainer.datamodule, "stream", None)
            self.probe = self.draw_probe(pl_module.task, stream.pool if stream is not None else None)
        self.probe = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.probe.items()}
        self._losses = [t.to(device) for t in self._losses]
        self.record(trainer, pl_module)

    # ---- recording -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def per_sample_loss(self, pl_module) -> torch.Tensor:
        """The probe's per-sample losses, [n] on the device (the module's loss matrix summed over skills)."""
        training = pl_module.training
        pl_module.eval()  # a forward pass that changes nothing the training sees (batch-norm statistics)
        try:
            losses, _, mask, _ = pl_module.loss_matrix({k: v for k, v in self.probe.items() if k != "skill_names"})
        finally:
            pl_module.train(training)
        per = losses.sum(1) if mask is None else torch.where(mask, losses, 0).sum(1)
        return per.detach().float()

    def record(self, trainer, pl_module) -> None:
        step = trainer.global_step
        if self.steps and self.steps[-1] >= step:  # this step is recorded already (a resume's first step)
            return
        self.steps.append(step)
        self._losses.append(self.per_sample_loss(pl_module))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self.record(trainer, pl_module)

    # ---- keeping it ------------------------------------------------------------------------------------------
    def losses(self) -> torch.Tensor:
        """[recorded steps, n] on the host."""
        n = len(self.probe["y"]) if self.probe is not None else 0
        return torch.stack(self._losses).cpu() if self._losses else torch.zeros(0, n)

    def host_probe(self) -> dict:
        return {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in (self.probe or {}).items()}

    def state_dict(self) -> dict:
        return {"probe": self.host_probe(), "steps": list(self.steps), "losses": self.losses()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.probe = state_dict["probe"] or None
        self.steps = list(state_dict["steps"])
        self._losses = list(state_dict["losses"])

    def write(self, trainer) -> None:
        if trainer.is_global_zero and self.probe is not None:
            self.run.write_discover_recording(self.host_probe(), list(self.steps), self.losses())

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.write(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self.write(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.write(trainer)  # a stopped or diverged run keeps what it recorded
