"""Architecture: methods that change the model, so that skills stop competing for one set of parameters.

A method implements `build(module)`: given the SkillModule (its `model`, `task` and run `cfg`), the model to train
instead. The base class calls it once (`replace_model`), in `setup(stage="fit")` — before checkpoint restore, DDP
wrapping and optimizer creation — under a random seed of its own (drawn from the run's seed: the new weights do not
depend on how much of the global random stream the launcher used), in the old model's dtype and on its device.
"""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from skilltrain.callbacks.intervention import Intervention
from skilltrain.config import require
from skilltrain.data.stream import mix_seed
from skilltrain.errors import UserError


class Architecture(Intervention):
    """Base of the architecture family: implement `build(module) -> torch.nn.Module`."""

    touches = frozenset({"model"})

    def __init__(self, params, task):
        super().__init__(params, task)
        self.replaced = False
        self.module = None  # the SkillModule, known from setup

    def build(self, module) -> torch.nn.Module:
        raise NotImplementedError

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            self.replace_model(pl_module)
        self.module = pl_module

    def replace_model(self, module) -> None:
        """Replace `module.model` by the one this method builds (once): what training starts from, and what a reader
        of a trained run rebuilds before loading its weights (skilltrain.build.build_model)."""
        self.module = module
        if self.replaced:
            return
        reference = next(module.model.parameters())
        seed = module.cfg.seed if module.cfg is not None else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(seed, self.name))
            model = self.build(module)
        module.model = model.to(dtype=reference.dtype, device=reference.device)
        self.replaced = True


class _ReplacesTheMLP(Architecture):
    """What both routing modes share: they rebuild skilltrain's MLP (`model.name=mlp`) with the same hidden widths."""

    def check(self, cfg) -> None:
        if cfg is None:
            raise UserError(f"interventions.{self.name}: rebuilds skilltrain's MLP from the run config; a module built "
                            "around your own model has none (build the modules into your model instead)")
        if cfg.model.name != "mlp":
            raise UserError(f"interventions.modular_routing: turns an MLP into modules, but model.name={cfg.model.name}; "
                            "use model.name=mlp (or model.name=modular_mlp without this intervention)")
        for i, w in enumerate(cfg.model.widths):
            require(w >= self.n_modules, f"model.widths[{i}]",
                    f"must be ≥ the number of {self.unit}s ({self.n_modules}) to give each units, got {w}")

    def _mlp_shape(self, module) -> tuple[object, int]:
        return OmegaConf.to_object(module.cfg.model), module.model.layers[-1].out_features


class OracleModules(_ReplacesTheMLP):
    """One module per skill, routed by skill id (`modular_routing`, mode `oracle`, the default).

    What it does. The Domino model of arXiv 2501.12391 says skills learned by one shared network queue for its
    updates, and separate modules learn in parallel. This replaces the MLP by K block-diagonal modules, one per skill,
    with the same total hidden widths (skilltrain.models.modular.ModularMLP: masked weights, exactly zero across
    blocks, and zero gradient there). Outputs form: skill k's outputs read only module k. Control form: each sample
    is routed through its own skill's module by its skill id. `split_inputs=true` also gives each module its own
    input features (the paper's two independent 1→50→50→1 networks in the two-skill regression). Logged: each
    module's weight norm, `module_norm/<skill>`.

    Formula. h^(l+1) = σ((W^(l) ⊙ B^(l)) h^(l)), B the block-diagonal 0/1 mask; control form also
    h^(l) ← h^(l) ⊙ gate[skill]. Modules are computed densely, so every parameter is in every step's graph: DDP needs
    no unused-parameter search.

    Parameters. `split_inputs`.

    When it helps. It reproduces the paper's modularity result: the rare regression skill no longer waits for the
    frequent one, and the ten `multitask_parity` skills are all learned sooner. Measured, with intervals:
    callbacks/README.md.

    When it hurts. The frequent skill is learned later in the regression, as in the paper: each module
    is smaller. Modules cannot share what skills have in common: a composite gains nothing from its parts.
    """

    unit = "skill"

    @property
    def n_modules(self) -> int:
        return self.task.n_skills

    def build(self, module):
        from skilltrain.models.modular import ModularMLP, ModularMLPConfig

        cfg, n_outputs = self._mlp_shape(module)
        modular = ModularMLPConfig(widths=list(cfg.widths), activation=cfg.activation, split_inputs=self.params.split_inputs)
        return ModularMLP(modular, self.task, n_outputs)

    def logged(self) -> dict[str, float | torch.Tensor]:
        if self.module is None or not hasattr(self.module.model, "block_norms"):
            return {}
        return {f"module_norm/{s}": n for s, n in zip(self.skills, self.module.model.block_norms())}


