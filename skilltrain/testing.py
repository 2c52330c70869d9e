"""A test kit for plugin authors: the checks every built-in intervention passes, run on your own intervention, model,
task or optimizer.

From pytest (a failed check raises `CheckFailed`, an AssertionError whose message has one line per failed check):

    import skilltrain.testing

    def test_my_intervention():
        skilltrain.testing.check_intervention("loss_power", settings={"power": 2}, plugins=["my_plugin.py"])

From the command line (every entry the plugins register; one line per failed check, exit code 1):

    python -m skilltrain check plugins=[my_plugin.py]              # ddp=false skips the two-process check

The checks, in order (`checks=` picks some; a check after a failed `config` or `trains` is skipped):

- `config`: its settings compose into a valid config (and, for an intervention, build it);
- `card`: an intervention's class docstring is its method card, with every paragraph of `CARD_SECTIONS`;
- `trains`: a short run completes with finite per-skill losses, and an intervention logs `intervention/<name>/…`;
- `resumes`: a run stopped at step 30 and resumed to step 60 equals one that did not stop, bit for bit (weights,
  optimizer, intervention state, curves, metrics.csv);
- `ddp`: two DDP processes (gloo on CPU) hold the same intervention state at every step and the same final weights.

skilltrain's own tests run every registered intervention mode through these same functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from skilltrain.errors import UserError
from skilltrain.rundir import METRICS, SUMMARY, RunDir

CHECKS = ("config", "card", "trains", "resumes", "ddp")
KINDS = ("intervention", "model", "task", "optimizer")

# A short run on domino_2task (two skills, one rare) that exercises the minibatch stream, evaluations, loss masks and
# periodic checkpoints: the interventions' and optimizers' checks train on it.
SHORT_RUN = ("recipe=domino_2task", "data.n_samples=2000", "data.batch_size=256", "data.frequencies=[1.0,0.3]",
             "trainer.log_every_n_steps=5", "trainer.val_check_interval=10", "checkpoint.every_n_steps=20", "seed=2")
SMALL_COMPOSITIONAL = ("recipe=compositional", "data.n_samples=2000", "data.batch_size=256", "model.dtype=float32")
# What every check's run sets, whatever its recipe (a model's or task's check trains on a recipe of its own).
COMMON = ("trainer.log_every_n_steps=5", "trainer.val_check_interval=10", "checkpoint.every_n_steps=20", "seed=2",
          "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled", "analysis.plots=none")
STEPS, RESUME_AT, DDP_STEPS = 60, 30, 20


@dataclasses.dataclass
class Result:
    """One check of one entry: `problem` is None when it passed, `skipped` says why it did not run."""

    subject: str  # "intervention loss_power"
    check: str
    problem: str | None = None
    skipped: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.problem is not None

    def line(self) -> str:
        """`intervention loss_power · resumes: why` (a failed check), as the report prints it."""
        return f"{self.subject} · {self.check}: {self.problem or self.skipped or 'ok'}"


class CheckFailed(AssertionError):
    """Raised by `check_*` when a check fails: its message has one line per failed check; `results` holds them all."""

    def __init__(self, results: list[Result]):
        self.results = results
        super().__init__("\n".join(r.line() for r in results if r.failed))


@dataclasses.dataclass
class Subject:
    """What is checked: an entry of a registry, and the overrides that make a run use it."""

    kind: str
    name: str
    overrides: tuple[str, ...]
    mode: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}" + (f" (mode={self.mode})" if self.mode else "")


# ---- the public entry points ------------------------------------------------------------------------------------


def check_intervention(name: str, settings: Mapping | None = None, *, plugins: Sequence[str] = (),
                       overrides: Sequence[str] = (), recipe: str | None = None, checks: Iterable[str] | None = None,
                       ddp: bool = True, out_dir: str | Path | None = None, strict: bool = True,
                       progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Run the kit's checks on the intervention `name`, with `settings` (its `interventions.<name>.*` keys, such as
    `{"mode": "online", "lr": 0.1}`) on a short domino_2task run (another `recipe`, and any other config
    `overrides`, may be given). `plugins` are imported like `plugins=[...]` (every process the checks start imports
    them again). With `strict` (the default) a failed check raises `CheckFailed`; the results are returned either way.
    `out_dir` keeps the runs (a temporary folder otherwise); `progress` is called with each result as it comes."""
    subject = _subject("intervention", name, settings, plugins, overrides, recipe)
    return _run(subject, checks, ddp, out_dir, strict, progress)


