"""The Resource model (arXiv 2501.12391): skills compete for one update budget.

Each skill i has an unlearned fraction u_i = 1 − s_i, u_i(0) = 1. Every step the model hands out a budget η (η_eff,
= 2·lr·√N for a network of N parameters trained with SignGD) in proportion to what each skill still "asks for",
c_i p_i u_i, against a pool of wasted resources N0 (gradient noise, a large learning rate, small batches):

    MSE:  u_i ← max(0, u_i − η · [C (c∘p∘u)]_i / (Σ_j c_j p_j u_j + N0))
    CE:   z_i ← z_i + η · [C (c∘p∘σ(−z))]_i / (Σ_j c_j p_j σ(−z_j) + N0),   u_i = σ(−z_i), z_i(0) = 0

C = I when the skills' task vectors are orthogonal (C_ij = t_i·t_j otherwise). A skill with prerequisites asks only
once they are learned, through a step-like gate with a small exponent a: AND c_j = Π_k (1 − v_k^a), OR
c_j = max_k (1 − v_k^a) over its prerequisites k; c_j = 1 without any. MSE: v = u, the paper's gate. CE: v = (u −
0.1)/(½ − 0.1) clipped to [0, 1]: the gate opens as the prerequisite reaches the learned level u = 0.1 (under CE, u
falls only like 1/t, and 1 − u^a would never open). Gates are computed from log u, and the MSE form keeps log u, so
nothing underflows: the paper's float64 code lets u pass through subnormal numbers (≈ 10^−308…10^−324), where the
AND tree's last learn step depends on the rounding (8331 there; 8183…8494 for the same formula with other orders of
operations; 8259 here, exact).

With N0 → 0 the budget goes to one skill at a time (the Domino effect); with N0 ≫ Σ p u every skill decays on its
own, u_i(t) = exp(−η p_i t / N0) (for small η), so u_i^(1/p_i) is one curve for all skills: the paper's collapse.

Everything here is plain torch and broadcasts over leading dimensions (seeds, parameter sets), so that fitting the
model to a run evaluates many (η, N0) at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from skilltrain.config import require
from skilltrain.errors import UserError, unknown

LOSSES = ("mse", "ce")
GATES = ("and", "or")
LEARNED_U = 0.1  # a skill counts as learned once u ≤ 0.1 (skill level s ≥ 0.9)


@dataclass
class ResourceConfig:
    """`resource.*` of a theory run."""

    eta: float = 0.01  # η_eff: the budget handed out per step (2·lr·√N for SignGD on N parameters)
    n0: float = 0.01  # N0: wasted resources
    loss: str = "mse"  # mse (on u) | ce (on the logits z, u = σ(−z))
    overlap: list[list[float]] | None = None  # C, K × K (t_i·t_j); null: orthogonal task vectors (C = I)
    prerequisites: dict[str, Any] = field(default_factory=dict)  # skill → {op: and|or, of: [skills]}
    gate_exponent: float = 0.01  # a: the gate 1 − u^a is ~0 until u is ~0 (step-like for small a)

    def validate(self) -> None:
        require(self.eta > 0, "resource.eta", f"must be > 0, got {self.eta}")
        require(self.n0 >= 0, "resource.n0", f"must be ≥ 0, got {self.n0}")
        require(self.gate_exponent > 0, "resource.gate_exponent", f"must be > 0, got {self.gate_exponent}")
        if self.loss not in LOSSES:
            raise unknown("loss", self.loss, LOSSES, key="resource.loss")


def gates_from(prerequisites: dict[str, Any], skills: list[str], key: str = "resource.prerequisites") -> list:
    """[(op, [prerequisite indices]) or None] per skill, from {skill: {op, of}}; one-line errors for bad names."""
    gates: list = [None] * len(skills)
    require(isinstance(prerequisites or {}, dict), key, "expected a mapping {skill: {op: and|or, of: [skills]}}")
    for name, spec in (prerequisites or {}).items():
        if name not in skills:
            raise unknown("skill", str(name), skills, key=key)
        shape_ok = isinstance(spec, dict) and set(spec) <= {"op", "of"} and isinstance(spec.get("of"), list) \
            and all(isinstance(part, str) for part in spec["of"])
        require(shape_ok, f"{key}.{name}", f"expected {{op: and|or, of: [skills]}}, got {spec}")
        op = str(spec.get("op", "and"))
        if op not in GATES:
            raise unknown("op", op, GATES, key=f"{key}.{name}.op")
        parts = list(spec["of"])
        require(parts, f"{key}.{name}.of", "needs at least one skill")
        for part in parts:
            if part not in skills:
                raise unknown("skill", str(part), skills, key=f"{key}.{name}.of")
            require(part != name, f"{key}.{name}.of", f"{name} cannot depend on itself")
        gates[skills.index(name)] = (op, [skills.index(p) for p in parts])
    _check_acyclic(gates, skills, key)
    return gates


def _check_acyclic(gates: list, skills: list[str], key: str) -> None:
    state = [0] * len(skills)  # 0 unseen, 1 on the path, 2 done

    def visit(i: int) -> None:
        if state[i] == 1:
            raise UserError(f"{key}: the prerequisites of {skills[i]} form a cycle")
        if state[i] == 0:
            state[i] = 1
            for j in (gates[i][1] if gates[i] else []):
                visit(j)
            state[i] = 2

    for i in range(len(skills)):
        visit(i)


def gate_values(u: torch.Tensor, gates: list, a: float, *, loss: str = "mse", log_u: torch.Tensor | None = None
                ) -> torch.Tensor:
    """c: [..., K], 1 for skills without prerequisites. A prerequisite k counts as learned to the degree 1 − v_k^a,
    computed as −expm1(a·log v_k) so that it cannot underflow (u reaches 10^−300 and below in the MSE form, where
    u^a is still far from 0 for a = 10^−3): MSE v = u (the paper's gate 1 − u^a); CE v = (u − u_L)/(½ − u_L)
    clipped to [0, 1], with u_L = LEARNED_U, so that the gate opens as the prerequisite reaches the learned level
    (under CE u = σ(−z) only falls like 1/t: 1 − u^a would stay near 0 for any feasible training time).
    `log_u`: log u when the caller has it (the MSE simulation keeps its state in log space)."""
    if not any(gates):
        return torch.ones_like(u)
    if loss == "ce":
        log_v = torch.log(((u - LEARNED_U) / (0.5 - LEARNED_U)).clamp(0, 1))
    else:
        log_v = torch.log(u.clamp(min=0)) if log_u is None else log_u
    learned = -torch.expm1(a * log_v)  # 1 − v^a: ~0 until the prerequisite is (almost) learned; 1 at v = 0
    columns = []
    for i, gate in enumerate(gates):
        if gate is None:
            columns.append(torch.ones_like(u[..., i]))
        else:
            op, parts = gate
            values = learned[..., parts]
            columns.append(values.prod(-1) if op == "and" else values.amax(-1))
    return torch.stack(columns, -1)


def simulate(p: torch.Tensor, eta: torch.Tensor | float, n0: torch.Tensor | float, steps: int, *, loss: str = "mse",
             overlap: torch.Tensor | None = None, gates: list | None = None, a: float = 0.01,
             every: int = 1, u0: torch.Tensor | None = None, at: list[int] | None = None) -> torch.Tensor:
    """u at steps 0, every, 2·every, … ≤ steps (or at the steps listed in `at`): [T, ..., K]. `p` [..., K] (or [K]);
    `eta`, `n0` broadcast against p's leading dimensions ([...] or scalars); `u0`: the state at step 0 (default:
    nothing learned, u = 1).

    The MSE form keeps log u (u ← u·(1 − η·[C(c∘p∘u)]_i/(u_i·(Σ c p u + N0))), 0 once the factor is ≤ 0), so that u
    never passes through subnormal numbers, where each update would lose precision and a gate's opening would depend
    on the rounding; the CE form keeps the logits z.

    With `eta` multiplied by dt and `steps` divided by it, the same call takes Euler steps of dt (accurate while
    dt·η·p/(Σ c p u + N0) ≪ 1): a cheap long-horizon prediction."""
    p = torch.as_tensor(p, dtype=torch.float64)
    eta = torch.as_tensor(eta, dtype=torch.float64)[..., None]
    n0 = torch.as_tensor(n0, dtype=torch.float64)[..., None]
    shape = torch.broadcast_shapes(p.shape, eta.shape, n0.shape)
    gates = gates or [None] * shape[-1]
    start = torch.ones(shape, dtype=torch.float64) if u0 is None else torch.as_tensor(u0, dtype=torch.float64).expand(shape)
    # CE: the logits z, u = σ(−z) ≤ ½; MSE: log u
    state = torch.logit(1 - start.clamp(1e-12, 0.5)) if loss == "ce" else torch.log(start.clamp(min=0))
    wanted = set(at) if at is not None else None
    out = [_u(state, loss)] if wanted is None or 0 in wanted else []
    for step in range(1, steps + 1):
        u = _u(state, loss)
        c = gate_values(u, gates, a, loss=loss, log_u=None if loss == "ce" else state)
        if loss == "ce":
            demand = c * p * u
            share = demand if overlap is None else demand @ overlap.T.to(demand)
            state = state + eta * share / (demand.sum(-1, keepdim=True) + n0).clamp(min=1e-300)
        else:
            demand = c * p * u
            total = (demand.sum(-1, keepdim=True) + n0).clamp(min=1e-300)  # all learned, N0 = 0: no update
            if overlap is None:  # the fraction of u_i removed, without dividing by u_i
                removed = eta * c * p / total
            else:
                removed = eta * (demand @ overlap.T.to(demand)) / (u * total)
            removed = torch.where(torch.isneginf(state), torch.zeros_like(removed), removed)  # learned stays learned
            state = torch.where(removed < 1, state + torch.log1p(-removed.clamp(max=1)), torch.full_like(state, -math.inf))
        if (step in wanted) if wanted is not None else step % every == 0:
            out.append(_u(state, loss))
    return torch.stack(out)


def _u(state: torch.Tensor, loss: str) -> torch.Tensor:
    return torch.sigmoid(-state) if loss == "ce" else torch.exp(state)


def skill_loss(u: torch.Tensor, loss: str) -> torch.Tensor:
    """The skill's loss at unlearned fraction u: (1 − s)² = u² (MSE), −log s = −log(1 − u) (CE)."""
    return u**2 if loss == "mse" else -torch.log1p(-u.clamp(max=1 - 1e-12))
