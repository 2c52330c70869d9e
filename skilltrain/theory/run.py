"""One theory run: simulate a toy model and write a run directory in the format of `fit`'s (skilltrain.rundir):
the resolved config; metrics with the columns step, train/loss, skill/<name>/loss and skill/<name>/level (the skill
level s_i); a summary as fit's (learned_step per skill: the first step with s_i ≥ metric.threshold, status, …); and
the per-skill loss and skill level against step, learn steps marked. So `compare` runs theory arms over seeds with
the same statistics and plots as networks.
"""

from __future__ import annotations

import bisect
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from skilltrain.config import recipe_stem, to_yaml
from skilltrain.errors import UserError
from skilltrain.files import save_figure
from skilltrain.rundir import RunDir
from skilltrain.theory import domino, geometry, resource


@dataclass
class Curves:
    """A toy model's trajectory: every logged step's per-skill loss and skill level, and the exact learn steps."""

    steps: list[int]
    losses: torch.Tensor  # [T, K]
    levels: torch.Tensor  # [T, K]
    learned_step: list[int | None]
    last_step: int


def theory_command(args: list[str]) -> int:
    """`skilltrain theory <args>`: load the theory config, run it, print its table (or a scaling sweep's exponents);
    the last line it prints is `run_dir: <path>`. The command line and a comparison's runs both run this."""
    from skilltrain.report import print_table
    from skilltrain.theory.config import load_theory_config

    run_dir, summary = run_theory(load_theory_config(args))
    if "scaling" in summary:
        from skilltrain.theory.scaling import print_exponents

        print_exponents(summary["scaling"])
    else:
        print_table(summary)
    print(f"run_dir: {run_dir}", flush=True)
    return 0


