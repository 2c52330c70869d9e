"""Your own intervention, as a plugin: no change to skilltrain needed.

    python -m skilltrain fit recipe=domino_2task plugins=[examples/own_intervention.py] interventions.loss_power.power=2
    python -m skilltrain compare recipe=domino_2task plugins=[examples/own_intervention.py] arms=[baseline,loss_power] \\
        seeds=3 compare.workers=2
    python examples/own_intervention.py      # the same comparison through the Python API
    python -m skilltrain check plugins=[examples/own_intervention.py]   # the checks every built-in passes

`plugins=[...]` imports this file in every process skilltrain starts (each run of a comparison too) and records it in
the run's config.yaml, so a resume imports it again. What it registers gets what a built-in gets: typed
`interventions.loss_power.*` keys with did-you-mean on typos, `list` and `print-config` entries, exact resume.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

import skilltrain


@dataclass
class LossPowerConfig:
    power: float = 1.0  # 0: plain loss; 1: weight skills in proportion to their loss; larger: focus on the worst

    def validate(self) -> None:  # a ValueError here is one `error:` line naming the key, like a built-in's
        if self.power < 0:
            raise ValueError(f"power must be ≥ 0, got {self.power}")


@skilltrain.register_intervention("loss_power", "weights skill k by its loss to the power p, normalised", LossPowerConfig)
class LossPower(skilltrain.Intervention):
    """Loss-power weighting (an example plugin).

    What it does. Gives the skills with the highest loss more weight, smoothly: `power=0` is the plain loss.

    Formula. w_k = K · ℓ_k^p / Σ_j ℓ_j^p, ℓ_k the skill's mean loss this step (all-reduced across ranks, so every
    rank uses the same weights; a skill absent from the batch has no loss and weight 0).

    Parameters. `power`.

    When it helps. When the skills that lag are the ones whose loss is high.

    When it hurts. On parity skills, whose loss stays at chance until they are learned: like self-reweighting, it
    cannot tell which skill is about to be learned.
    """

    touches = frozenset({"loss"})

    def loss_weights(self, module, losses, mask, stats):
        loss = torch.nan_to_num(stats["mask_loss"]).clamp(min=0)  # [K]; NaN: the skill is not in the batch
        scaled = loss ** self.params.power * (loss > 0)
        self.weights = len(scaled) * scaled / scaled.sum().clamp(min=1e-12)
        return self.weights.to(losses)

    def logged(self):
        return {} if getattr(self, "weights", None) is None else {f"weight/{s}": w for s, w in zip(self.skills, self.weights)}


if __name__ == "__main__":  # runs only when this file is the script; a plugin import stops above
    parser = argparse.ArgumentParser(description="compare loss_power with the baseline on domino_2task")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out-dir", default=None)
    args = parser.parse_args()
    result = skilltrain.compare("domino_2task", seeds=args.seeds, arms=["baseline", "loss_power"], workers=2,
                                overrides=[f"plugins=[{__file__}]", f"trainer.max_steps={args.steps}"], out_dir=args.out_dir)
    rare = result.statistics["skills"]["x3x4"]["loss_power"]
    print(f"rare skill x3x4: median learn step {rare['median']}, speedup {rare['speedup']['median']} "
          f"(CI {rare['speedup']['ci']}) over {rare['n']} seeds; comparison in {result.directory}")