class LearnedRouting(_ReplacesTheMLP):
    """Learned top-k routing over expert MLPs (`modular_routing`, mode `learned`).

    What it does. Replaces the MLP by `n_experts` expert MLPs mixed by a router on the input (no skill id needed, at
    training or evaluation), with a load-balancing loss (skilltrain.models.moe.MixtureMLP). Logged per skill (control
    form): the mean routing probability on each expert and its entropy, `load/<skill>/e<j>`, `entropy/<skill>`.

    Formula. y = Σ_{e ∈ topk(softmax(R x))} ĝ_e(x) · expert_e(x), ĝ the router probability (renormalised over the k
    chosen when k > 1), plus the Switch Transformer's load-balancing loss balance · E · Σ_e f_e P_e.

    Parameters. `n_experts` (null: one per skill), `top_k`, `balance`.

    When it helps. When skills need separate parameters but their identity is not given to the model.

    When it hurts. The router must first discover the split: on `domino_2task` both skills were learned later than
    without modules. Measured, with intervals: callbacks/README.md.
    """

    touches = frozenset({"model", "loss"})
    unit = "expert"

    def __init__(self, params, task):
        super().__init__(params, task)
        self._skill: torch.Tensor | None = None

    @property
    def n_modules(self) -> int:
        return self.params.n_experts or self.task.n_skills

    def check(self, cfg) -> None:
        require(self.params.top_k <= self.n_modules, "interventions.modular_routing.top_k",
                f"must be ≤ the number of experts ({self.n_modules}), got {self.params.top_k}")
        super().check(cfg)

    def build(self, module):
        from skilltrain.models.mlp import flat_input_size
        from skilltrain.models.moe import MixtureMLP

        cfg, n_outputs = self._mlp_shape(module)
        return MixtureMLP(flat_input_size(self.task), list(cfg.widths), cfg.activation, n_outputs, self.n_modules,
                          self.params.top_k, self.task.vocab_size)

    def extra_loss(self, module):
        return self.params.balance * module.model.aux

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._skill = batch.get("skill")  # for the routing statistics, measured in `logged` with this step's forward

    def logged(self) -> dict[str, float | torch.Tensor]:
        """The mean routing probability on each expert (`load/e<j>`), and per skill (control form) the same and its
        entropy. Measured from this step's forward when the module logs (all ranks at once: it is an all-reduce)."""
        if self.module is None or self.module.model.last_probs is None:
            return {}
        probs = self.module.model.last_probs
        rows = torch.ones(len(probs), 1, dtype=probs.dtype, device=probs.device)
        if self._skill is not None:  # control form: one row of sums per skill, then the total
            rows = torch.cat([torch.nn.functional.one_hot(self._skill, len(self.skills)).to(probs.dtype), rows], dim=1)
        sums = torch.cat([rows.T @ probs, rows.sum(0)[:, None]], dim=1)
        totals = self.module.trainer.strategy.reduce(sums, reduce_op="sum")
        load = totals[:, :-1] / totals[:, -1:].clamp(min=1)  # [K (+1), E]
        values = {f"load/e{j}": v for j, v in enumerate(load[-1])}
        if self._skill is not None:
            entropy = -(load[:-1] * load[:-1].clamp(min=1e-12).log()).sum(1)
            values.update({f"entropy/{s}": e for s, e in zip(self.skills, entropy)})
            for s, row in zip(self.skills, load[:-1]):
                values.update({f"load/{s}/e{j}": v for j, v in enumerate(row)})
        return values
