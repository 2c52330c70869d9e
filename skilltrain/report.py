"""What a finished run leaves for people and programs: summary.json, curves.png and a console table.

summary.json (stable; the A/B tool and tests read it):
    {"recipe", "seed", "interventions", "steps", "max_steps", "wall_seconds", "samples_per_second",
     "skills": {name: {"frequency", "learned_step", "final_loss", "final_metric",   # in the task's declared order
                       "learned_samples", "learned_window",  # the samples and [first, last] step a decision rested on
                       "learned_resolution"}},  # steps between the measurements: the skill was learned in (t − r, t]
     "all_learned_step", "learn_order", "learn_order_groups",  # groups: skills learned at the same step, a tie
     "status": "completed" | "stopped" | "diverged",
     "metric": {"name", "threshold", "split", "min_samples"},
     "domino": {"onset", "completion", "sequentiality", "rare_vs_frequent", "unresolved"},
     "warnings": [str], ...}

A learn step is only as fine as the measurements it is read from: every step for `metric.split=train`, every
`trainer.val_check_interval` steps for `val` (`learned_resolution`). Skills learned at the same step are a tie
(`learn_order_groups`; `learn_order` lists them in declared order), and a skill learned at the first measurement
has an unmeasured window before it: `warnings` says so, and the Domino diagnostics leave it out.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from skilltrain import files
from skilltrain.analysis.diagnostics import domino_diagnostics
from skilltrain.config import val_every

if TYPE_CHECKING:  # (importing it imports Lightning: `list` and `compare` use this module without training)
    from skilltrain.callbacks.run.skill_progress import SkillProgress

STATUSES = ("completed", "stopped", "diverged")


def _num(x: float) -> float | None:
    """JSON has no NaN: a value that was never measured is null."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def build_summary(cfg, frequencies: list[float], progress: SkillProgress, steps: int, status: str, run_id: str,
                  message: str | None = None) -> dict:
    assert status in STATUSES
    metric, split = cfg.metric.name, cfg.metric.split
    final = progress.final(split)
    resolution = val_every(cfg) if split == "val" else 1  # the steps between two decisions on the learn metric
    skills = {}
    for skill, freq in zip(progress.skills, frequencies):
        skills[skill] = {
            "frequency": freq,
            "learned_step": progress.learned[skill],
            "final_loss": _num(final[skill]["loss"]),
            "final_metric": _num(final[skill][metric]),
            "learned_samples": progress.learned_samples[skill],
            "learned_window": progress.learned_window[skill],
            "learned_resolution": None if progress.learned[skill] is None else resolution,
        }
    learned = list(progress.learned.values())
    seconds = progress.seconds
    summary = {
        "recipe": cfg.recipe,
        "seed": cfg.seed,
        "interventions": sorted(cfg.interventions),
        "steps": steps,
        "max_steps": cfg.trainer.max_steps,
        "wall_seconds": round(seconds, 3),
        "samples_per_second": round(progress.samples / seconds, 1) if seconds > 0 else None,
        "skills": skills,
        "all_learned_step": max(learned) if learned and all(s is not None for s in learned) else None,
        "learn_order": progress.learn_order(),
        "learn_order_groups": learn_order_groups(progress.learned),
        "status": status,
        "metric": {"name": metric, "threshold": cfg.metric.threshold, "split": split,
                   "min_samples": cfg.metric.min_samples},
        "run_id": run_id,
        **({"message": message} if message else {}),
    }
    summary["domino"] = _domino(summary, progress)
    rows = progress.val_curve if split == "val" else progress.full_train_curve()
    summary["warnings"] = learn_warnings(summary, int(rows[0][0]) if rows else None)
    return summary


def learn_order_groups(learned: dict[str, int | None]) -> list[list[str]]:
    """The learned skills by learn step, those learned at the same step in one group (a tie), in declared order."""
    steps = sorted({t for t in learned.values() if t is not None})
    return [[s for s, t in learned.items() if t == step] for step in steps]


def learn_warnings(summary: dict, first_measurement: int | None) -> list[str]:
    """What a reader of the learn steps must know: skills learned at the first measurement (their learn step is only
    a bound), and ties."""
    out = []
    split = summary["metric"]["split"]
    early = [s for s, v in summary["skills"].items()
             if v["learned_step"] is not None and first_measurement is not None and v["learned_step"] <= first_measurement]
    if early:
        where = (f"the first evaluation (step {first_measurement})" if split == "val"
                 else f"the first measurement (step {first_measurement})")
        fix = ("; lower trainer.val_check_interval to resolve them" if split == "val" else
               " (before any update: no learning to time)" if first_measurement == 0 else "")
        out.append(f"{', '.join(early)} learned at {where}: the learn step is only a bound (≤ {first_measurement}), "
                   f"the order among them unknown{fix}")
    ties = [g for g in summary.get("learn_order_groups") or [] if len(g) > 1 and not set(g) <= set(early)]
    if ties:
        resolution = f" (learn steps are measured every {_resolution_text(summary)})" if split == "val" else ""
        out.append("learned at the same step, a tie, not an order: " + "; ".join(", ".join(g) for g in ties)
                   + resolution)
    return out


def _resolution_text(summary: dict) -> str:
    r = next((v.get("learned_resolution") for v in summary["skills"].values() if v.get("learned_resolution")), None)
    return f"{r} steps" if r else "evaluation"


