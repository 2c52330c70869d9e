"""Jacobian descent: per-skill loss weights chosen by a multi-objective aggregator of the skills' gradients.

torchjd's aggregators are, for every method used here, a weighting of the Jacobian's rows followed by their
combination: aggregate(J) = Jᵀ w(J). This intervention runs the weighting on the Jacobian of the per-skill loss vector
and leaves the combination to Lightning's own backward pass, as loss weights: the gradient the optimizer receives is
exactly torchjd's aggregate, and DDP's all-reduce, AMP, clipping, optimizers and schedulers work unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from skilltrain.callbacks.jacobian_descent import EXTRA
from skilltrain.callbacks.loss_weighting import LossWeighting
from skilltrain.config import require
from skilltrain.errors import UserError
from skilltrain.models import skill_owners


def make_aggregator(params, n_skills: int):
    """The torchjd aggregator `params.aggregator` names, with the keys it uses (unset ones at torchjd's defaults)."""
    try:
        from torchjd import aggregation as agg
        from torchjd.linalg import QuadprogProjector
    except ImportError:
        raise UserError(f"interventions.jacobian_descent: needs torchjd, an optional dependency: {EXTRA}") from None
    set_ = lambda **kw: {k: v for k, v in kw.items() if v is not None}  # noqa: E731
    projector = lambda: QuadprogProjector(**set_(norm_eps=params.norm_eps, reg_eps=params.reg_eps))  # noqa: E731
    build = {
        "upgrad": lambda: agg.UPGrad(projector=projector()),
        "mgda": lambda: agg.MGDA(**set_(epsilon=params.epsilon, max_iters=params.max_iters)),
        "pcgrad": lambda: agg.PCGrad(),
        "cagrad": lambda: agg.CAGrad(c=params.c, **set_(norm_eps=params.norm_eps)),
        "imtl_g": lambda: agg.IMTLG(),
        "nash_mtl": lambda: agg.NashMTL(n_tasks=n_skills, max_norm=params.max_norm, optim_niter=params.optim_niter),
        "aligned_mtl": lambda: agg.AlignedMTL(scale_mode=params.scale_mode),
        "dualproj": lambda: agg.DualProj(projector=projector()),
        "fairgrad": lambda: agg.FairGrad(alpha=params.alpha, **set_(max_iters=params.max_iters)),
    }[params.aggregator]
    try:
        return build()
    except ImportError as e:  # a solver torchjd needs for this aggregator (quadprog, cvxpy, ...)
        raise UserError(f"interventions.jacobian_descent.aggregator={params.aggregator}: {' '.join(str(e).split())} "
                        f"(all of them: {EXTRA})") from None


class JacobianDescent(LossWeighting):
    """Jacobian descent over skills (`jacobian_descent`, `aggregator=upgrad|mgda|pcgrad|cagrad|imtl_g|nash_mtl|
    aligned_mtl|dualproj|fairgrad`; torchjd's implementations).

    What it does. Treats every skill as its own objective: instead of summing the skills' gradients (so frequent
    skills dominate the shared parameters), it combines them with a multi-objective aggregator from the
    multi-task-learning literature, e.g. UPGrad, whose update conflicts with no skill's gradient.

    Formula. ℓ_k = Σ_b M[b,k]·L[b,k] / Σ_b M[b,k], the masked mean of skill k's column of L over the global batch
    (a skill absent from it has no row); J = ∂ℓ/∂θ over all trainable parameters ([m, P]; torchjd.autojac.jac, one
    vectorised backward pass, all-reduced across DDP ranks); w = the aggregator's weighting of J (through its
    Gramian J Jᵀ for all but Nash-MTL); the update direction is Jᵀ w, applied as per-skill loss weights
    w_k / share_k (share_k: skill k's share of the batch's rows), so that Lightning's backward makes it. Logged:
    the weights, `intervention/jacobian_descent/weight/<skill>` (0 for a skill absent from the batch). With
    `params=shared`, w is the weighting of J's shared columns only (the entries no one skill owns, see
    skilltrain.models.skill_owners), and the entries skill k owns get the plain summed gradient Σ_k share_k J_k
    instead of Σ_k w_k J_k: a loss term Σ (θ − sg(θ))·c over them, c = Σ_k (share_k − w_k) J_k, adds the difference
    (its value is 0; its gradient, c, goes through the same backward, DDP averaging and accumulation as the rest).

    Parameters. `aggregator`; `params` (all | shared: every aggregator); `norm_eps`, `reg_eps` (upgrad, dualproj),
    `epsilon`, `max_iters` (mgda, fairgrad), `c` (cagrad), `max_norm`, `optim_niter` (nash_mtl), `scale_mode`
    (aligned_mtl), `alpha` (fairgrad). Nash-MTL's weights are recomputed every step (torchjd's update_weights_every
    is not offered), and on a step where a skill is absent from the global batch the others keep their previous
    weights (its state assumes all K rows).

    When it helps. When skills' gradients conflict on shared parameters and one dominates: the aggregators that
    equalise or protect each objective (UPGrad, IMTL-G, Nash-MTL, FairGrad) give a rare skill a direction of its own.
    Measured on the recipes' learn steps, with its cost per step: callbacks/README.md.

    When it hurts. It costs a Jacobian (K rows: one batched backward pass that holds K gradients) and a small solver
    per step; cvxpy-based aggregators (cagrad, nash_mtl) cost milliseconds per step whatever the model. Per-skill
    means weigh a skill's rows by 1 / its frequency, so noise in a rare skill's gradient is amplified. MGDA follows the
    smallest gradient in the convex hull and can stall every skill. Refused under float16, with model.compile, and
    beside another intervention that changes the loss (its weights would change the combination).
    """

    exclusive = frozenset({"loss"})
    host_every_step = True  # torchjd's weightings solve on the host (numpy, quadprog, cvxpy), every step

    def __init__(self, params, task):
        super().__init__(params, task)
        self.aggregator = make_aggregator(params, len(self.skills))
        self.nash = params.aggregator == "nash_mtl"
        self.seed = 0  # the run's seed, once `check` has seen the config
        self.shared_only = params.params == "shared"
        self.owner: torch.Tensor | None = None  # [P]: the skill owning each flattened parameter entry, −1 if shared
        self.correction: tuple | None = None  # (parameters, c per parameter) for extra_loss, this step's

    def check(self, cfg) -> None:
        if cfg is not None:
            self.seed = cfg.seed or 0
            require(not str(cfg.trainer.precision).startswith("16"), "trainer.precision",
                    f"{cfg.trainer.precision} cannot be used with interventions.jacobian_descent (the per-skill "
                    "gradients are taken before the AMP loss scaler and would underflow in float16); use bf16-mixed or 32")
            require(not cfg.model.compile, "model.compile", "cannot be used with interventions.jacobian_descent (torchjd "
                    "takes the Jacobian with vmap, which a compiled model's backward does not support)")

    def owners(self, module, params: list[torch.Tensor]) -> torch.Tensor:
        """[P]: the skill that owns each entry of the flattened `params` (−1: shared), as the model declares it."""
        if self.owner is None:
            model = getattr(module, "model", None)
            named = skill_owners(model) if isinstance(model, torch.nn.Module) else {}
            by_id = {id(p): named[n] for n, p in model.named_parameters() if n in named} if named else {}
            self.owner = torch.cat([by_id[id(p)].to(p.device, torch.long).flatten() if id(p) in by_id
                                    else torch.full((p.numel(),), -1, dtype=torch.long, device=p.device) for p in params])
        return self.owner

    def jacobian(self, module, losses: torch.Tensor, mask: torch.Tensor | None, stats) -> tuple[torch.Tensor, torch.Tensor]:
        """(J, present): the Jacobian [K, P] of the per-skill masked mean losses over the global batch, with respect to
        the module's trainable parameters (flattened in `parameters()` order), and which skills the batch has."""
        from torchjd.autojac import jac

        params = self.trainable(module)
        sums = (losses if mask is None else torch.where(mask, losses, 0)).sum(0)  # Σ_b M·L per skill, this rank
        rows = jac(sums, params, retain_graph=True)
        jacobian = torch.cat([r.flatten(1) for r in rows], dim=1)
        if module.trainer.world_size > 1:
            jacobian = module.trainer.strategy.reduce(jacobian, reduce_op="sum")
        count = (stats["mask_share"] * stats["rows"]).to(jacobian.dtype)  # entries in the objective, all ranks
        return jacobian / count.clamp(min=1)[:, None], count > 0

    @staticmethod
    def trainable(module) -> list[torch.Tensor]:
        return [p for p in module.parameters() if p.requires_grad]

    def loss_weights(self, module, losses, mask, stats):
        jacobian, present = self.jacobian(module, losses, mask, stats)
        dtype = torch.promote_types(jacobian.dtype, torch.float32)  # never rounded to bf16: the aggregate stays exact
        weights = torch.zeros(len(self.skills), dtype=dtype, device=jacobian.device)
        share = stats["mask_share"].to(weights.dtype)
        shared = self.owners(module, self.trainable(module)) < 0 if self.shared_only else None
        if shared is not None and not bool(shared.any()):  # nothing shared: nothing to combine, every entry's own sum
            weights = torch.where(present, share, 0)
        elif self.nash and not bool(present.all()):
            weights = torch.where(present, self.previous(weights), weights)
        else:
            # PCGrad draws random orders: from a seed of (run seed, step), so every rank and a resumed run draw the same,
            # and the run's own random stream is left as it was
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed * 1_000_003 + module.global_step)
                rows = jacobian[present] if shared is None else jacobian[present][:, shared]
                # torchjd's solvers (numpy, SVD) take float32 or float64, not bf16/fp16
                rows = rows if rows.dtype in (torch.float32, torch.float64) else rows.float()
                weights[present] = self.aggregator.weighting(rows).to(weights.dtype)
        self.skill_weights = weights
        if shared is not None and not bool(shared.all()):
            self.correct_owned(module, jacobian, torch.where(present, share, 0) - weights, ~shared)
        return torch.where(present, weights / share.clamp(min=1e-300), 0).to(torch.promote_types(losses.dtype, dtype))

    def correct_owned(self, module, jacobian: torch.Tensor, difference: torch.Tensor, owned: torch.Tensor) -> None:
        """What the skill-owned entries lack for their plain summed gradient, c = Σ_k (share_k − w_k) J_k there (0 on
        the shared entries), split by parameter for `extra_loss`."""
        c = torch.zeros(owned.shape, dtype=jacobian.dtype, device=jacobian.device)
        c[owned] = difference.to(jacobian.dtype) @ jacobian[:, owned]
        params = self.trainable(module)
        parts = zip(params, c.split([p.numel() for p in params]), owned.split([p.numel() for p in params]))
        self.correction = [(p, part.view_as(p).to(p.dtype)) for p, part, has in parts if bool(has.any())]

    def extra_loss(self, module) -> torch.Tensor | None:
        """params=shared: Σ (θ − sg(θ))·c over the skill-owned entries, value 0 and gradient c (see correct_owned)."""
        if not self.correction:
            return None
        correction, self.correction = self.correction, None
        return sum(((p - p.detach()) * c).sum() for p, c in correction)

    def previous(self, like: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(like) if self.skill_weights is None else self.skill_weights.to(like)

    def state_dict(self) -> dict:
        state = {"skill_weights": self.skill_weights}
        if self.nash:  # Nash-MTL starts its solver from the previous step's solution
            state["nash_alpha"] = torch.from_numpy(np.array(self.aggregator.weighting.prvs_alpha))
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self.skill_weights = state_dict["skill_weights"]
        if self.nash:
            self.aggregator.weighting.prvs_alpha = state_dict["nash_alpha"].numpy()
