"""modular_routing: one module per skill, so that skills stop competing for one update budget.

Method card
-----------
What it does. The Domino model (PAPER.md) says skills learned by one shared network queue for its updates; separate
modules learn in parallel. At `setup(stage="fit")` — before checkpoint restore, DDP wrapping and optimizer
creation — this intervention replaces the MLP (`model.name=mlp`) by a modular network with the same hidden widths:

- `oracle` (default): K block-diagonal modules, one per skill (skilltrain.models.modular.ModularMLP: masked
  weights, exactly zero across blocks). Outputs form: skill k's outputs read only module k. Control form: each
  sample is routed through its own skill's module by its skill id. `split_inputs=true` also gives each module its
  own input features (the paper's two independent 1→50→50→1 networks in the two-skill regression).
- `learned`: a top-k mixture of `n_experts` expert MLPs routed by the input (no skill id needed, also at
  evaluation), with the Switch-Transformer load-balancing loss weighted by `balance`
  (skilltrain.models.moe.MixtureMLP). Logged per skill (control form): routing load on each expert and its
  entropy, `intervention/modular_routing/{load/<skill>/e<j>,entropy/<skill>}`.

Formula. Oracle: h^(l+1) = σ((W^(l) ⊙ B^(l)) h^(l)) with B the block-diagonal 0/1 mask; control form also
h^(l) ← h^(l) ⊙ gate[skill]. Learned: y = Σ_{e ∈ topk(softmax(R x))} ĝ_e · expert_e(x), + balance · E Σ_e f_e P_e.

DDP. Modules are computed densely (a block-diagonal matmul), so every parameter is in every step's graph, even
when a skill is missing from a rank's batch: DDP needs no `find_unused_parameters` (declared False).

When it helps, when it hurts. See callbacks/README.md: in the paper's modularity experiment the rare skill is
learned about as soon as the frequent one — and the frequent one later than without modules (each module is
smaller). Modules cannot share what skills have in common: a compositional skill gains nothing from its parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import OmegaConf

from skilltrain.callbacks.intervention import Intervention
from skilltrain.config import require
from skilltrain.data.stream import mix_seed
from skilltrain.errors import UserError, unknown
from skilltrain.models.mlp import flat_input_size
from skilltrain.models.modular import ModularMLP, ModularMLPConfig
from skilltrain.models.moe import MixtureMLP
from skilltrain.registry import INTERVENTIONS

MODES = ("oracle", "learned")


@dataclass
class ModularRoutingConfig:
    mode: str = "oracle"  # oracle (a module per skill, routed by skill id) | learned (top-k experts, routed by input)
    split_inputs: bool = False  # oracle: also split the input features between modules
    n_experts: int | None = None  # learned: number of experts (null: one per skill)
    top_k: int = 1  # learned: experts mixed per sample
    balance: float = 0.01  # learned: weight of the load-balancing loss

    def validate(self) -> None:
        key = "interventions.modular_routing"
        if self.mode not in MODES:
            raise unknown("mode", self.mode, MODES, key=f"{key}.mode")
        require(self.n_experts is None or self.n_experts >= 2, f"{key}.n_experts", f"must be ≥ 2, got {self.n_experts}")
        require(self.top_k >= 1, f"{key}.top_k", f"must be ≥ 1, got {self.top_k}")
        require(self.n_experts is None or self.top_k <= self.n_experts, f"{key}.top_k",
                f"must be ≤ n_experts={self.n_experts}, got {self.top_k}")
        require(self.balance >= 0, f"{key}.balance", f"must be ≥ 0, got {self.balance}")


@INTERVENTIONS.register(
    "modular_routing",
    "one module per skill: oracle (block-diagonal, routed by skill id) | learned (top-k experts + load balancing)",
    ModularRoutingConfig,
)
class ModularRouting(Intervention):
    name = "modular_routing"

    def __init__(self, params: ModularRoutingConfig, task):
        super().__init__(params, task)
        self.n_experts = params.n_experts or task.n_skills
        self.replaced = False
        self.module = None  # the SkillModule, known from setup
        self._skill: torch.Tensor | None = None

    @property
    def touches(self) -> frozenset[str]:
        return frozenset({"model", "loss"} if self.params.mode == "learned" else {"model"})

    def check(self, cfg) -> None:
        if cfg.model.name != "mlp":
            raise UserError(f"interventions.modular_routing: turns an MLP into modules, but model.name={cfg.model.name}; "
                            "use model.name=mlp (or model.name=modular_mlp without this intervention)")
        if self.params.mode == "oracle":
            for i, w in enumerate(cfg.model.widths):
                require(w >= self.task.n_skills, f"model.widths[{i}]",
                        f"must be ≥ the number of skills ({self.task.n_skills}) to give each a module, got {w}")
        if self.params.mode == "learned":
            require(self.params.top_k <= self.n_experts, "interventions.modular_routing.top_k",
                    f"must be ≤ the number of experts ({self.n_experts}), got {self.params.top_k}")
            for i, w in enumerate(cfg.model.widths):
                require(w >= self.n_experts, f"model.widths[{i}]",
                        f"must be ≥ n_experts ({self.n_experts}) to give each expert units, got {w}")

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.module = pl_module
        if stage != "fit" or self.replaced:
            return
        mlp = pl_module.model
        cfg = OmegaConf.to_object(pl_module.cfg.model)
        n_outputs = mlp.layers[-1].out_features
        dtype = mlp.layers[-1].weight.dtype
        task = self.task
        # Its own seed, drawn from the run's: the new modules' initial weights must not depend on how much of the
        # global random stream the launcher or strategy happened to use (DDP and one process alike).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(pl_module.cfg.seed, "modular_routing"))
            model = self._build(cfg, task, n_outputs)
        pl_module.model = model.to(dtype=dtype, device=pl_module.device)
        self.replaced = True

    def _build(self, cfg, task, n_outputs: int) -> torch.nn.Module:
        if self.params.mode == "oracle":
            modular = ModularMLPConfig(widths=list(cfg.widths), activation=cfg.activation,
                                       split_inputs=self.params.split_inputs)
            return ModularMLP(modular, task, n_outputs)
        return MixtureMLP(flat_input_size(task), list(cfg.widths), cfg.activation, n_outputs, self.n_experts, self.params.top_k,
                          task.vocab_size)

    # ---- learned routing: load balancing and what it learned ------------------------------------------------
    def extra_loss(self, module):
        if self.params.mode != "learned":
            return None
        return self.params.balance * module.model.aux

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._skill = batch.get("skill")  # for the routing statistics, measured in `logged` with this step's forward

    def logged(self) -> dict[str, float | torch.Tensor]:
        """Per skill (control form): the mean routing probability on each expert, and its entropy. Measured from
        this step's forward when the module logs (all ranks at once: it is an all-reduce)."""
        if self.params.mode != "learned" or self._skill is None or self.module is None:
            return {}
        probs = self.module.model.last_probs
        onehot = torch.nn.functional.one_hot(self._skill, len(self.skills)).to(probs.dtype)
        sums = torch.cat([onehot.T @ probs, onehot.sum(0)[:, None]], dim=1)
        totals = self.module.trainer.strategy.reduce(sums, reduce_op="sum")
        load = totals[:, :-1] / totals[:, -1:].clamp(min=1)  # [K, E]
        entropy = -(load * load.clamp(min=1e-12).log()).sum(1)
        values = {f"entropy/{s}": e for s, e in zip(self.skills, entropy)}
        for s, row in zip(self.skills, load):
            values.update({f"load/{s}/e{j}": v for j, v in enumerate(row)})
        return values
