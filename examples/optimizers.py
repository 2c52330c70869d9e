"""Two optimizers as a plugin: Lion and AdEMAMix, registered as `optim.name=lion` and `optim.name=ademamix`.

    python -m skilltrain theory recipe=geometry_optimizers plugins=[examples/optimizers.py] optim.name=lion
    python -m skilltrain fit recipe=domino_2task plugins=[examples/optimizers.py] optim.name=ademamix

Lion (Chen et al., arXiv 2302.06675): the sign of an interpolation between the momentum and the gradient.
AdEMAMix (Pagliardini et al., arXiv 2409.03137): Adam plus a slow EMA of the gradient, weighted by `alpha`. Both are
written from their papers' update rules (no warm-ups), as arXiv 2501.12391 compares them on the Geometry model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import skilltrain


class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_((beta1 * m + (1 - beta1) * p.grad).sign_(), alpha=-group["lr"])
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)


class AdEMAMix(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=2.0, eps=1e-8, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "alpha": alpha, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2, beta3 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, fast=torch.zeros_like(p), slow=torch.zeros_like(p), sq=torch.zeros_like(p))
                state["step"] += 1
                g = p.grad
                state["fast"].mul_(beta1).add_(g, alpha=1 - beta1)
                state["slow"].mul_(beta3).add_(g, alpha=1 - beta3)
                state["sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                fast = state["fast"] / (1 - beta1 ** state["step"])
                denom = (state["sq"] / (1 - beta2 ** state["step"])).sqrt_().add_(group["eps"])
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.addcdiv_(fast + group["alpha"] * state["slow"], denom, value=-group["lr"])


@dataclass
class AdEMAMixConfig(skilltrain.OptimConfig):
    name: str = "ademamix"
    beta3: float = 0.9999  # the slow EMA's factor (optim.betas are the fast EMA's and the second moment's)
    alpha: float = 2.0  # the slow EMA's weight


@skilltrain.register_optimizer("lion", "Lion: the sign of an interpolated momentum (optim.betas, default (0.9, 0.99))")
def lion(params, cfg):
    return Lion(params, lr=cfg.lr, betas=tuple(cfg.betas or (0.9, 0.99)), weight_decay=cfg.weight_decay)


@skilltrain.register_optimizer("ademamix", "AdEMAMix: Adam plus a slow gradient EMA (optim.beta3, optim.alpha)",
                               AdEMAMixConfig)
def ademamix(params, cfg):
    b1, b2 = cfg.betas or (0.9, 0.999)
    return AdEMAMix(params, lr=cfg.lr, betas=(b1, b2, cfg.beta3), alpha=cfg.alpha, eps=cfg.eps,
                    weight_decay=cfg.weight_decay)
