"""Learn steps of the README's results recipes and of the quick benchmark, for checking that a refactor changes
no number: run it before and after, then compare the two JSON files.

    python bench/learn_steps.py out=before.json [steps=2500] [quick=true]
    python bench/learn_steps.py compare before.json after.json

Each recipe of the README's results table trains seed 1 (with `trainer.max_steps` capped at `steps`, default
2500, and early stopping once every skill is learned: the learn steps of the capped run are those of the full
run up to the cap; the recipes in UNCAPPED run to their own budget, since their README row's skills are learned
later: multitask_parity's late learn steps moved between versions unseen under the cap; `steps` does not apply to
them, and a file written before they were uncapped differs in their `steps`); `quick=true` adds
`benchmark suite=quick seeds=1`. The output maps each run to its per-skill learn steps. Runs are deterministic on a
CPU, so two code versions that train alike agree exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

RECIPES = {  # README results rows: name -> overrides
    "compositional": [],
    "compositional_control": [],
    "domino_2task": [],
    "domino_2task_p005": ["recipe=domino_2task", "data.frequencies=[1.0,0.05]"],
    "modularity_regression": [],
    "modularity_regression_modular": ["recipe=modularity_regression", "interventions.modular_routing={}"],
    "grokking": [],
    "grokking_signgd": ["recipe=grokking", "optim.name=signgd"],
    "multitask_parity": [],
    "multitask_parity_transformer": [],
    "rhm_transformer": [],
    "compositional_sparse_parity": [],
    "dependency_chain": [],
}


UNCAPPED = {"multitask_parity"}  # its README row's rarest skill is learned at ~7,000 steps (seed 1: ~25 s)


def _steps(summary: dict) -> dict:
    return {"status": summary.get("status"), "steps": summary.get("steps"),
            "learned": {k: v.get("learned_step") for k, v in summary["skills"].items()}}


def run(out: Path, cap: int, quick: bool) -> None:
    result = {}
    work = Path(tempfile.mkdtemp(prefix="learn_steps-"))
    for name, overrides in RECIPES.items():
        recipe = [] if any(o.startswith("recipe=") for o in overrides) else [f"recipe={name}"]
        run_dir = work / name
        budget = [] if name in UNCAPPED else [f"trainer.max_steps={cap}"]
        cmd = [sys.executable, "-m", "skilltrain", "fit", *recipe, *overrides, "seed=1", *budget,
               "stop.when_all_learned=true", "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled",
               f"out_dir={run_dir}"]
        print("+", " ".join(cmd[3:]), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        result[name] = _steps(json.loads((run_dir / "summary.json").read_text()))
        print(f"  {result[name]}", flush=True)
    if quick:
        bench_dir = work / "quick"
        cmd = [sys.executable, "-m", "skilltrain", "benchmark", "suite=quick", "seeds=1", "compare.workers=2",
               "logger.wandb.mode=disabled", f"out_dir={bench_dir}"]
        print("+", " ".join(cmd[3:]), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        for summary in sorted(bench_dir.rglob("summary.json")):
            result["quick/" + str(summary.parent.relative_to(bench_dir))] = _steps(json.loads(summary.read_text()))
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"{len(result)} runs -> {out}")


def compare(a: Path, b: Path) -> int:
    before, after = json.loads(a.read_text()), json.loads(b.read_text())
    keys = sorted(set(before) | set(after))
    differ = [k for k in keys if before.get(k) != after.get(k)]
    for k in differ:
        print(f"{k}: {before.get(k)} -> {after.get(k)}")
    print(f"{len(keys) - len(differ)} of {len(keys)} runs identical")
    return 1 if differ else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["compare"]:
        sys.exit(compare(Path(args[1]), Path(args[2])))
    opts = dict(a.split("=", 1) for a in args)
    run(Path(opts.get("out", "learn_steps.json")), int(opts.get("steps", 2500)), opts.get("quick", "true") == "true")