def check_model(name: str, settings: Mapping | None = None, *, plugins: Sequence[str] = (),
                overrides: Sequence[str] = (), recipe: str | None = None, checks: Iterable[str] | None = None,
                ddp: bool = True, out_dir: str | Path | None = None, strict: bool = True,
                progress: Callable[[Result], None] | None = None) -> list[Result]:
    """`check_intervention`'s checks (but the card) on the model `name`, with `settings` (its `model.*` keys), trained
    on `recipe` (default: compositional, vector inputs)."""
    subject = _subject("model", name, settings, plugins, overrides, recipe)
    return _run(subject, checks, ddp, out_dir, strict, progress)


def check_task(name: str, settings: Mapping | None = None, *, plugins: Sequence[str] = (),
               overrides: Sequence[str] = (), recipe: str | None = None, checks: Iterable[str] | None = None,
               ddp: bool = True, out_dir: str | Path | None = None, strict: bool = True,
               progress: Callable[[Result], None] | None = None) -> list[Result]:
    """`check_intervention`'s checks (but the card) on the task `name`, with `settings` (its `data.*` keys), learned by
    the built-in MLP (another model: `overrides=["model.name=…"]`, or a `recipe` of your own)."""
    subject = _subject("task", name, settings, plugins, overrides, recipe)
    return _run(subject, checks, ddp, out_dir, strict, progress)


def check_optimizer(name: str, settings: Mapping | None = None, *, plugins: Sequence[str] = (),
                    overrides: Sequence[str] = (), recipe: str | None = None, checks: Iterable[str] | None = None,
                    ddp: bool = True, out_dir: str | Path | None = None, strict: bool = True,
                    progress: Callable[[Result], None] | None = None) -> list[Result]:
    """`check_intervention`'s checks (but the card) on the optimizer `name`, with `settings` (its `optim.*` keys)."""
    subject = _subject("optimizer", name, settings, plugins, overrides, recipe)
    return _run(subject, checks, ddp, out_dir, strict, progress)


CHECK_OF_KIND = {"intervention": check_intervention, "model": check_model, "task": check_task,
                 "optimizer": check_optimizer}


