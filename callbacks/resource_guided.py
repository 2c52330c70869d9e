"""Resource-guided sampling (`skill_reweighting`, mode `resource`): the data mixture the Resource model recommends."""

from __future__ import annotations

import math

import numpy as np
import torch

from skilltrain.callbacks.data_sampling import DataSampling
from skilltrain.theory.fit import LEARNED_U

DT = 10  # steps per Euler step of the model (fitting and prediction)
BETAS = (1.0, 0.75, 0.5, 0.25, 0.0)  # candidate mixtures q ∝ p^β · (u + 0.05)^γ (β = 1, γ = 0: the natural one)
GAMMAS = (0.0, 0.5, 1.0, 2.0)
REFERENCE_BATCHES = 10  # ℓ_ref: the mean loss over the first batches that hold the skill (not one noisy batch)


class ResourceGuided(DataSampling):
    """Resource-guided sampling (`skill_reweighting`, mode `resource`): theory that pushes back.

    What it does. Every `fit_every` steps it fits the Resource model of arXiv 2501.12391 (skilltrain.theory) to this
    run's own per-skill training losses so far, under the mixtures it actually used, and asks the fitted model which
    data mixture learns every remaining skill soonest, without predicting any unlearned skill to be learned more than
    `max_slowdown` times later than under the natural mixture. It then samples that mixture until the next fit.

    Formula. Measured: each skill's unlearned fraction u_k from an EMA (`ema`) of its all-reduced training loss ℓ_k and
    its loss before learning ℓ_ref (the mean over the first 10 batches that hold the skill): √(ℓ/ℓ_ref) for MSE
    skills, 1 − exp(−ℓ·log 2/ℓ_ref) for CE skills (the model's own losses); a skill absent from a batch keeps its EMA,
    and a fit point where a skill was not seen yet leaves that cell out. Fitted: η_eff and N0 of
    u_k ← u_k − η·q_k u_k/(Σ_j q_j u_j + N0) (CE: on the logits; prerequisite gates from the task's declared
    structure), by least squares over a grid of (log η, log N0), coarse at the first fit,
    local after. Chosen: among q ∝ p^β · (u + 0.05)^γ (β ∈ {1, ¾, ½, ¼, 0}, γ ∈ {0, ½, 1, 2}), then
    q ← (1 − floor)·q + floor/K, the one whose predicted last learn step is earliest, subject to t_k(q) ≤
    max_slowdown · t_k(p) for every skill not yet learned (t predicted from the current u over the rest of the
    budget). The natural mixture always qualifies, so the method falls back to it when the model sees no safe gain.

    Parameters. `fit_every` (steps between fits), `max_slowdown` (1.25: no skill predicted ≥ 25% slower), `ema`,
    `floor`. Logged: the rates, and `fit/eta`, `fit/n0` (NaN before the first fit).

    When it helps. Many skills with a wide frequency range (`multitask_parity`): once frequent skills are learned,
    their share of the data goes to the skills still learning, and the constraint keeps the frequent skills from
    being starved before they are learned. Measured, with intervals: callbacks/README.md.

    When it hurts. It is only as good as the Resource model's fit: sudden emergence (a parity's loss sits at chance,
    then drops) is smoother in the model, so its predicted learn steps are rough, and before the first fit it samples
    the natural mixture. A fit every `fit_every` steps reads the statistics back to the host once (a GPU sync).
    """

    stackable = True

    def __init__(self, params, task):
        super().__init__(params, task)
        k = len(self.skills)
        self.gates = [None] * k
        for i, (op, parts) in getattr(task, "prerequisites", {}).items():
            self.gates[i] = (op, list(parts))
        self.loss_kind = task.loss
        self.natural = self.frequencies / self.frequencies.sum()
        self.ema_loss: torch.Tensor | None = None
        self.reference_sum: torch.Tensor | None = None  # ℓ_ref's running sum and count, per skill
        self.reference_count: torch.Tensor | None = None
        self.steps = 0
        self.max_steps = 0
        self.points: list[dict] = []  # each fit: {"step", "loss": EMA losses [K], "q": mixture used since the last}
        self.fitted: list[float] | None = None  # [log10 η, log10 N0]

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self.max_steps = trainer.max_steps

    def rates(self, stats):
        self.steps += 1
        loss = stats["mask_loss"].detach().double()
        if self.ema_loss is None:
            self.ema_loss = torch.full_like(loss, float("nan"))
        if self.reference_sum is None:
            self.reference_sum, self.reference_count = torch.zeros_like(loss), torch.zeros_like(loss)
        seen = torch.isfinite(loss)  # a skill absent from this batch has no loss (NaN)
        a = self.params.ema
        smoothed = torch.where(self.ema_loss.isnan(), loss, a * self.ema_loss + (1 - a) * loss)
        self.ema_loss = torch.where(seen, smoothed, self.ema_loss)
        early = seen & (self.reference_count < REFERENCE_BATCHES)
        self.reference_sum = self.reference_sum + torch.where(early, loss, torch.zeros_like(loss))
        self.reference_count = self.reference_count + early.to(loss.dtype)
        if self.steps % self.params.fit_every and self.steps != 1:  # step 1: the curves' first point
            return None
        ema = self.ema_loss.cpu().numpy()  # the one host read, every fit_every steps
        used = self.mixture.double().cpu().numpy()
        self.points.append({"step": self.steps, "loss": ema.tolist(), "q": (used / used.sum()).tolist()})
        if len(self.points) < 2 or np.isnan(ema).any():  # a curve needs two points; every skill must have been seen
            return None
        mixture = self._choose()
        return torch.tensor(mixture, dtype=torch.float64, device=loss.device)

    def reference_loss(self) -> torch.Tensor:
        """ℓ_ref per skill: the mean loss over the first REFERENCE_BATCHES batches that held it (NaN: never seen)."""
        return (self.reference_sum / self.reference_count).cpu()

    # ---- the model ---------------------------------------------------------------------------------------------
    def _measured(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from skilltrain.theory.fit import unlearned_fraction

        losses = np.array([p["loss"] for p in self.points])  # NaN: a skill not seen yet at that point (left out)
        u = unlearned_fraction(losses, self.reference_loss().numpy(), self.loss_kind)
        return np.array([p["step"] for p in self.points]), u, np.array([p["q"] for p in self.points])

    def _simulate(self, log_eta: np.ndarray, log_n0: np.ndarray, steps: np.ndarray, mixtures: np.ndarray) -> np.ndarray:
        """u at the fit points [P, n, K], from u = 1 at step 0, each segment under the mixture it used."""
        from skilltrain.theory import resource

        eta = torch.tensor(10.0**log_eta)
        n0 = torch.tensor(10.0**log_n0)
        state, out, last = None, [], 0
        for step, q in zip(steps, mixtures):
            n = max(1, round((step - last) / DT))  # Euler steps of (step − last) / n ≈ DT steps each
            u = resource.simulate(torch.tensor(q), eta * (step - last) / n, n0, n, loss=self.loss_kind, gates=self.gates,
                                  u0=state)
            state = u[-1]
            out.append(state)
            last = step
        return torch.stack(out, 1).numpy()

    def _fit(self, steps, u, mixtures) -> list[float]:
        from skilltrain.theory.fit import LOG_ETA, LOG_N0

        if self.fitted is None:  # the first fit: the whole range
            grid_e, grid_n = np.linspace(*LOG_ETA, 11), np.linspace(*LOG_N0, 11)
        else:  # then around the last fit, within the same range
            grid_e = np.clip(self.fitted[0] + np.linspace(-0.3, 0.3, 5), *LOG_ETA)
            grid_n = np.clip(self.fitted[1] + np.linspace(-0.6, 0.6, 5), *LOG_N0)
        e, n = np.meshgrid(grid_e, grid_n, indexing="ij")
        seen = np.isfinite(u)[None]  # cells where a skill was not seen yet are left out; a NaN prediction is not
        sse = np.where(seen, (self._simulate(e.ravel(), n.ravel(), steps, mixtures) - u[None]) ** 2, 0.0).sum(axis=(1, 2))
        best = int(np.nanargmin(sse))
        return [float(e.ravel()[best]), float(n.ravel()[best])]

    def _choose(self) -> np.ndarray:
        from skilltrain.theory import resource

        steps, u, mixtures = self._measured()
        self.fitted = self._fit(steps, u, mixtures)
        now = u[-1]
        p = self.natural.numpy()
        k = len(p)
        candidates = [p]
        for beta in BETAS:
            for gamma in GAMMAS:
                q = p**beta * (now + 0.05) ** gamma
                q = q / q.sum()
                candidates.append((1 - self.params.floor) * q + self.params.floor / k)
        horizon = max(DT, (self.max_steps or 2 * self.steps) - self.steps)
        eta = torch.tensor(10.0 ** self.fitted[0]) * DT
        n0 = torch.tensor(10.0 ** self.fitted[1])
        start = torch.tensor(np.clip(now, 1e-6, 1.0))
        predicted = resource.simulate(torch.tensor(np.array(candidates)), eta, n0, math.ceil(horizon / DT),
                                      loss=self.loss_kind, gates=self.gates, u0=start)  # [T, C, K]
        below = (predicted <= LEARNED_U).numpy()
        t = np.where(below.any(0), below.argmax(0), np.inf)  # [C, K] Euler steps until learned (inf: not within)
        learning = now > LEARNED_U
        allowed = np.all(~learning | (t <= self.params.max_slowdown * t[0]) | np.isinf(t[0]), axis=1)
        last = np.where(learning, t, 0).max(1)
        mean = np.where(learning, np.minimum(t, horizon), 0).sum(1)
        order = sorted(np.flatnonzero(allowed), key=lambda c: (last[c], mean[c]))
        return candidates[order[0]]

    def logged(self) -> dict[str, float | torch.Tensor]:
        fitted = self.fitted or [math.nan, math.nan]
        return {**super().logged(), "fit/eta": 10 ** fitted[0], "fit/n0": 10 ** fitted[1]}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "ema_loss": self.ema_loss, "steps": self.steps, "points": self.points,
                "fitted": self.fitted, "reference_sum": self.reference_sum, "reference_count": self.reference_count}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.ema_loss, self.steps = state_dict["ema_loss"], state_dict["steps"]
        self.points, self.fitted = state_dict["points"], state_dict["fitted"]
        if "reference_sum" in state_dict:
            self.reference_sum, self.reference_count = state_dict["reference_sum"], state_dict["reference_count"]
        elif self.points:  # a checkpoint from before ℓ_ref was smoothed: its step-1 losses, as then
            first = torch.tensor(self.points[0]["loss"], dtype=torch.float64)
            self.reference_sum, self.reference_count = first.nan_to_num(0.0), first.isfinite().double()
