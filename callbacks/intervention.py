"""The interface every intervention implements, and when each of its hooks runs.

An intervention is a Lightning `Callback` with a registered name (`interventions.<name>.<param>=value` enables it;
`skilltrain.register_intervention`), a unique `state_key`, `state_dict`/`load_state_dict` of tensors and plain
Python (exact resume; checkpoints load with weights_only=True), and a declaration of what it touches (`touches`):

- "loss":      per-skill or per-entry weights on the loss matrix L[B, K], returned by `loss_weights`; the module
               multiplies the weights of all interventions (each computed from the unweighted losses, so they
               compose: "equalise, then tilt"), and adds any `extra_loss` (e.g. a load-balancing term).
- "gradients": edits of the gradients in `on_before_optimizer_step` (accumulated, DDP-synchronised, AMP-unscaled,
               not yet clipped).
- "model":     changes the model in `setup(stage="fit")`, before checkpoint restore, DDP wrapping and optimizer
               creation.
- "data":      changes the stream's skill rates, identically on every rank.

Two interventions that both rebuild the model, or both set the skill rates, are refused; so is one that touches a
part another declares `exclusive` (jacobian_descent owns the loss: other weights would change its combination of the
skills' gradients).

Four small base classes, one per family, do the wiring; a method implements one method of one of them:
`LossWeighting.loss_weights`, `DataSampling.rates`, `GradientEditing.edit_gradients`, `Architecture.build`
(skilltrain.callbacks.loss_weighting, .data_sampling, .gradient_editing, .architecture). A direct subclass of
`Intervention` that sets `touches` and overrides the hooks it needs is a complete intervention too.

Step timeline. One optimizer step t of a run, in order (K skills, B rows):

    once, before step 0
      setup(stage="fit")           Architecture.build: the model is replaced (before restore, DDP, optimizer)
      on_train_start               DataSampling: the stream's first skill rates (restored ones on a resume)
    every step t
      batch t is made              by the stream, with the skill rates set after step t-1
      on_train_batch_start
      SkillModule.training_step    forward → L[B, K], masks M, D → per-skill statistics, all-reduced over ranks
                                   (`stats`: loss, acc, count, mask_loss, mask_share [K]; rows)
        loss_weights(module, losses, mask, stats)   each intervention in config order; the weights multiply
        extra_loss(module)                          added to the loss
      backward                     (DDP all-reduces the gradients)
      on_before_optimizer_step     GradientEditing.edit_gradients, in config order; then clipping, optimizer step
      on_train_batch_end           DataSampling.rates(stats) → the skill rates of batch t+1; learn steps, divergence
                                   check, checkpoints (skilltrain's own callbacks run after the interventions)
      at steps 0, n, 2n, …         logged(): intervention/<name>/<key>, n = trainer.log_every_n_steps

Everything an intervention computes from the batch uses these all-reduced statistics, so every rank makes the
same decision even when a skill is missing from its batch.
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch

from skilltrain.errors import UserError

TOUCHES = ("loss", "gradients", "model", "data")
EXCLUSIVE = ("model", "data")  # two interventions that both rebuild the model or both set the skill rates conflict


class Intervention(L.Callback):
    """Base class of interventions: constructed as `cls(params, task)`, `params` its validated config dataclass and
    `task` the run's task (skills, frequencies, form). Subclasses set `touches` and override the hooks they need."""

    name: str = ""  # the registered name (set when it is built from the registry)
    touches: ClassVar[frozenset[str]] = frozenset()
    find_unused_parameters: ClassVar[bool] = False  # whether DDP must look for parameters without gradients
    exclusive: ClassVar[frozenset[str]] = frozenset()  # parts of `touches` no other intervention may touch beside it
    # reads from the device every step (a solver that runs on the host): on a GPU each step waits for it
    host_every_step: ClassVar[bool] = False
    # works when a comparison trains an arm's seeds stacked (compare.stack_seeds=true, skilltrain.stacking): it
    # differentiates nothing through the model's parameters inside a step and does not rebuild the model; it edits
    # `.grad` after the backward pass (in place or replaced) rather than through hooks on the parameters or their
    # gradients (`register_hook`, `register_post_accumulate_grad_hook`: the stacked backward pass fills the stacked
    # tensors, not the seed's own, so such hooks never run), and it does not change `requires_grad` once training
    # started (the stacked tensors keep what the seed's parameters had then). One that does not say so runs its
    # seeds one after another
    stackable: ClassVar[bool] = False

    def __init__(self, params: Any, task):
        self.params = params
        self.task = task
        self.skills: list[str] = list(task.skills)

    @property
    def state_key(self) -> str:
        return f"intervention/{self.name or type(self).__name__}"

    def check(self, cfg) -> None:
        """Refuse, with one UserError line, a setting this intervention cannot work with (cfg: the run config, or
        None when the module was built around a user's own model)."""

    # ---- loss-level hooks (called by SkillModule.training_step) ---------------------------------------------
    def loss_weights(self, module, losses: torch.Tensor, mask: torch.Tensor | None,
                     stats: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Weights broadcastable to the [B, K] loss matrix ([K] per skill or [B, K] per entry), or None."""
        return None

    def extra_loss(self, module) -> torch.Tensor | None:
        return None

    def logged(self) -> dict[str, float | torch.Tensor]:
        """Values logged as intervention/<name>/<key> at the logging cadence (same keys on every rank)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass


def check_composition(interventions: list[Intervention], cfg) -> None:
    """What each declares it touches, its own checks, then: at most one may own the model, and one the data, and an
    intervention that owns a part alone (`exclusive`, e.g. one that combines the skills' gradients itself through
    loss weights) has no other intervention touching it."""
    for iv in interventions:
        wrong = sorted(set(iv.touches) - set(TOUCHES))
        if not iv.touches or wrong:
            raise UserError(f"interventions.{iv.name}: {type(iv).__name__}.touches must name what it changes, some of "
                            f"{', '.join(TOUCHES)}; got {sorted(iv.touches)}")
        iv.check(cfg)
    for part in EXCLUSIVE:
        owners = [iv.name for iv in interventions if part in iv.touches]
        if len(owners) > 1:
            raise UserError(f"interventions: {' and '.join(owners)} both change the {part}; they cannot be combined")
    for iv in interventions:
        others = [other.name for other in interventions if other is not iv and iv.exclusive & other.touches]
        if others:
            raise UserError(f"interventions: {iv.name} sets the {'/'.join(sorted(iv.exclusive))} itself and cannot be "
                            f"combined with {' and '.join(others)}, which also change{'s' if len(others) == 1 else ''} it")


CARD_SECTIONS = ("What it does.", "Formula.", "Parameters.", "When it helps.", "When it hurts.")


def card_problems(cls: type) -> list[str]:
    """What a method's card (its class docstring) lacks: each of `CARD_SECTIONS` starts a paragraph of it."""
    doc = cls.__doc__ or ""
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n")]
    return [f"{cls.__name__}: its docstring has no '{s}' paragraph" for s in CARD_SECTIONS
            if not any(p.startswith(s) for p in paragraphs)]


def build_intervention(name: str, params: Any, task) -> Intervention:
    """The registered intervention `name` (its mode's class, when it has modes) for `task`."""
    from skilltrain.registry import INTERVENTIONS

    entry = INTERVENTIONS.get(name)
    intervention = entry.target(getattr(params, "mode", None))(params, task)
    if not isinstance(intervention, Intervention):
        raise UserError(f"interventions.{name}: its registered class made a {type(intervention).__name__}, "
                        "not a skilltrain.Intervention")
    intervention.name = name
    return intervention