def _domino(summary: dict, progress: SkillProgress) -> dict:
    """Domino diagnostics from the learn metric's curves (skilltrain.analysis.diagnostics)."""
    rows = progress.full_train_curve() if summary["metric"]["split"] == "train" else progress.val_curve
    k = len(progress.skills)
    offset = 1 + (k if summary["metric"]["name"] == "acc" else 0)
    steps = [int(r[0]) for r in rows]
    values = [[r[offset + i] for r in rows] for i in range(k)]
    return domino_diagnostics(summary, steps, values)


write_json = files.write_json  # strict JSON (null for NaN and ±Infinity), written atomically


def plot_curves(path: Path, progress: SkillProgress, title: str, metric: str, threshold: float, split: str) -> None:
    """Per-skill loss and accuracy against step (train solid, held-out dashed), learn steps marked."""
    from skilltrain.analysis.plots import figure, skill_colors

    k = len(progress.skills)
    train_curve = progress.full_train_curve()
    has_acc = any(not math.isnan(v) for row in train_curve for v in row[1 + k :])
    fig, axes = figure(1, 2 if has_acc else 1, (11 if has_acc else 6, 4))
    ax_loss, ax_acc = axes[0][0], (axes[0][1] if has_acc else None)
    colors = skill_colors(k)
    for i, skill in enumerate(progress.skills):
        color = colors[i]
        for rows, style, suffix in ((train_curve, "-", ""), (progress.val_curve, "--", " (held-out)")):
            if not rows:
                continue
            steps = [r[0] for r in rows]
            label = skill if k <= 12 and not suffix else None
            ax_loss.plot(steps, [r[1 + i] for r in rows], style, color=color, lw=1.5, label=label)
            if ax_acc is not None:
                ax_acc.plot(steps, [r[1 + k + i] for r in rows], style, color=color, lw=1.5, label=label)
        step = progress.learned[skill]
        if step is not None:
            for ax in (ax_loss, ax_acc):
                if ax is not None:
                    ax.axvline(step, color=color, ls=":", lw=1)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    if metric == "loss":
        ax_loss.axhline(threshold, color="grey", lw=0.8)
    if ax_acc is not None:
        ax_acc.set_xlabel("step")
        ax_acc.set_ylabel("accuracy")
        ax_acc.set_ylim(-0.02, 1.02)
        if metric == "acc":
            ax_acc.axhline(threshold, color="grey", lw=0.8)
    note = f"solid: train, dashed: held-out; dotted: learned ({metric} {'≥' if metric == 'acc' else '≤'} {threshold}, {split})"
    fig.suptitle(f"{title}\n{note}", fontsize=9)
    (ax_acc or ax_loss).legend(fontsize=8, loc="best")
    fig.tight_layout()
    from skilltrain.rundir import save_figure

    save_figure(fig, path, dpi=120)


def console() -> Console:
    """The terminal's width in a terminal; a wide fixed width in logs and pipes (rich would use 80 columns)."""
    import sys

    return Console() if sys.stdout.isatty() else Console(width=150)


def print_table(summary: dict, out: Console | None = None) -> None:
    out = out or console()
    metric = summary["metric"]
    groups = summary.get("learn_order_groups") or [[s] for s in summary["learn_order"]]
    order, rank = {}, 1
    for group in groups:  # a tie shares its rank: 1, 2=, 2=, 4
        order.update({s: f"{rank}=" if len(group) > 1 else str(rank) for s in group})
        rank += len(group)
    interventions = ", ".join(summary.get("interventions") or []) or "no intervention"
    title = f"{summary['recipe']} · seed {summary['seed']} · {interventions} · {summary['steps']} steps · {summary['status']}"
    table = Table(title=escape(title))
    table.add_column("skill")
    table.add_column("frequency", justify="right")
    table.add_column("learned step", justify="right")
    table.add_column("final loss", justify="right")
    table.add_column(f"final {metric['split']} {metric['name']}", justify="right")
    table.add_column("order", justify="right")
    for skill, s in summary["skills"].items():
        table.add_row(
            escape(skill),  # a skill name is text, never rich markup
            f"{s['frequency']:.3g}",
            "—" if s["learned_step"] is None else str(s["learned_step"]),
            "—" if s["final_loss"] is None else f"{s['final_loss']:.3g}",
            "—" if s["final_metric"] is None else f"{s['final_metric']:.3f}",
            order.get(skill, "—"),
        )
    out.print(table)
    thin = [f"{name} ({s['learned_samples']})" for name, s in summary["skills"].items() if metric["split"] == "val"
            and s.get("learned_samples") is not None and s["learned_samples"] < metric.get("min_samples", 0)]
    if thin:
        out.print(f"note: thin evidence: the held-out set holds fewer than metric.min_samples={metric['min_samples']} "
                  f"samples of {escape(', '.join(thin))}; their learn steps rest on that many")
    for warning in summary.get("warnings") or []:
        out.print(f"note: {escape(warning)}", style="yellow")
    done = summary["all_learned_step"]
    sps = summary["samples_per_second"]
    out.print(
        f"all skills learned at step {done}" if done is not None else "not every skill was learned",
        f"· {summary['wall_seconds']:.1f} s" + (f", {sps:,.0f} samples/s" if sps else ""),
    )
