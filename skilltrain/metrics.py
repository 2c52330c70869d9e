"""Per-skill loss and accuracy as one torchmetrics Metric with vector states (summed across DDP ranks)."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class SkillMetrics(Metric):
    """Mean loss and accuracy per skill over the samples that carry the skill.

    `update(losses, correct, present)` takes [B, K] matrices: the per-sample × per-skill loss, whether the
    prediction was right, and which skills each sample carries (None = all). States are sums and counts, so the
    DDP reduction (sum) is exact, and a skill absent from one rank's batch is simply counted zero times there.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, n_skills: int, **kwargs):
        super().__init__(**kwargs)
        self.n_skills = n_skills
        zeros = torch.zeros(n_skills, dtype=torch.float64)
        self.add_state("loss_sum", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("correct_sum", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("count", default=zeros.clone(), dist_reduce_fx="sum")

    def update(self, losses: torch.Tensor, correct: torch.Tensor | None, present: torch.Tensor | None) -> None:
        losses = losses.detach().double()
        if present is None:
            self.loss_sum += losses.sum(0)
            self.count += losses.shape[0]
            if correct is not None:
                self.correct_sum += correct.sum(0)
            return
        present = present.double()
        self.loss_sum += (losses * present).sum(0)
        self.count += present.sum(0)
        if correct is not None:
            self.correct_sum += (correct.double() * present).sum(0)

    def compute(self) -> dict[str, torch.Tensor]:
        """{"loss": [K], "acc": [K]}; NaN for a skill no sample carried."""
        count = self.count.clamp(min=1)
        seen = self.count > 0
        nan = torch.full_like(self.count, float("nan"))
        return {
            "loss": torch.where(seen, self.loss_sum / count, nan),
            "acc": torch.where(seen, self.correct_sum / count, nan),
        }