def plugin_entries(plugins: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """(kind, name, mode) of every entry the plugins register (importing them): each mode a plugin adds to an
    intervention name is an entry of its own."""
    from skilltrain.plugins import load_plugins, resolve
    from skilltrain.registry import INTERVENTIONS, MODELS, OPTIMIZERS, TASKS

    wanted = set(load_plugins(list(plugins)))

    def ours(source: str) -> bool:
        return source.startswith("plugin ") and resolve(source[len("plugin "):]) in wanted

    found = []
    for kind, registry in (("intervention", INTERVENTIONS), ("model", MODELS), ("task", TASKS), ("optimizer", OPTIMIZERS)):
        for entry in registry.entries():
            if entry.modes:
                found += [(kind, entry.name, mode) for mode, source in entry.mode_sources.items() if ours(source)]
            elif ours(entry.source):
                found.append((kind, entry.name, None))
    return found


def check_plugins(plugins: Sequence[str], *, overrides: Sequence[str] = (), checks: Iterable[str] | None = None,
                  ddp: bool = True, out_dir: str | Path | None = None,
                  progress: Callable[[Result], None] | None = None,
                  starting: Callable[[Subject], None] | None = None) -> list[Result]:
    """Every check on every entry the plugins register (never raising: the results say what failed). `overrides`
    apply to every run, but `interventions.<name>.…` ones only to that intervention's."""
    entries = plugin_entries(plugins)
    if not entries:
        raise UserError(f"check: plugins={list(plugins)} register no intervention, model, task or optimizer")
    results = []
    for kind, name, mode in entries:
        own = [o for o in overrides if not o.startswith("interventions.")
               or o.split("=", 1)[0].split(".")[1] == name]
        subject = _subject(kind, name, {"mode": mode} if mode else None, plugins, own, None)
        if starting is not None:
            starting(subject)
        results += _run(subject, checks, ddp, None if out_dir is None else Path(out_dir) / f"{kind}-{name}-{mode or ''}",
                        False, progress)
    return results


def check_options(args: list[str]) -> dict:
    """`check`'s arguments, checked: {"plugins", "ddp", "checks", "out_dir", "overrides"} (the other `key=value`s,
    passed to every fit)."""
    from skilltrain.config import parse_overrides, require

    cli = parse_overrides(args)
    plugins = cli.get("plugins")
    plugins = [plugins] if isinstance(plugins, str) else plugins
    require(plugins is not None and len(plugins) > 0, "plugins",
            "is required: the plugins whose entries to check (check plugins=[path/to/my_plugin.py])")
    ddp = cli.get("ddp", True)
    require(isinstance(ddp, bool), "ddp", f"expected true or false, got '{ddp}'")
    checks = cli.get("checks")
    checks = [checks] if isinstance(checks, str) else checks
    checks = [str(c) for c in checks] if checks is not None else None
    out_dir = cli.get("out_dir")
    passed = [a for a in args if a.split("=", 1)[0] not in ("plugins", "ddp", "checks", "out_dir")]
    left = [c for c in _wanted(checks) if ddp or c != "ddp"]
    require(left, "checks", f"leaves no check to run ({'ddp=false takes away ddp; ' if checks else ''}checks: "
                            f"{', '.join(CHECKS)})")
    require(out_dir is None or not Path(str(out_dir)).exists() or not any(Path(str(out_dir)).iterdir()), "out_dir",
            f"{out_dir} is not empty: the checks write their runs there (give a new or empty folder)")
    return {"plugins": [str(p) for p in plugins], "ddp": ddp, "checks": checks, "out_dir": out_dir,
            "overrides": passed}


def check_command(args: list[str]) -> int:
    """`python -m skilltrain check plugins=[my.py] [ddp=false] [checks=[card,trains]] [key=value …]`: progress per
    check on stdout; each failed check one `error:` line on stderr; exit code 0 (all passed) or 1."""
    options = check_options(args)
    plugins, ddp, checks = options["plugins"], options["ddp"], options["checks"]
    passed, out_dir = options["overrides"], options["out_dir"]

    def starting(subject: Subject) -> None:
        print(subject.label, flush=True)

    def progress(result: Result) -> None:
        state = "FAILED: " + result.problem if result.failed else ("skipped: " + result.skipped if result.skipped else "ok")
        print(f"  {result.check:<8} {state}" + (f" ({result.seconds:.1f} s)" if result.seconds >= 0.05 else ""), flush=True)

    results = check_plugins(plugins, overrides=passed, checks=checks, ddp=ddp, out_dir=out_dir, progress=progress,
                            starting=starting)
    failed = [r for r in results if r.failed]
    ran = [r for r in results if not r.skipped]
    for result in failed:
        print(f"error: {result.line()}", file=sys.stderr)
    print(f"{len(ran) - len(failed)} of {len(ran)} checks passed" + ("" if ddp else " (ddp=false: DDP not checked)"),
          flush=True)
    return 1 if failed else 0


# ---- running the checks -------------------------------------------------------------------------------------------


def _subject(kind: str, name: str, settings: Mapping | None, plugins: Sequence[str], overrides: Sequence[str],
             recipe: str | None) -> Subject:
    if kind not in KINDS:
        raise UserError(f"check: unknown kind '{kind}' (one of {', '.join(KINDS)})")
    if isinstance(overrides, str):
        raise UserError(f"check: overrides must be a list of key=value strings, got '{overrides}'")
    recipe = recipe or next((o.split("=", 1)[1] for o in overrides if o.startswith("recipe=")), None)
    overrides = [o for o in overrides if not o.startswith("recipe=")]
    section = {"intervention": f"interventions.{name}", "model": "model", "task": "data", "optimizer": "optim"}[kind]
    if recipe is not None:
        base = (f"recipe={recipe}",)
    else:  # interventions and optimizers: SHORT_RUN; models and tasks: compositional's MLP and data, smaller
        base = SHORT_RUN if kind in ("intervention", "optimizer") else SMALL_COMPOSITIONAL
    enable = {"intervention": f"interventions.{name}={{}}", "model": f"model.name={name}",
              "task": f"data.name={name}", "optimizer": f"optim.name={name}"}[kind]
    own = [_override(f"{section}.{key}", value) for key, value in (settings or {}).items()]
    plugin = [f"plugins=[{','.join(str(p) for p in plugins)}]"] if plugins else []
    mode = (settings or {}).get("mode") if kind == "intervention" else None
    if mode is None and kind == "intervention":
        mode = next((o.split("=", 1)[1] for o in overrides if o.startswith(f"interventions.{name}.mode=")), None)
    return Subject(kind, name, (*base, *COMMON, *plugin, enable, *own, *overrides), mode)


def _override(key: str, value) -> str:
    """`key=value` in the dotlist grammar (YAML flow values)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(list(value) if isinstance(value, tuple) else value)
    else:
        text = repr(value)
    return f"{key}={text}"


def _wanted(checks: Iterable[str] | None) -> list[str]:
    if checks is None:
        return list(CHECKS)
    checks = list(checks)
    for check in checks:
        if check not in CHECKS:
            from skilltrain.errors import unknown

            raise unknown("check", str(check), CHECKS, key="checks")
    return checks


def _run(subject: Subject, checks: Iterable[str] | None, ddp: bool, out_dir, strict: bool,
         progress: Callable[[Result], None] | None) -> list[Result]:
    wanted = _wanted(checks)
    if not ddp and "ddp" in wanted:
        wanted.remove("ddp")
    if subject.kind != "intervention" and "card" in wanted:
        wanted.remove("card")  # a method card is an intervention's
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        root = Path(out_dir) if out_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        blocked = None
        for check in wanted:
            start = time.perf_counter()
            if blocked is not None:
                result = Result(subject.label, check, skipped=f"{blocked} failed")
            else:
                try:
                    problem = _CHECK[check](subject, root / check)
                except UserError as e:
                    problem = str(e)
                except Exception as e:  # the entry's own code raised: its error and where, in one line
                    problem = _where(e)
                result = Result(subject.label, check, problem, seconds=time.perf_counter() - start)
                if problem is not None and check in ("config", "trains"):
                    blocked = check
            results.append(result)
            if progress is not None:
                progress(result)
    if strict and any(r.failed for r in results):
        raise CheckFailed(results)
    return results


def _load(*args: str):
    from skilltrain.config import load_config

    return load_config(list(args))


def _check_config(subject: Subject, out: Path) -> str | None:
    cfg = _load(*subject.overrides)
    if subject.kind == "intervention":
        _build_intervention(subject, cfg).check(cfg)  # its own refusals of the run's settings
    return None


def _build_intervention(subject: Subject, cfg):
    from omegaconf import OmegaConf

    from skilltrain.callbacks.intervention import build_intervention
    from skilltrain.config import to_container
    from skilltrain.module import SkillModule

    task = SkillModule(to_container(cfg)).task
    return build_intervention(subject.name, OmegaConf.to_object(cfg.interventions[subject.name]), task)


def card_problems_of(name: str, settings: Mapping | None = None, overrides: Sequence[str] = ()) -> list[str]:
    """What the method card of the class that `interventions.<name>` builds with these settings lacks, one line each
    (empty: complete; the `card` check's reasons)."""
    return _card_problems(_subject("intervention", name, settings, (), overrides, None))


def _card_problems(subject: Subject) -> list[str]:
    from skilltrain.callbacks.intervention import card_problems

    return card_problems(type(_build_intervention(subject, _load(*subject.overrides))))


def _check_card(subject: Subject, out: Path) -> str | None:
    from skilltrain.callbacks.intervention import CARD_SECTIONS

    problems = _card_problems(subject)
    if not problems:
        return None
    missing = [s for s in CARD_SECTIONS if any(f"'{s}'" in p for p in problems)]
    cls = problems[0].split(":", 1)[0]
    return (f"{cls}'s docstring (its method card) lacks the paragraph{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(s) for s in missing)} (each starts a paragraph)")


@contextlib.contextmanager
def _quiet():
    """A check's runs print nothing: their tables, progress lines and Lightning's info lines are the kit's own."""
    lightning = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in lightning]
    for lg in lightning:
        lg.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(lightning, levels):
            lg.setLevel(level)


def _fit(*args: str, out: Path) -> dict:
    from skilltrain.run import fit

    with _quiet():
        fit(_load(*args, f"out_dir={out}"), show=False)
    summary = RunDir(out).read_summary()
    if summary is None:
        raise RuntimeError(f"the run in {out} ended without a {SUMMARY}")
    return summary


def _check_trains(subject: Subject, out: Path) -> str | None:
    summary = _fit(*subject.overrides, f"trainer.max_steps={RESUME_AT}", out=out)
    if summary["status"] != "completed":
        return f"the run ended {summary['status']} at step {summary['steps']}: {summary.get('message') or ''}".rstrip(": ")
    bad = [s for s, v in summary["skills"].items() if v.get("final_loss") is None or not math.isfinite(v["final_loss"])]
    if bad:
        return f"skill {bad[0]}'s final loss is {summary['skills'][bad[0]].get('final_loss')} after {RESUME_AT} steps"
    if subject.kind == "intervention":
        header = RunDir(out).metrics_path.read_text().splitlines()[0].split(",")
        if summary.get("interventions") != [subject.name]:
            return f"the run used the interventions {summary.get('interventions')}, not [{subject.name}]"
        if not any(key.startswith(f"intervention/{subject.name}/") for key in header):
            return (f"no intervention/{subject.name}/… column in {METRICS}: logged() returned nothing at the log "
                    "steps (return a dict of the values to follow, such as its weights)")
    return None


def _check_resumes(subject: Subject, out: Path) -> str | None:
    from skilltrain.run import fit

    _fit(*subject.overrides, f"trainer.max_steps={STEPS}", out=out / "whole")
    _fit(*subject.overrides, f"trainer.max_steps={RESUME_AT}", out=out / "parts")
    with _quiet():
        fit(_load("ckpt_path=last", f"out_dir={out / 'parts'}", f"trainer.max_steps={STEPS}"), show=False)
    found = differences(out / "whole", out / "parts")
    if not found:
        return None
    hint = {"intervention": "keep every tensor or number it updates in state_dict() and restore it in load_state_dict()",
            "model": "keep its state in parameters or buffers, and draw randomness from torch's generator",
            "task": "draw every sample from the generator sample() is given",
            "optimizer": "keep its state in the optimizer's state (state_dict())"}[subject.kind]
    return f"resumed at step {RESUME_AT}, the run differs from one that did not stop ({'; '.join(found[:3])}): {hint}"


def differences(a: str | Path, b: str | Path) -> list[str]:
    """How two finished runs differ, one phrase each (empty: the same, bit for bit): final weights, optimizer state,
    intervention states, learn-step curves, metrics.csv and summary.json's results."""
    import torch

    a, b = Path(a), Path(b)
    ca = torch.load(RunDir(a).last_checkpoint, weights_only=True)
    cb = torch.load(RunDir(b).last_checkpoint, weights_only=True)
    found = []
    if ca["global_step"] != cb["global_step"]:
        found.append(f"it ended at step {cb['global_step']}, not {ca['global_step']}")
    wa, wb = ca["state_dict"], cb["state_dict"]
    if wa.keys() != wb.keys():
        found.append(f"the model's tensors differ: {sorted(set(wa) ^ set(wb))[:3]}")
    else:
        diff = [k for k in wa if not torch.equal(wa[k], wb[k])]
        if diff:
            found.append(f"model weights differ ({', '.join(diff[:2])}{', …' if len(diff) > 2 else ''})")
    oa, ob = ca["optimizer_states"][0]["state"], cb["optimizer_states"][0]["state"]
    if any(not all(torch.equal(x, y) for x, y in zip(sa.values(), sb.values())) for sa, sb in zip(oa.values(), ob.values())):
        found.append("the optimizer state differs")
    for key, state in ca["callbacks"].items():
        if key.startswith("intervention/"):
            other = cb["callbacks"].get(key, {})
            diff = [n for n, v in state.items() if n not in other or not _same(v, other[n])]
            diff += [n for n in other if n not in state]
            if diff:
                found.append(f"{key}'s state differs ({', '.join(map(str, diff[:3]))})")
    pa, pb = ca["callbacks"].get("SkillProgress", {}), cb["callbacks"].get("SkillProgress", {})
    if any(pa.get(k) != pb.get(k) for k in ("train_curve", "val_curve")):
        found.append("the per-skill curves differ")
    ma, mb = RunDir(a).metrics_path.read_text().splitlines(), RunDir(b).metrics_path.read_text().splitlines()
    if ma != mb:
        found.append(_first_difference(ma, mb))
    sa, sb = (RunDir(d).read_summary() or {} for d in (a, b))
    diff = [k for k in ("skills", "all_learned_step", "learn_order", "steps", "status") if sa.get(k) != sb.get(k)]
    if diff:
        found.append(f"{SUMMARY}'s {', '.join(diff)} differ")
    return found


def _same(x, y) -> bool:
    import torch

    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        return isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y))
    return x == y


