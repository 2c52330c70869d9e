"""Gradient editing: methods that change the summed gradient before the optimizer uses it.

A method implements `edit_gradients(module, parameters)`, changing `p.grad` in place. It runs in
`on_before_optimizer_step`: the gradients there are accumulated, all-reduced across DDP ranks (so every rank edits
the same gradient), unscaled by AMP, and not yet clipped. The base class logs the global norm of the gradient it was
given, `intervention/<name>/grad_norm`: at a logging step, that of the step before (the latest one taken).
"""

from __future__ import annotations

import torch

from skilltrain.callbacks.intervention import Intervention


class GradientEditing(Intervention):
    """Base of the gradient-editing family: implement `edit_gradients`."""

    touches = frozenset({"gradients"})

    def __init__(self, params, task):
        super().__init__(params, task)
        self.grad_norm: torch.Tensor | None = None

    def edit_gradients(self, module, parameters: list[torch.nn.Parameter]) -> None:
        raise NotImplementedError

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        parameters = [p for p in pl_module.parameters() if p.grad is not None]
        every = trainer.log_every_n_steps
        if every and (trainer.global_step + 1) % every == 0:  # logged at the next step; a norm costs a pass
            self.grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in parameters]))
        self.edit_gradients(pl_module, parameters)

    def logged(self) -> dict[str, float | torch.Tensor]:
        return {} if self.grad_norm is None else {"grad_norm": self.grad_norm}

    def state_dict(self) -> dict:
        return {"grad_norm": self.grad_norm}  # the norm a resumed run logs next, as the uninterrupted one would

    def load_state_dict(self, state_dict: dict) -> None:
        self.grad_norm = state_dict["grad_norm"]


class SignGradients(GradientEditing):
    """Sign updates (`gradient_rescaling`, mode `sign`).

    What it does. Replaces the summed gradient by its sign before the optimizer step: the mechanism of SignGD (Adam
    with betas (0, 0)), which arXiv 2501.12391 links to the Domino effect, as a callback for any optimizer.

    Formula. g ← sign(g), element-wise, after DDP's all-reduce and before clipping.

    Parameters. None.

    When it helps. Two skills that share a network: both parities of `domino_2task`, both regression skills of
    `modularity_regression` are learned sooner. Measured, with intervals: callbacks/README.md.

    When it hurts. Many skills in one hidden layer: on `multitask_parity` every skill but the most frequent is
    learned later. Sign updates also assume the skills are aligned with the parameter basis.
    """

    stackable = True

    def edit_gradients(self, module, parameters):
        for p in parameters:
            p.grad.sign_()
