"""The Geometry model (arXiv 2501.12391): skills as directions in parameter space.

Parameters θ ∈ R^N start at 0. Skill i has a unit task vector t_i and a skill level s_i = t_i·θ with loss
ℓ_i = (1 − s_i)² (MSE), or s_i = σ(t_i·θ) with ℓ_i = −log s_i (CE). Training follows the gradient of Σ_i p_i ℓ_i,
estimated on minibatches of B task ids drawn with probabilities p / Σp (optionally with Gaussian gradient noise of
scale σ), with SGD, SignGD (Adam with betas (0, 0)), Adam or any optimizer registered with skilltrain. The MSE
gradient is the paper's: −(1 − s_i)·t_i per task, the gradient of ½(1 − s_i)² (its Fig 4 script), so an SGD lr here
is the paper's lr; a script that differentiates (1 − s)² itself (its Fig 12 on x²) takes steps twice as large at
the same lr. SignGD and Adam do not see the factor. The weights p are used as given: a theory run passes them
normalised to sum to 1 unless `skills.normalize=false`.

Task vectors: `random` (independent uniform directions: nearly orthogonal for K ≪ N, overlapping otherwise),
`basis` (t_i = e_i: aligned with the parameter basis, where sign updates shine), `rotated` (t_i = R e_i for a random
rotation R: the same geometry, not aligned), `hadamard` (t_i = row i of Sylvester's Hadamard matrix H_N / √N, N a
power of 2: the rotation of the paper's Fig 12, every task spread evenly over every coordinate), `modular` (task
i < N gets its own coordinate e_i, tasks i ≥ N get the zero vector: a model with too few parameters lacks them).

Everything is vectorised over R replicas (seeds, sizes): θ is one [R, N] tensor, the gradient is written in closed
form (no autograd), and elementwise optimizers (SGD, SignGD, Adam) treat the replicas independently. Replicas of
different N share one tensor padded with zero coordinates, which no elementwise optimizer ever moves. A registered
optimizer that mixes coordinates (a matrix preconditioner) would couple padded replicas: run those one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skilltrain.config import require
from skilltrain.errors import unknown

LOSSES = ("mse", "ce")
TASK_VECTORS = ("random", "basis", "rotated", "hadamard", "modular")


@dataclass
class GeometryConfig:
    """`geometry.*` of a theory run."""

    n_params: int = 1000  # N
    task_vectors: str = "random"  # random | basis | rotated | hadamard | modular
    loss: str = "mse"  # mse: s = t·θ, ℓ = (1 − s)²; ce: s = σ(t·θ), ℓ = −log s
    batch_size: int | None = 128  # task ids per step, drawn with probabilities p; null: the exact loss Σ p_i ℓ_i
    noise: float = 0.0  # σ: Gaussian noise added to every gradient coordinate

    def validate(self) -> None:
        require(self.n_params >= 1, "geometry.n_params", f"must be ≥ 1, got {self.n_params}")
        require(self.batch_size is None or self.batch_size >= 1, "geometry.batch_size",
                f"must be ≥ 1 or null (exact loss), got {self.batch_size}")
        require(self.noise >= 0, "geometry.noise", f"must be ≥ 0, got {self.noise}")
        if self.loss not in LOSSES:
            raise unknown("loss", self.loss, LOSSES, key="geometry.loss")
        if self.task_vectors not in TASK_VECTORS:
            raise unknown("task vectors", self.task_vectors, TASK_VECTORS, key="geometry.task_vectors")


def task_vectors(kind: str, n_tasks: int, dims: list[int], generator: torch.Generator,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """[R, K, max(dims)]: replica r's K task vectors in its first dims[r] coordinates (zeros after)."""
    width = max(dims)
    out = torch.zeros(len(dims), n_tasks, width, dtype=dtype)
    for r, n in enumerate(dims):
        if kind == "random":
            v = torch.randn(n_tasks, n, generator=generator, dtype=torch.float64)
            out[r, :, :n] = (v / v.norm(dim=1, keepdim=True)).to(dtype)
        elif kind in ("basis", "modular"):
            require(kind == "modular" or n_tasks <= n, "geometry.task_vectors",
                    f"basis needs n_tasks ≤ n_params ({n_tasks} > {n}); modular gives the tasks beyond N the zero vector")
            k = min(n_tasks, n)
            out[r, torch.arange(k), torch.arange(k)] = 1
        elif kind == "hadamard":
            require(n_tasks <= n and n & (n - 1) == 0, "geometry.task_vectors",
                    f"hadamard needs n_params a power of 2 and n_tasks ≤ n_params (got {n_tasks} tasks, {n} parameters)")
            out[r, :, :n] = (hadamard(n)[:n_tasks] / n**0.5).to(dtype)
        else:  # rotated: columns of a random orthogonal matrix (QR of a Gaussian one, signs fixed: Haar)
            require(n_tasks <= n, "geometry.task_vectors", f"rotated needs n_tasks ≤ n_params ({n_tasks} > {n})")
            q, r_ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
            q = q * torch.sign(torch.diagonal(r_))
            out[r, :, :n] = q[:, :n_tasks].T.to(dtype)
    return out