def _first_difference(a: list[str], b: list[str]) -> str:
    """`metrics.csv differs from step 35 (train/loss, …)`."""
    header = a[0].split(",") if a else []
    if not a or not b or a[0] != b[0]:
        return f"{METRICS}'s columns differ"
    for row_a, row_b in zip(a[1:], b[1:]):
        if row_a != row_b:
            va, vb = row_a.split(","), row_b.split(",")
            columns = [h for h, x, y in zip(header, va, vb) if x != y]
            step = va[header.index("step")] if "step" in header else "?"
            return f"{METRICS} differs from step {step} ({', '.join(columns[:3])}{', …' if len(columns) > 3 else ''})"
    return f"{METRICS} has {len(b) - 1} rows, not {len(a) - 1}"


def _check_ddp(subject: Subject, out: Path) -> str | None:
    from skilltrain.plugins import THIS_PROCESS
    from skilltrain.registry import INTERVENTIONS, MODELS, OPTIMIZERS, TASKS

    _load(*subject.overrides)  # its plugins imported here too, to know where the entry comes from
    registry = {"intervention": INTERVENTIONS, "model": MODELS, "task": TASKS, "optimizer": OPTIMIZERS}[subject.kind]
    entry = registry.get(subject.name)
    source = entry.mode_sources.get(subject.mode, entry.source) if entry.modes else entry.source
    if source == THIS_PROCESS:
        return (f"{subject.label} is registered by this process, not by a plugin: the DDP processes cannot import it "
                "(name its file or module in plugins=[...])")
    out.mkdir(parents=True, exist_ok=True)
    args = (*subject.overrides, f"trainer.max_steps={DDP_STEPS}", "trainer.accelerator=cpu", "trainer.strategy=ddp",
            "trainer.devices=2", "data.batch_size=32", f"out_dir={out / 'run'}")
    env = {**os.environ, "MASTER_PORT": str(_free_port()), "WANDB_MODE": "disabled"}
    try:
        done = subprocess.run([sys.executable, "-m", "skilltrain.testing", str(out / "probe"), *args],
                              capture_output=True, text=True, timeout=900, env=env)
    except subprocess.TimeoutExpired:
        return "two DDP processes did not finish in 15 minutes"
    ranks = [out / "probe" / f"rank{r}.json" for r in (0, 1)]
    if done.returncode != 0 or not all(p.is_file() for p in ranks):
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        return f"the run on two DDP processes failed (exit {done.returncode}): {lines[-1] if lines else 'no output'}"
    rank0, rank1 = (json.loads(p.read_text()) for p in ranks)
    for row0, row1 in zip(rank0["rows"], rank1["rows"]):
        if row0["state"] != row1["state"]:
            keys = sorted(k for k in set(row0["state"]) | set(row1["state"]) if row0["state"].get(k) != row1["state"].get(k))
            return (f"rank 0 and rank 1 hold different {subject.name} state from step {row0['step']} "
                    f"({', '.join(keys[:3])}): compute it from the all-reduced `stats`, not from the rank's own batch")
    if len(rank0["rows"]) != len(rank1["rows"]):
        return f"rank 0 trained {len(rank0['rows'])} steps, rank 1 {len(rank1['rows'])}"
    diff = [k for k in rank0["weights"] if rank0["weights"][k] != rank1["weights"].get(k)]
    if diff:
        return f"rank 0 and rank 1 end with different weights ({', '.join(diff[:2])})"
    return None


