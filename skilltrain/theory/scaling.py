"""Scaling laws from the Geometry model (arXiv 2501.12391): loss against parameters N and against steps S.

K tasks (1000) with Zipf frequencies p_i ∝ i^−α and random unit task vectors in R^N (K ≫ N: they overlap), CE
loss, minibatches of B task ids, SignGD or Adam from θ = 0. The sweep trains every (α, N, seed) at once: one θ of
shape [replicas, max N] (smaller N padded with coordinates no task uses, which elementwise optimizers never move),
and replicas that share α and seed share their minibatches (common random numbers: the N-dependence is measured
without the draw-to-draw noise between sizes).

Exponents, per α and optimizer, each with an interval over seeds (below):
- α_N: the least-squares slope of −log L(N) against log N, L the exact loss Σ p_i ℓ_i at the last step (the median
  over seeds at each N); the paper's own estimate, the two-point slope between the smallest and largest N, beside it;
- α_S: the slope of −log L(t) against log t over the step window (80 to 200 in the paper) at the size nearest
  `step_dim` (100 in the paper).
The Domino model's line is α_N = α_S = α − 1, the quanta model's α_N = α − 1 and α_S = (α − 1)/α; Chinchilla's
measured exponents are 0.34 (parameters) and 0.28 (data/steps).

The intervals: each seed's own exponent (the same fit on that seed's losses) and
`skilltrain.analysis.stats.median_interval` of those: distribution-free, for the median over seeds of the per-seed
exponent, with the level it achieves (`ci_level`; 10 seeds: [2nd, 9th] of them, 97.9%) and none below 85% (3
seeds: "too few seeds for an interval"), as `skilltrain.sweep.fit_power_law` does for its exponents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from skilltrain.config import require
from skilltrain.files import save_figure
from skilltrain.theory.geometry import skill_loss, task_vectors


@dataclass
class ScalingConfig:
    """`scaling.*` of a theory run: when `dims` is set, `theory` runs this sweep instead of one Geometry run."""

    dims: list[int] = field(default_factory=list)  # N; e.g. [40, 60, …, 220]
    alphas: list[float] = field(default_factory=lambda: [1.0, 1.4, 2.0])  # Zipf exponents
    seeds: int = 4
    optimizers: list[str] = field(default_factory=lambda: ["signgd", "adam"])  # registered optimizer names
    step_window: list[int] = field(default_factory=lambda: [80, 200])  # α_S: the slope over these steps
    step_dim: int = 100  # α_S: measured at the size nearest this

    def validate(self) -> None:
        require(all(n >= 1 for n in self.dims), "scaling.dims", f"each must be ≥ 1, got {list(self.dims)}")
        require(not self.dims or len(set(self.dims)) >= 2, "scaling.dims", "a parameter-scaling fit needs ≥ 2 sizes")
        require(len(set(self.dims)) == len(self.dims), "scaling.dims", f"sizes must be distinct, got {list(self.dims)}")
        require(self.alphas and all(a > 0 for a in self.alphas), "scaling.alphas", f"each must be > 0, got {list(self.alphas)}")
        require(self.seeds >= 1, "scaling.seeds", f"must be ≥ 1, got {self.seeds}")
        require(len(self.step_window) == 2 and 1 <= self.step_window[0] < self.step_window[1], "scaling.step_window",
                f"expected [first, last] steps with 1 ≤ first < last, got {list(self.step_window)}")


def sweep_losses(alphas: list[float], dims: list[int], seeds: int, n_tasks: int, batch_size: int, steps: int,
                 make_optimizer, dtype=torch.float32, progress=None, kind: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """(loss at the last step [A, D, S], loss at every step up to the window's end … returned whole: [T+1, A, D, S]).

    The exact expected CE loss Σ p_i ℓ_i of every replica at every step (cheap: z is computed anyway)."""
    a_n, d_n = len(alphas), len(dims)
    replicas = [(a, d, s) for a in range(a_n) for d in range(d_n) for s in range(seeds)]
    width = max(dims)
    vectors = torch.zeros(len(replicas), n_tasks, width, dtype=dtype)
    for r, (_, d, s) in enumerate(replicas):
        gen = torch.Generator().manual_seed(1000 * s + dims[d])  # the same task vectors for every α (and optimizer)
        vectors[r, :, : dims[d]] = task_vectors(kind, n_tasks, [dims[d]], gen, dtype)[0]
    p = torch.tensor([[i ** -alpha for i in range(1, n_tasks + 1)] for alpha in alphas], dtype=torch.float64)
    p = (p / p.sum(1, keepdim=True))
    cdf = p.cumsum(1).repeat_interleave(seeds, 0)  # one row per draw stream (α, seed)
    stream = torch.tensor([a * seeds + s for a, _, s in replicas])  # replicas sharing α and seed share draws
    p_rep = p[[a for a, _, _ in replicas]].to(dtype)
    theta = torch.zeros(len(replicas), width, dtype=dtype, requires_grad=True)
    optimizer = make_optimizer([theta])
    gen = torch.Generator().manual_seed(0)
    curve = np.empty((steps + 1, len(replicas)))
    with torch.no_grad():
        for step in range(steps + 1):
            z = torch.bmm(vectors, theta.unsqueeze(2)).squeeze(2)  # [R, K]
            curve[step] = (skill_loss(z, "ce") * p_rep).sum(1).double().numpy()
            if step == steps:
                break
            draws = torch.searchsorted(cdf, torch.rand(a_n * seeds, batch_size, generator=gen, dtype=torch.float64))
            counts = torch.zeros(a_n * seeds, n_tasks, dtype=dtype).scatter_add_(
                1, draws.clamp(max=n_tasks - 1), torch.ones(draws.shape, dtype=dtype))
            weight = counts[stream] / batch_size * -torch.sigmoid(-z)  # dℓ/dz = −σ(−z), per drawn task
            theta.grad = torch.bmm(weight.unsqueeze(1), vectors).squeeze(1)
            optimizer.step()
            if progress is not None and step % 1000 == 0:
                progress(step)
    shaped = curve.reshape(steps + 1, a_n, d_n, seeds)
    return shaped[-1], shaped


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """The least-squares slope of log y against log x, negated (a decay exponent)."""
    return float(-np.polyfit(np.log(x), np.log(y), 1)[0])


def interval(value: float, seed_values, confidence: float = 0.95) -> dict:
    """An exponent `value` (fitted to the medians over seeds) with the interval of its seeds' own exponents:
    `median_interval` of `seed_values` (an interval for their median; `ci95` keeps its name, `ci_level` is the level
    it achieves, None with no interval, `ci_note` says why)."""
    from skilltrain.analysis.stats import median_interval

    seed_values = [float(v) for v in seed_values]
    ci = median_interval(seed_values, confidence)
    return {"value": value, "ci95": ci["ci"], "ci_level": ci["level"],
            "ci_method": "the median of per-seed exponents: " + ci["method"], "ci_note": ci["note"],
            "seed_exponents": seed_values}


def exponents(final: np.ndarray, curves: np.ndarray, alphas: list[float], dims: list[int], window: list[int],
              step_dim: int) -> dict:
    """Per α: α_N (fit and two-point), α_S, each fitted to the medians over seeds with the interval of the
    per-seed exponents (`interval`), and the reference lines."""
    seeds = final.shape[-1]
    dims_arr = np.array(dims, dtype=float)
    d_s = int(np.argmin(np.abs(dims_arr - step_dim)))
    t = np.arange(window[0], window[1] + 1)
    log_span = math.log(dims_arr[-1]) - math.log(dims_arr[0])
    out = {}
    for a, alpha in enumerate(alphas):
        by_dim = final[a]  # [D, S]
        by_step = curves[window[0]: window[1] + 1, a, d_s]  # [T, S]
        med_dim, med_step = np.median(by_dim, axis=1), np.median(by_step, axis=1)

        def two_point(loss):
            return float(-(math.log(loss[-1]) - math.log(loss[0])) / log_span)

        out[str(alpha)] = {
            "alpha_N": interval(slope(dims_arr, med_dim), [slope(dims_arr, by_dim[:, j]) for j in range(seeds)]),
            "alpha_N_two_point": interval(two_point(med_dim), [two_point(by_dim[:, j]) for j in range(seeds)]),
            "alpha_S": {**interval(slope(t, med_step), [slope(t, by_step[:, j]) for j in range(seeds)]),
                        "dim": dims[d_s]},
            "domino": alpha - 1, "quanta_N": alpha - 1, "quanta_S": (alpha - 1) / alpha,
            "final_loss_median": {str(n): float(np.median(final[a, d])) for d, n in enumerate(dims)},
        }
    return out


def run_scaling(cfg, run_dir) -> dict:
    """The sweep of a theory config with `scaling.dims`: scaling.json and scaling.png in `run_dir`."""
    import sys
    import time

    from omegaconf import OmegaConf

    from skilltrain.optim import build_optimizer
    from skilltrain.report import write_json

    s = cfg.scaling
    dims, alphas = sorted(int(n) for n in s.dims), [float(a) for a in s.alphas]
    n_tasks, batch, steps = len(OmegaConf.to_object(cfg).skill_names()), cfg.geometry.batch_size or 1024, cfg.steps
    result = {"task_vectors": cfg.geometry.task_vectors, "alphas": alphas, "dims": dims, "seeds": s.seeds,
              "n_tasks": n_tasks, "batch_size": batch, "steps": steps,
              "lr": cfg.optim.lr, "step_window": list(s.step_window), "exponents": {}, "loss_curves": {}}
    curves_by_optimizer = {}
    for name in s.optimizers:
        optim = OmegaConf.to_object(OmegaConf.merge(cfg.optim, {"name": name}))
        start = time.perf_counter()

        def progress(step, name=name, start=start):
            print(f"scaling · {name} · step {step}/{steps} · {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

        final, curves = sweep_losses(alphas, dims, s.seeds, n_tasks, batch, steps,
                                     lambda params, optim=optim: build_optimizer(params, optim), progress=progress,
                                     kind=cfg.geometry.task_vectors)
        result["exponents"][name] = exponents(final, curves, alphas, dims, list(s.step_window), s.step_dim)
        curves_by_optimizer[name] = curves
        d_s = int(np.argmin(np.abs(np.array(dims) - s.step_dim)))
        result["loss_curves"][name] = {str(a): np.median(curves[:, i, d_s], axis=1)[_log_steps(steps)].tolist()
                                       for i, a in enumerate(alphas)}
    result["loss_curve_steps"] = _log_steps(steps).tolist()
    write_json(run_dir / "scaling.json", result)
    plot_scaling(run_dir / "scaling.png", result)
    return result


def _log_steps(steps: int) -> np.ndarray:
    return np.unique(np.geomspace(1, steps, 200).astype(int))


def plot_scaling(path, result: dict) -> None:
    from skilltrain.analysis.plots import colormap, figure

    optimizers, alphas, dims = list(result["exponents"]), result["alphas"], np.array(result["dims"])
    fig, axes = figure(2, len(optimizers) + 1, (4.5 * (len(optimizers) + 1), 8))
    colors = colormap("viridis")
    for j, name in enumerate(optimizers):
        ax_n, ax_s = axes[0][j], axes[1][j]
        for i, a in enumerate(alphas):
            e = result["exponents"][name][str(a)]
            color = colors(i / max(1, len(alphas) - 1))
            loss = np.array([e["final_loss_median"][str(n)] for n in dims])
            ax_n.loglog(dims, loss, "o", color=color, label=f"α={a}: α_N={e['alpha_N']['value']:.2f}")
            c = np.exp(np.mean(np.log(loss) + e["alpha_N"]["value"] * np.log(dims)))
            ax_n.loglog(dims, c * dims ** -e["alpha_N"]["value"], "--", color=color, lw=1)
            ax_s.loglog(result["loss_curve_steps"], result["loss_curves"][name][str(a)], color=color,
                        label=f"α={a}: α_S={e['alpha_S']['value']:.2f}")
        for lo in result["step_window"]:
            ax_s.axvline(lo, color="grey", ls=":", lw=1)
        ax_n.set(title=f"{name}: final loss vs N (median over seeds)", xlabel="N (parameters)", ylabel="loss")
        dim_s = result["exponents"][name][str(alphas[0])]["alpha_S"]["dim"]
        ax_s.set(title=f"{name}: loss vs step at N={dim_s}", xlabel="step", ylabel="loss")
        ax_n.legend(fontsize=7)
        ax_s.legend(fontsize=7)
    grid = np.linspace(min(alphas), max(alphas), 50)
    for row, (key, quanta, chinchilla, label) in enumerate((("alpha_N", grid - 1, 0.34, "α_N"),
                                                            ("alpha_S", (grid - 1) / grid, 0.28, "α_S"))):
        ax = axes[row][-1]
        for name in optimizers:
            values = [result["exponents"][name][str(a)][key] for a in alphas]
            err = np.array([[v["value"] - v["ci95"][0], v["ci95"][1] - v["value"]] if v["ci95"] else [0, 0] for v in values]).T
            ax.errorbar(alphas, [v["value"] for v in values], yerr=err, fmt="o-", capsize=3, label=f"{name} (Geometry model)")
        ax.plot(grid, grid - 1, "k--", lw=1, label="Domino model: α − 1")
        if key == "alpha_S":
            ax.plot(grid, quanta, "k:", lw=1, label="quanta model: (α − 1)/α")
        ax.axhline(chinchilla, color="red", lw=0.8, ls="-.", label=f"Chinchilla {label} = {chinchilla}")
        ax.set(xlabel="Zipf α", ylabel=label)
        ax.set_title(f"{label} against α\n({_interval_caption(result, key)})", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def _interval_caption(result: dict, key: str) -> str:
    """What the error bars of `key` (alpha_N or alpha_S) are: the method and the level(s) achieved."""
    values = [e[key] for by_alpha in result["exponents"].values() for e in by_alpha.values()]
    levels = sorted({v["ci_level"] for v in values if v.get("ci95")})
    if not levels:
        return "no bars: too few seeds for an interval"
    return ("bars: order-statistic interval of the\nmedian per-seed exponent, "
            + ", ".join(f"{level:.1%}" for level in levels))


def print_exponents(result: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from skilltrain.report import console

    table = Table(title=escape(f"Geometry model scaling exponents ({result['seeds']} seeds, {result['steps']} steps; "
                               "[interval for the median of the per-seed exponents] and the level it achieves)"))
    for column in ("optimizer", "Zipf α", "α_N (fit)", "α_N (two-point)", "α_S", "Domino α − 1", "quanta α_S"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")

    def cell(v):
        if not v["ci95"]:
            return f"{v['value']:.3f}"
        return f"{v['value']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] {v['ci_level']:.1%}"

    notes, methods = {}, set()
    for name, by_alpha in result["exponents"].items():
        for alpha, e in by_alpha.items():
            table.add_row(name, alpha, cell(e["alpha_N"]), cell(e["alpha_N_two_point"]), cell(e["alpha_S"]),
                          f"{e['domino']:.2f}", f"{e['quanta_S']:.2f}")
            for key in ("alpha_N", "alpha_N_two_point", "alpha_S"):
                methods.add(e[key]["ci_method"])
                if e[key]["ci_note"]:
                    notes.setdefault(e[key]["ci_note"], None)
    console().print(table)
    for line in sorted(methods) + list(notes):
        console().print(escape(f"intervals: {line}"))
