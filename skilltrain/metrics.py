"""Per-skill loss and accuracy: `skill_statistics` for each training step (one packed buffer, one all-reduce), and
`SkillMetrics`, a torchmetrics Metric with vector states that accumulates a held-out evaluation over its batches."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchmetrics import Metric


def batch_sums(losses: torch.Tensor, correct: torch.Tensor | None, present: torch.Tensor | None,
               mask: torch.Tensor | None) -> torch.Tensor:
    """One batch's per-skill sums packed in one float64 vector of 5K + 1 numbers: the loss, correct, count, masked-loss
    and masked-count sums [K] each over the samples that carry (or, masked, are weighed for) each skill, then the rows.
    Both `skill_statistics` and `SkillMetrics` add up these, so training and evaluation count alike."""
    losses = losses.detach().double()
    n, k = losses.shape
    parts = [losses.sum(0) if present is None else torch.where(present, losses, 0).sum(0)]
    if correct is None:
        parts.append(losses.new_zeros(k))
    else:
        parts.append((correct if present is None else correct & present).sum(0).to(losses.dtype))
    parts.append(losses.new_full((k,), n) if present is None else present.sum(0).to(losses.dtype))
    if mask is present:  # the same sums (no mask and no presence, or the control form's one one-hot for both)
        parts += [parts[0], parts[2]]
    else:
        parts.append(losses.sum(0) if mask is None else torch.where(mask, losses, 0).sum(0))
        parts.append(losses.new_full((k,), n) if mask is None else mask.sum(0).to(losses.dtype))
    parts.append(losses.new_full((1,), n))
    return torch.cat(parts)


def _unpacked(packed: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """`batch_sums`' vector as (loss_sum, correct_sum, count, mask_loss_sum, mask_count, rows)."""
    return (*packed[:-1].view(5, k), packed[-1])


def skill_statistics(losses: torch.Tensor, correct: torch.Tensor | None, present: torch.Tensor | None,
                     mask: torch.Tensor | None, accuracy: bool = True,
                     all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """One batch's per-skill statistics, as `SkillMetrics.values()` gives them ("loss", "acc", "count", "mask_loss",
    "mask_share" [K] and "rows"), from `batch_sums`' one buffer, which `all_reduce` (a sum across DDP ranks)
    synchronises in one call. All on the device: nothing is read back to the host."""
    packed = batch_sums(losses, correct, present, mask)
    if all_reduce is not None:
        packed = all_reduce(packed)
    return _derived(*_unpacked(packed, losses.shape[1]), accuracy)


def row_statistics(per_sample: torch.Tensor, right: torch.Tensor | None, skill: torch.Tensor, k: int,
                   accuracy: bool = True,
                   all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """`skill_statistics` of a control-form batch, where each row carries one skill and weighs its own loss (the
    loss matrix is `per_sample` in column `skill`, the masks one-hot): summed by skill over the [B] rows instead of
    over the [B, K] matrix. The same sums up to the order of addition (float64: within ~1e-16 relative).

    One `index_add_` of the rows' [loss, right, 1] into [K, 3]: a non-finite loss stays in its own skill (a product
    with the one-hot matrix would spread 0·inf = NaN to every skill), and nothing is read back to the host (as
    `bincount` would, to size its output). On a GPU `index_add_` adds with atomics, so the float64 loss sums may
    differ in their last bits from run to run unless `trainer.deterministic=true` (then it adds in a fixed order)."""
    per_sample = per_sample.detach().double()
    right = torch.zeros_like(per_sample) if right is None else right.to(per_sample.dtype)
    rows = torch.stack([per_sample, right, torch.ones_like(per_sample)], 1)
    loss_sum, correct_sum, count = per_sample.new_zeros(k, 3).index_add_(0, skill, rows).T  # [K] each
    packed = torch.cat([loss_sum, correct_sum, count, loss_sum, count, per_sample.new_full((1,), len(per_sample))])
    if all_reduce is not None:
        packed = all_reduce(packed)
    return _derived(*_unpacked(packed, k), accuracy)


def _derived(loss_sum, correct_sum, count, mask_loss_sum, mask_count, rows, accuracy: bool) -> dict[str, torch.Tensor]:
    """Means from sums; NaN for a skill no sample carried (its sums and count are exactly 0, and 0/0 is NaN), and for
    the accuracy of regression skills. Five operations: this runs every training step."""
    return {
        "loss": loss_sum / count,
        "acc": correct_sum / count if accuracy else torch.full_like(count, float("nan")),
        "count": count,
        "mask_loss": mask_loss_sum / mask_count,
        "mask_share": mask_count / rows.clamp(min=1),
        "rows": rows,
    }


class SkillMetrics(Metric):
    """Mean loss and accuracy per skill over the samples that carry the skill.

    `update(losses, correct, present, mask)` takes [B, K] matrices: the per-sample × per-skill loss, whether the
    prediction was right, which skills each sample carries (None = all) and which losses enter the objective this
    step (the loss mask M; None = all). States are sums and counts, so the DDP reduction (sum) is exact, and a skill
    absent from one rank's batch is simply counted zero times there.

    Besides loss and accuracy (over the samples that carry the skill) it measures what interventions weigh by:
    the mean loss over the masked entries and each skill's share of the batch's rows in the objective.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, n_skills: int, accuracy: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.n_skills, self.accuracy = n_skills, accuracy  # accuracy=False: regression skills, acc is NaN
        zeros = torch.zeros(n_skills, dtype=torch.float64)
        self.add_state("loss_sum", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("correct_sum", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("count", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("mask_loss_sum", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("mask_count", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("rows", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, losses: torch.Tensor, correct: torch.Tensor | None, present: torch.Tensor | None,
               mask: torch.Tensor | None = None) -> None:
        loss, right, count, mask_loss, mask_count, rows = _unpacked(batch_sums(losses, correct, present, mask),
                                                                    self.n_skills)
        self.loss_sum += loss
        self.correct_sum += right
        self.count += count
        self.mask_loss_sum += mask_loss
        self.mask_count += mask_count
        self.rows += rows

    def compute(self) -> dict[str, torch.Tensor]:
        """{"loss", "acc", "count", "mask_loss", "mask_share"}, each [K], and "rows" (the global batch size): "count" is
        how many samples carried each skill (what its loss and accuracy rest on); NaN for a skill no sample carried,
        and for the accuracy of regression skills. (torchmetrics squeezes a one-skill result to a
        scalar on the way out: read it through `values()`.)"""
        return _derived(self.loss_sum, self.correct_sum, self.count.clone(), self.mask_loss_sum, self.mask_count,
                        self.rows, self.accuracy)

    def values(self) -> dict[str, torch.Tensor]:
        """`compute()` (synchronised across ranks) as [K] vectors, then reset for the next batch or evaluation."""
        out = {k: v.reshape(()) if k == "rows" else v.reshape(self.n_skills) for k, v in self.compute().items()}
        self.reset()
        return out