def hadamard(n: int) -> torch.Tensor:
    """Sylvester's Hadamard matrix H_n (n a power of 2): H_1 = [1], H_2m = [[H_m, H_m], [H_m, −H_m]]."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def level(z: torch.Tensor, loss: str) -> torch.Tensor:
    return z if loss == "mse" else torch.sigmoid(z)


def skill_loss(z: torch.Tensor, loss: str) -> torch.Tensor:
    return (1 - z) ** 2 if loss == "mse" else torch.nn.functional.softplus(-z)  # −log σ(z)


def _dloss(z: torch.Tensor, loss: str) -> torch.Tensor:
    """The gradient's factor per task: MSE −(1 − z), the paper's (the derivative of ½(1 − z)²); CE dℓ/dz = −σ(−z)."""
    return -(1 - z) if loss == "mse" else -torch.sigmoid(-z)


@dataclass
class Trajectory:
    steps: list[int]  # the logged steps (0 and every `every`-th, and the last)
    levels: torch.Tensor  # [T, R, K] skill levels s at the logged steps
    losses: torch.Tensor  # [T, R, K] per-skill losses
    learned_step: torch.Tensor  # [R, K] first step with s ≥ threshold (−1: never)
    stopped_at: int  # the last step simulated


def simulate(vectors: torch.Tensor, p: torch.Tensor, cfg: GeometryConfig, make_optimizer, steps: int,
             generator: torch.Generator, *, threshold: float = 0.9, every: int = 1,
             stop_after_learned: int | None = None) -> Trajectory:
    """Train θ [R, N] from 0 on the task vectors [R, K, N] with task weights p [K] (or [R, K]): the loss Σ p_i ℓ_i,
    its minibatches drawn with probabilities p / Σp (and weighted Σp, so that their mean gradient is the loss's).

    `make_optimizer([θ])` builds the optimizer (skilltrain.optim.build_optimizer with an optim config).
    `stop_after_learned`: end that many steps after every skill of every replica is learned."""
    n_replicas, n_tasks, _ = vectors.shape
    dtype = vectors.dtype
    p = torch.as_tensor(p, dtype=dtype).expand(n_replicas, n_tasks)
    total = p.sum(-1, keepdim=True)
    p = p / total
    theta = torch.zeros(vectors.shape[0], vectors.shape[2], dtype=dtype, requires_grad=True)
    optimizer = make_optimizer([theta])
    learned = torch.full((n_replicas, n_tasks), -1, dtype=torch.long)
    logged_steps, levels, losses = [], [], []
    done_at = None

    def record(step: int, z: torch.Tensor) -> None:
        logged_steps.append(step)
        levels.append(level(z, cfg.loss))
        losses.append(skill_loss(z, cfg.loss))

    step = 0
    with torch.no_grad():
        z = torch.einsum("rkn,rn->rk", vectors, theta)
        learned[level(z, cfg.loss) >= threshold] = 0
        record(0, z)
        for step in range(1, steps + 1):
            if cfg.batch_size is None:
                weights = p * total
            else:
                draws = torch.multinomial(p, cfg.batch_size, replacement=True, generator=generator)
                counts = torch.zeros_like(p).scatter_add_(1, draws, torch.ones_like(draws, dtype=dtype))
                weights = counts * (total / cfg.batch_size)
            grad = torch.einsum("rk,rkn->rn", weights * _dloss(z, cfg.loss), vectors)
            if cfg.noise:
                grad += cfg.noise * torch.randn(grad.shape, generator=generator, dtype=dtype)
            theta.grad = grad
            optimizer.step()
            z = torch.einsum("rkn,rn->rk", vectors, theta)
            s = level(z, cfg.loss)
            learned[(learned < 0) & (s >= threshold)] = step
            if done_at is None and stop_after_learned is not None and bool((learned >= 0).all()):
                done_at = step
            last = step == steps or (done_at is not None and step >= done_at + stop_after_learned)
            if step % every == 0 or last:
                record(step, z)
            if last:
                break
    return Trajectory(logged_steps, torch.stack(levels), torch.stack(losses), learned, step)

