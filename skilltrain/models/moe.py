"""A mixture of expert MLPs with a learned top-k router (the `learned` mode of modular_routing).

E expert sub-networks share the input; they are the diagonal blocks of masked layers, computed densely (so every
parameter is in every step's graph: no DDP unused-parameter search is needed). A linear router on the input picks
the top-k experts of each sample; their outputs are mixed with the router probabilities (renormalised over the k
chosen when k > 1). The load-balancing loss of the Switch Transformer, E · Σ_e f_e · P_e (f_e: share of samples
whose first choice is e, P_e: mean router probability of e), keeps experts in use; `aux` holds it after each
forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from skilltrain.models.mlp import ACTIVATIONS, flatten_input
from skilltrain.models.modular import MaskedLinear, block_mask, split_sizes


class MixtureMLP(nn.Module):
    def __init__(self, n_inputs: int, widths: list[int], activation: str, n_outputs: int, n_experts: int, top_k: int,
                 vocab_size: int | None = None):
        super().__init__()
        self.vocab_size, self.n_experts, self.top_k, self.n_outputs = vocab_size, n_experts, top_k, n_outputs
        sizes = [split_sizes(w, n_experts) for w in widths]
        layers = [MaskedLinear(torch.ones(widths[0], n_inputs))]  # every expert reads the whole input
        layers += [MaskedLinear(block_mask(a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
        self.hidden = nn.ModuleList(layers)
        self.head = MaskedLinear(block_mask(sizes[-1], [n_outputs] * n_experts))  # each expert: all outputs
        self.router = nn.Linear(n_inputs, n_experts)
        self.act = ACTIVATIONS[activation]()
        self.aux = torch.zeros(())
        self.last_probs: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = flatten_input(x, self.vocab_size, self.head.weight.dtype)
        probs = torch.softmax(self.router(x), dim=-1)
        top, index = probs.topk(self.top_k, dim=-1)
        # top-1 mixes with the router probability itself (Switch): renormalised it would be 1, and the task loss
        # would give the router no gradient
        weight = top if self.top_k == 1 else top / top.sum(-1, keepdim=True)
        gates = torch.zeros_like(probs).scatter(1, index, weight)
        h = x
        for layer in self.hidden:
            h = self.act(layer(h))
        out = self.head(h).view(len(x), self.n_experts, self.n_outputs)
        first = F.one_hot(index[:, 0], self.n_experts).to(probs.dtype)
        self.aux = self.n_experts * (first.mean(0) * probs.mean(0)).sum()
        self.last_probs = probs.detach()
        return (gates.unsqueeze(-1) * out).sum(1)