_CHECK = {"config": _check_config, "card": _check_card, "trains": _check_trains, "resumes": _check_resumes,
          "ddp": _check_ddp}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LIBRARY = tuple(str(Path(p).resolve()) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                                                   sysconfig.get_paths()["platlib"]})
_PACKAGE = str(Path(__file__).resolve().parent)


def _where(e: BaseException) -> str:
    """`TypeError: message (at my_plugin.py:12)`: the error, and the last line of the user's code it went through."""
    text = " ".join(str(e).split())
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    import skilltrain.callbacks  # skilltrain's, though installed from a folder of its own

    ours = (*_LIBRARY, _PACKAGE, str(Path(skilltrain.callbacks.__file__).resolve().parent))
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if not f.filename.startswith("<") and not str(Path(f.filename).resolve()).startswith(ours)]
    return text + (f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else "")


# ---- the DDP probe: `python -m skilltrain.testing OUT key=value …`, started by the `ddp` check ------------------


def _probe(out: Path, args: list[str]) -> None:
    """Fit with a callback that records, on every rank, each intervention's state after every step and the final
    weights' digests (rank<r>.json in `out`); Lightning's DDP launcher starts this same module for the other rank."""
    import lightning as L
    import torch

    from skilltrain.files import write_json
    from skilltrain.run import fit

    def plain(value):
        if isinstance(value, torch.Tensor):
            return value.tolist()
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    class Probe(L.Callback):
        def __init__(self):
            self.rows = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            state = {f"{iv.name}.{k}": plain(v) for iv in pl_module.interventions for k, v in iv.state_dict().items()}
            self.rows.append({"step": trainer.global_step - 1, "state": state})

        def on_train_end(self, trainer, pl_module):
            weights = {k: hashlib.blake2b(v.detach().cpu().flatten().contiguous().view(torch.uint8).numpy()).hexdigest()
                       for k, v in pl_module.state_dict().items()}  # the exact bytes of every tensor
            write_json(out / f"rank{trainer.global_rank}.json", {"rows": self.rows, "weights": weights}, indent=None)

    out.mkdir(parents=True, exist_ok=True)
    with _quiet():
        fit(_load(*args), callbacks=[Probe()], show=False)


if __name__ == "__main__":
    from skilltrain.errors import command_exit

    raise SystemExit(command_exit("check", lambda: _probe(Path(sys.argv[1]), sys.argv[2:]) or 0))