def simulate(cfg: DictConfig) -> Curves:
    """Run the configured toy model (one replica: seed `cfg.seed`)."""
    names, p = cfg_skills(cfg)
    every = cfg.log_every or max(1, cfg.steps // 500)
    thr = cfg.metric.threshold
    patience = cfg.stop.patience if cfg.stop.when_all_learned else None
    if cfg.model == "geometry":
        from skilltrain.optim import build_optimizer

        g = OmegaConf.to_object(cfg.geometry)
        gen = torch.Generator().manual_seed(cfg.seed)
        vectors = geometry.task_vectors(g.task_vectors, len(names), [g.n_params], gen)
        optim = OmegaConf.to_object(cfg.optim)
        try:
            traj = geometry.simulate(vectors, torch.tensor(p), g, lambda params: build_optimizer(params, optim), cfg.steps,
                                     gen, threshold=thr, every=every, stop_after_learned=patience)
        except (TypeError, ValueError, RuntimeError) as e:  # a registered optimizer that refuses these parameters
            raise UserError(f"optim.name: optimizer {cfg.optim.name} failed on the Geometry model ({e})") from None
        learned = [int(s) if s >= 0 else None for s in traj.learned_step[0].tolist()]
        return Curves(traj.steps, traj.losses[:, 0], traj.levels[:, 0], learned, traj.stopped_at)
    if cfg.model == "resource":
        r = cfg.resource
        gates = resource.gates_from(OmegaConf.to_container(r.prerequisites), names)
        overlap = torch.tensor(OmegaConf.to_container(r.overlap), dtype=torch.float64) if r.overlap is not None else None
        u = resource.simulate(torch.tensor(p, dtype=torch.float64), r.eta, r.n0, cfg.steps, loss=r.loss,
                              overlap=overlap, gates=gates, a=r.gate_exponent)  # every step: exact learn steps
        return _from_every_step(1 - u, resource.skill_loss(u, r.loss), every, thr, patience)
    steps = list(range(cfg.steps + 1))
    u = domino.unlearned(p, OmegaConf.to_object(cfg.domino), steps)
    return _from_every_step(1 - u, u**2, every, thr, patience)


def _from_every_step(levels: torch.Tensor, losses: torch.Tensor, every: int, thr: float, patience: int | None) -> Curves:
    reached = levels >= thr
    learned = [int(reached[:, k].nonzero()[0]) if reached[:, k].any() else None for k in range(levels.shape[1])]
    last = levels.shape[0] - 1
    if patience is not None and all(s is not None for s in learned):
        last = min(last, max(learned) + patience)
    keep = [t for t in range(last + 1) if t % every == 0 or t == last]
    return Curves(keep, losses[keep], levels[keep], learned, last)


def cfg_skills(cfg: DictConfig) -> tuple[list[str], list[float]]:
    obj = OmegaConf.to_object(cfg)
    return obj.skill_names(), obj.frequencies()


def choose_run_dir(cfg: DictConfig) -> Path:
    """The run's directory, checked (RunDir.check_target) but not made: out_dir, or `runs/theory/<recipe>/<stamp>`
    (made unique when it is created)."""
    if cfg.out_dir:
        RunDir.check_target(cfg.out_dir, cfg.overwrite, resume_hint=False)
        return Path(cfg.out_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / "theory" / (recipe_stem(cfg.recipe) if cfg.recipe else cfg.model) / stamp


def run_theory(cfg: DictConfig) -> tuple[Path, dict]:
    """Simulate and write the run directory; (run_dir, summary)."""
    target = choose_run_dir(cfg)
    if cfg.scaling.dims:  # a sweep: scaling.json and scaling.png (skilltrain.theory.scaling)
        from skilltrain.theory.scaling import run_scaling

        run = RunDir.create(cfg.out_dir, target, cfg.overwrite)
        try:
            run.write_config(to_yaml(cfg))
            result = {"scaling": run_scaling(cfg, run.path)}
            run.forget_replaced()  # the run this one replaced (overwrite=true)
        finally:
            run.release()
        return run.path, result
    start = time.perf_counter()
    curves = simulate(cfg)
    seconds = time.perf_counter() - start
    run = RunDir.create(cfg.out_dir, target, cfg.overwrite)  # only now: a simulation that fails leaves nothing
    try:
        run.forget_replaced()  # the run this one replaced (overwrite=true)
        run.write_config(to_yaml(cfg))
        names, p = cfg_skills(cfg)
        write_metrics(run, names, p, curves)
        summary = build_summary(cfg, names, p, curves, seconds, run.run_id)
        run.write_summary(summary)
        optimizer = f"{cfg.optim.name}, lr {cfg.optim.lr:g}" if cfg.model == "geometry" else None
        plot_curves(run.curves_path, names, curves, summary, optimizer)
    finally:
        run.release()  # another command may write the run now
    return run.path, summary


def write_metrics(run: RunDir, names: list[str], p: list[float], curves: Curves) -> None:
    """The curves as the run's metrics (one row per logged step), written at once."""
    weights = torch.tensor(p, dtype=torch.float64)
    total = (curves.losses.double() * weights / weights.sum()).sum(1)
    columns = ["step", "train/loss"] + [f"skill/{n}/{q}" for n in names for q in ("loss", "level")]
    rows = []
    for t, step in enumerate(curves.steps):
        row = [step, f"{float(total[t]):.8g}"]
        for k in range(len(names)):
            row += [f"{float(curves.losses[t, k]):.8g}", f"{float(curves.levels[t, k]):.8g}"]
        rows.append(row)
    run.write_metrics(columns, rows)


def build_summary(cfg: DictConfig, names: list[str], p: list[float], curves: Curves, seconds: float,
                  run_id: str | None = None) -> dict:
    from skilltrain.analysis.diagnostics import domino_diagnostics

    learned = dict(zip(names, curves.learned_step))
    skills = {n: {"frequency": p[k], "learned_step": learned[n], "final_loss": float(curves.losses[-1, k]),
                  "final_metric": float(curves.levels[-1, k]), "learned_samples": None, "learned_window": None}
              for k, n in enumerate(names)}
    done = [s for s in learned.values() if s is not None]
    summary = {
        "recipe": cfg.recipe or f"theory:{cfg.model}",
        "seed": cfg.seed,
        "interventions": [],
        "steps": curves.last_step,
        "max_steps": cfg.steps,
        "wall_seconds": round(seconds, 3),
        "samples_per_second": None,
        "skills": skills,
        "all_learned_step": max(done) if len(done) == len(names) else None,
        "learn_order": sorted((n for n in names if learned[n] is not None), key=lambda n: (learned[n], names.index(n))),
        "status": "completed",
        "metric": {"name": "level", "threshold": cfg.metric.threshold, "split": "train", "min_samples": 1},
        "run_id": run_id or uuid.uuid4().hex[:12],
        "theory": {"model": cfg.model},
    }
    values = [curves.levels[:, k].tolist() for k in range(len(names))]
    summary["domino"] = domino_diagnostics(summary, curves.steps, values)
    return summary


def plot_curves(path: Path, names: list[str], curves: Curves, summary: dict, optimizer: str | None = None) -> None:
    """Per-skill loss and skill level against step, learn steps dotted; the title names the model (and, for the
    Geometry model, its `optimizer`). A curve that oscillates from step to step once learned (SignGD's updates keep a
    fixed size, so they jump across the minimum) is drawn faint, with its running mean over it, so that the
    oscillation does not read as a band of values."""
    from skilltrain.analysis.plots import figure, skill_colors

    fig, axes = figure(1, 2, (11, 4))
    colors = skill_colors(len(names))
    smoothed = 0
    for k, name in enumerate(names):
        color = colors[k]
        label = name if len(names) <= 12 else None
        start = len(curves.steps) if curves.learned_step[k] is None else bisect.bisect_left(curves.steps, curves.learned_step[k])
        for ax, values, log in ((axes[0][0], curves.losses[:, k].clamp(min=1e-12), True),
                                (axes[0][1], curves.levels[:, k], False)):
            window = _oscillation_window(values, start)
            if window:
                smoothed = max(smoothed, window)
                ax.plot(curves.steps, values.tolist(), color=color, lw=0.5, alpha=0.3)
                ax.plot(curves.steps, _running_mean(values, window, log).tolist(), color=color, lw=1.5, label=label)
            else:
                ax.plot(curves.steps, values.tolist(), color=color, lw=1.5, label=label)
        if curves.learned_step[k] is not None:
            for ax in axes[0]:
                ax.axvline(curves.learned_step[k], color=color, ls=":", lw=1)
    axes[0][0].set_yscale("log")
    axes[0][0].set_ylabel("loss")
    axes[0][1].set_ylabel("skill level s")
    axes[0][1].axhline(summary["metric"]["threshold"], color="grey", lw=0.8)
    for ax in axes[0]:
        ax.set_xlabel("step")
    axes[0][1].legend(fontsize=8)
    title = f"{summary['recipe']} · {summary['theory']['model']} model" + (f" · {optimizer}" if optimizer else "")
    note = f"dotted: learned (s ≥ {summary['metric']['threshold']})"
    if smoothed:
        note += (f"; a curve that oscillates once learned: faint, every step; line, its running mean over "
                 f"{smoothed} logged points (geometric, for the loss)")
    fig.suptitle(f"{title} · seed {summary['seed']}\n{note}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def _oscillation_window(values: torch.Tensor, start: int) -> int:
    """The running-mean window (logged points) for a curve that oscillates from `start` on: its step-to-step
    changes flip sign at more than 40% of the points (a smooth or stalled curve flips rarely); 0 when it does not."""
    tail = values[start:].double()
    if tail.numel() < 20:
        return 0
    change = torch.diff(torch.log(tail.clamp(min=1e-300)) if bool((tail > 0).all()) else tail)
    change = change[change != 0]
    if change.numel() < 10 or float((torch.sign(change[1:]) != torch.sign(change[:-1])).double().mean()) <= 0.4:
        return 0
    return 2 * max(3, len(values) // 100)  # even


def _running_mean(values: torch.Tensor, window: int, log: bool) -> torch.Tensor:
    """The mean of each point's centred window of `window` points (even: an oscillation of period 2 averages out; of
    the logarithm when `log`, a geometric mean), shorter at the ends."""
    x = torch.log(values.double()) if log else values.double()
    half = window // 2
    out = torch.stack([x[max(0, t - half):t + half].mean() for t in range(len(x))])
    return torch.exp(out) if log else out
