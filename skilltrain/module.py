"""SkillModule: turns a skill-tagged batch into the per-sample × per-skill loss matrix L[B, K] and its masks.

    L[b, k]  loss of sample b on skill k
    M[b, k]  sample b carries skill k's loss this step (outputs form: the frequency mask; control form: one-hot)
    D[b, k]  sample b has a target for skill k, what per-skill metrics average over (outputs form: every sample;
             control form: one-hot)

    loss = Σ_b Σ_k M[b, k] · L[b, k] / B

so skill k's share of the gradient is proportional to its frequency, as in the paper. (Under DDP, B is the global
batch over the number of processes, so that DDP's averaging of gradients gives exactly the one-process loss even
when a full-batch pool does not split evenly across ranks.) Per-skill loss and accuracy
are computed every step from the same matrices (`skill_statistics`: one packed all-reduce across DDP ranks, nothing
read back to the host; in training, in the control form, from each row's own entry, `row_statistics`: the same sums
without the [B, K] matrix, which a training step builds there only for interventions) and logged as
`skill/<name>/{loss,acc}` (train) and `skill/<name>/{val_loss,val_acc}` (held-out). `train/loss` and `val/loss` are
one quantity on two splits: the mean over skills of those per-skill losses (a skill absent from the batch left out).
The objective itself (Σ over skills, with any intervention's weights and extra terms) is logged as `train/objective`.

Two ways to build one:

- `SkillModule(config)`: from a resolved run config (what `skilltrain.fit` does, and what a checkpoint restores);
- `SkillModule(model=my_module, task=skilltrain.Task.from_skills([...], form=..., loss=...), optimizer=...)`: around
  your own `nn.Module`, to train with your own `lightning.Trainer` and LightningDataModule (docs/extending.md).
  The batches are dicts: {"x", "y", "skill"} (control form: `skill` a LongTensor[B] of skill ids, `y` [B]) or
  {"x", "y", "loss_mask"} (outputs form: `y` [B, K], `loss_mask` an optional BoolTensor[B, K]).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from skilltrain.config import restore, to_container, val_every
from skilltrain.data import build_task
from skilltrain.data.base import Task
from skilltrain.metrics import SkillMetrics, row_statistics, skill_statistics
from skilltrain.models import DTYPES, build_model
from skilltrain.models import per_skill_head as _per_skill_head
from skilltrain.optim import build_optimizer, build_scheduler


class SkillModule(L.LightningModule):
    def __init__(self, config: DictConfig | dict | None = None, *, model: torch.nn.Module | None = None, task: Task | None = None,
                 optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
                 per_skill_head: bool = False):
        """`config`: the run config from `load_config`, or as plain containers (what the checkpoint stores). Or, instead, your own
        `model` (x [, skill] → outputs: [B, task.n_outputs], or one block per skill with `per_skill_head=True`), the
        `task` that describes its data (`Task.from_skills`), and an `optimizer` factory (default: Adam, lr 1e-3)."""
        super().__init__()
        if config is not None and (model is not None or task is not None):
            raise TypeError("SkillModule takes a run config, or a model and a task (Task.from_skills), not both")
        if config is None and (model is None or task is None):
            raise TypeError("SkillModule needs a run config, or both a model and a task (Task.from_skills)")
        if config is not None:
            # load_config's config as it is (validated there), or a saved one (a checkpoint's: validated when saved)
            cfg = config if isinstance(config, DictConfig) else restore(config)
            config = to_container(cfg)  # what save_hyperparameters stores: plain containers
            self.save_hyperparameters(logger=False)  # in the checkpoint; loggers get the config from skilltrain.loggers
            data_seed = cfg.data.seed if cfg.data.seed is not None else cfg.seed
            task = build_task(OmegaConf.to_object(cfg.data), data_seed, DTYPES[cfg.model.dtype])
            model_cfg = OmegaConf.to_object(cfg.model)
            model = build_model(model_cfg, task)
            per_skill_head = _per_skill_head(model_cfg, task)
        self.cfg = cfg if config is not None else None  # None around a user's model
        self.task = task
        self.model = model
        self.per_skill_head = per_skill_head
        self.make_optimizer = optimizer
        self.skills = self.task.skills
        self.val_metrics = SkillMetrics(self.task.n_skills, self.task.accuracy)
        self.keys = {part: [f"skill/{s}/{part}" for s in self.skills] for part in ("loss", "acc", "val_loss", "val_acc")}
        # Latest per-skill train statistics ({"loss": [K], "acc": [K]}, all ranks alike) and the step they measure.
        self.train_stats: dict[str, torch.Tensor] = {}
        self.train_stats_step = -1
        self.mix_stats: dict[str, torch.Tensor] = {}  # the same over the task's mix groups, when it has them
        self.train_loss: torch.Tensor | None = None
        self.logged: dict[str, float] = {}  # the latest logged values, on the host
        self.interventions: list = []  # the trainer's Intervention callbacks, found at fit start
        self.val_stats: dict[str, torch.Tensor] = {}
        self.stack = None  # while its seeds train stacked (skilltrain.stacking): the shared forward and backward passes

    def forward(self, x: torch.Tensor, skill: torch.Tensor | None = None) -> torch.Tensor:
        if x.is_floating_point():
            dtype = next(self.model.parameters()).dtype  # model.dtype, or what a precision plugin made of it
            x = x.to(dtype)
        if self.stack is not None and self.training and torch.is_grad_enabled():
            return self.stack.outputs(x, skill)  # computed with the other seeds' batches, on this seed's weights
        if getattr(self.model, "routes_by_skill", False):  # modular networks pick each sample's module by its skill
            return self.model(x, skill)
        return self.model(x)

    # ---- the loss matrix ------------------------------------------------------------------------------------
    def loss_matrix(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """(L, correct, M, D) as [B, K] tensors; M or D is None where it would be all ones."""
        return self._matrix(self(batch["x"], batch.get("skill")), batch)

    def _matrix(self, out: torch.Tensor, batch: dict, rows: tuple | None = None):
        """`loss_matrix` from the model's output (control form: from `_rows`' per-sample losses, when given)."""
        y = batch["y"]
        task = self.task
        if task.form == "outputs":
            if task.loss == "mse":
                losses = (out - y.to(out.dtype)) ** 2
                correct = (out > 0.5) == (y > 0.5) if task.accuracy else None
            else:
                logits = out.view(len(out), task.n_skills, task.n_classes)
                losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")
                correct = logits.argmax(-1) == y
            return losses, correct, batch.get("loss_mask"), None
        per_sample, right = rows if rows is not None else self._rows(out, batch)
        onehot = F.one_hot(batch["skill"], task.n_skills).bool()
        correct = onehot & right[:, None] if right is not None else None
        # where, not a product: a non-finite loss stays in its own skill's column
        return torch.where(onehot, per_sample[:, None], 0), correct, onehot, onehot

    def _rows(self, out: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Control form: each sample's loss on its own skill [B] and whether it was right [B] (None without
        accuracy): the nonzero entries of the loss matrix's rows."""
        skill, y = batch["skill"], batch["y"]
        if self.per_skill_head:  # each sample reads its own skill's block of outputs
            out = out.view(len(out), self.task.n_skills, -1)[torch.arange(len(out), device=out.device), skill]
        if self.task.loss == "mse":
            return (out.squeeze(-1) - y.to(out.dtype)) ** 2, None
        right = out.argmax(-1) == y if self.task.accuracy else None
        return F.cross_entropy(out, y, reduction="none"), right

    def group_statistics(self, losses: torch.Tensor, correct: torch.Tensor | None, mask: torch.Tensor | None,
                         group: torch.Tensor) -> dict[str, torch.Tensor]:
        """`skill_statistics` over the mix groups instead of the skills (control form: each row's loss is its own
        skill's entry of L, and it belongs to one group)."""
        n_groups = len(self.task.mix_groups)
        onehot = torch.nn.functional.one_hot(group, n_groups).bool()
        entered = losses if mask is None else torch.where(mask, losses, 0)
        per_row = entered.sum(1)
        right = None if correct is None else onehot & correct.any(1)[:, None]
        return skill_statistics(torch.where(onehot, per_row[:, None], 0), right, onehot, onehot, self.task.accuracy,
                                self._all_reduce)

    def _all_reduce(self, packed: torch.Tensor) -> torch.Tensor:
        """Sum across DDP ranks (every rank weighs by the same statistics); nothing to do in one process."""
        try:
            trainer = self.trainer
        except RuntimeError:  # a module used outside a Trainer
            return packed
        return packed if trainer.world_size == 1 else trainer.strategy.reduce(packed, reduce_op="sum")

    @staticmethod
    def reduce(losses: torch.Tensor, mask: torch.Tensor | None, rows: float | torch.Tensor | None = None) -> torch.Tensor:
        """Σ_b Σ_k M·L / rows, rows = the batch size (this rank's, unless given)."""
        total = losses.sum() if mask is None else torch.where(mask, losses, 0).sum()
        return total / (losses.shape[0] if rows is None else rows)

    # ---- steps ----------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # after the callbacks' setup, so that a model an Architecture intervention built is the one compiled
        if stage == "fit" and self.cfg is not None and self.cfg.model.compile and not getattr(self, "_compiled", False):
            self.model.compile()
            self._compiled = True

    def on_fit_start(self) -> None:
        from skilltrain.callbacks.intervention import Intervention

        self.interventions = [cb for cb in self.trainer.callbacks if isinstance(cb, Intervention)]
        if self.cfg is None:  # a user's own Trainer: the checks `skilltrain.fit` makes before the Trainer exists
            from skilltrain.callbacks.intervention import check_composition

            check_composition(self.interventions, None)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        rows = None
        if self.task.form == "control" and type(self).loss_matrix is SkillModule.loss_matrix:  # (not a subclass's own)
            # each row carries one skill: statistics and objective from each row's own loss, the same numbers as
            # over the [B, K] matrix (to the order of addition), which is built only for interventions to read
            out = self(batch["x"], batch["skill"])
            rows = per_sample, right = self._rows(out, batch)
            self.train_stats = row_statistics(per_sample, right, batch["skill"], self.task.n_skills, self.task.accuracy,
                                              self._all_reduce)
            losses = correct = mask = None
            if self.interventions or "mix" in batch:
                losses, correct, mask, _ = self._matrix(out, batch, rows)
        else:
            losses, correct, mask, present = self.loss_matrix(batch)
            self.train_stats = skill_statistics(losses, correct, present, mask, self.task.accuracy, self._all_reduce)
        self.train_stats_step = self.global_step
        if "mix" in batch:  # a second grouping of the rows (data.mix_column): what data-sampling interventions mix over
            self.mix_stats = self.group_statistics(losses, correct, mask, batch["mix"])
        weights = None
        for intervention in self.interventions:
            w = intervention.loss_weights(self, losses, mask, self.train_stats)
            if w is not None:
                weights = w if weights is None else weights * w
        n = self.train_stats["rows"] / self.trainer.world_size  # the global batch per process (see above)
        if rows is None:
            loss = self.reduce(losses if weights is None else losses * weights, mask, n)
        else:  # Σ_b Σ_k M·w·L over a one-hot M is each row's own entry: the same gradients, without the [B, K] backward
            if torch.is_tensor(weights) and weights.dim() > 0:  # (a 0-d or Python-number weight scales every row alike)
                weights = torch.broadcast_to(weights, losses.shape).gather(1, batch["skill"][:, None])[:, 0]
            loss = (per_sample if weights is None else per_sample * weights).sum() / n
        for intervention in self.interventions:
            extra = intervention.extra_loss(self)
            if extra is not None:
                loss = loss + extra
        self.train_loss = loss.detach()
        every = self.trainer.log_every_n_steps
        if every and self.global_step % every == 0:  # steps 0, n, 2n, …: the curves' steps
            # train/loss as val/loss: the mean over skills of the per-skill mean losses; the objective beside it
            values = {"train/loss": self.train_stats["loss"].nanmean(), "train/objective": self.train_loss,
                      **self._named(self.train_stats, "")}
            if self.cfg is not None and (self.cfg.optim.scheduler != "constant" or self.cfg.optim.warmup_steps):
                values["train/lr"] = torch.as_tensor(self.trainer.optimizers[0].param_groups[0]["lr"])
            for intervention in self.interventions:
                values.update({f"intervention/{intervention.name}/{k}": torch.as_tensor(v)
                               for k, v in intervention.logged().items()})
            self.log_metrics(values)
        return loss

    def backward(self, loss: torch.Tensor, *args, **kwargs) -> None:
        if self.stack is not None:
            self.stack.backward(loss)  # one backward pass for every stacked seed; each gets its own gradients
        else:
            super().backward(loss, *args, **kwargs)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        losses, correct, _, present = self.loss_matrix(batch)
        self.val_metrics.update(losses, correct, present)

    def on_validation_epoch_end(self) -> None:
        self.val_stats = self.val_metrics.values()
        if self.cfg is not None and self.global_step % val_every(self.cfg):
            # Lightning also evaluates when a run is stopped early (Ctrl-C); keep only the scheduled evaluations, so
            # that a stopped-and-resumed run records exactly what an uninterrupted one does.
            self.val_stats = {}
            return
        if not self.trainer.sanity_checking:
            self.log_metrics({"val/loss": self.val_stats["loss"].nanmean(), **self._named(self.val_stats, "val_")})

    def log_metrics(self, metrics: dict[str, torch.Tensor]) -> None:
        """Write already-reduced, already-synchronised values straight to the loggers (they write on rank 0 only).

        Not `self.log`: its per-call bookkeeping (~0.2 ms) buys batch reduction and DDP sync that these values
        do not need, and costs as much as a training step of the paper's MLPs.
        """
        values = dict(zip(metrics, torch.stack([v.double().to(self.device) for v in metrics.values()]).tolist()))
        self.logged.update(values)  # host copies: what progress displays read, without touching the device
        for logger in self.loggers:
            logger.log_metrics(values, step=self.global_step)

    def _named(self, stats: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        named = dict(zip(self.keys[prefix + "loss"], stats["loss"]))
        if self.task.accuracy:
            named.update(zip(self.keys[prefix + "acc"], stats["acc"]))
        return named

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.stack is not None:  # the weights are rows of the stacked tensors: save this seed's alone
            checkpoint["state_dict"] = {k: v.clone() for k, v in checkpoint["state_dict"].items()}
        # Global RNG state (dropout draws from it): with it, a resumed run continues bit for bit.
        checkpoint["rng_state"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("rng_state", {})
        if "torch" in state:
            torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def configure_optimizers(self):
        if self.cfg is None:
            return (self.make_optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3)))(self.parameters())
        optimizer = build_optimizer(self.parameters(), OmegaConf.to_object(self.cfg.optim))
        scheduler = build_scheduler(optimizer, self.cfg.optim, self.cfg.trainer.max_steps)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
