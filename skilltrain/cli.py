"""Command line: `python -m skilltrain <command> [key=value …]`.

Bad input ends in one `error: …` line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

from skilltrain.errors import UserError, command_exit, unknown

USAGE = """\
usage: python -m skilltrain <command> [key=value ...]

commands:
  fit            train one run and write its run directory
                   python -m skilltrain fit recipe=compositional seed=1 trainer.max_steps=500
  compare        A/B comparison of interventions over paired seeds, with statistics, tables and plots
                   python -m skilltrain compare recipe=domino_2task seeds=5 arms=[baseline,gradient_rescaling]
                     compare.workers=2   (rerun the same command to resume; compare.dry_run=true prints the runs)
  sweep          a grid of any config keys over seeds, with power laws fitted: loss vs parameters, samples or steps
                   python -m skilltrain sweep recipe=multitask_parity sweep.model.widths=[[16],[64],[256]] seeds=3
                 over data.n_samples it also measures the sample complexity P* (held-out error ≤ chance / 10)
                   python -m skilltrain sweep recipe=rhm_cnn sweep.data.n_samples=[128,256,512,1024] seeds=3
  benchmark      every intervention mode on every task of a suite, over seeds: a leaderboard
                   python -m skilltrain benchmark suite=quick compare.workers=2   (suites: conf/suites/)
  theory         simulate a toy model of arXiv 2501.12391 (geometry | resource | domino); a run directory like fit's
                   python -m skilltrain theory recipe=geometry_two_task seed=1   (recipes: recipes/theory/)
  fit-theory     fit the Resource model to a run's per-skill loss curves: theory_fit.json and theory_fit.png
                   python -m skilltrain fit-theory run_dir=runs/domino_2task/<stamp> [collapse=true]
  analyze        what a run's layers represent: CKA between runs, linear probes per skill, effective dimension
                 (against another run, or itself): representations.json, cka.png, probes.png
                   python -m skilltrain analyze run_dir=runs/a other=runs/b
                 reading a run runs none of its code: its plugins load only with plugins=[...] or trust_plugins=true
  discover       find the skills of a run's data without labels (a run trained with discover.record=true)
                 clusters per-sample gradients or loss curves; scores them against the true skills and a k-means
                 baseline on the inputs: discovered.json, discovered.png; export=DIR saves the clustered samples
                   python -m skilltrain discover run_dir=runs/multitask_parity/<stamp> method=gradients k=auto
  check          the checks every built-in intervention passes (it trains and logs, resumes bit for bit, two DDP
                 ranks agree, its method card), run on every entry of your plugins; ddp=false skips the slow one
                   python -m skilltrain check plugins=[examples/own_intervention.py]
  list           commands, recipes, tasks, models, optimizers and interventions, one line each (plugins=[...] too)
  print-config   the resolved config of a recipe with overrides, as YAML
                   python -m skilltrain print-config recipe=domino_2task data.frequencies=[1.0,0.05]
  export-data    freeze a task's training and held-out sets as a Hugging Face dataset (save_to_disk)
                   python -m skilltrain export-data recipe=multitask_parity data.n_samples=20000 path=data/mtp

Exit codes: 0 done; 1 a check failed (check); 2 bad input (one `error:` line); 3 training diverged; 130 / 143
stopped by Ctrl-C / SIGTERM, 4 stopped by trainer.max_time (checkpoint written: resume with
`fit ckpt_path=last out_dir=<run_dir>`).

Overrides are OmegaConf dotlists: key=value (or --key=value), lists as [a,b], mappings as {k: v}. Lightning Trainer
flags go under trainer.* (trainer.max_steps=2000 trainer.accelerator=gpu). `print-config` shows every key. Your
own tasks, models, optimizers and interventions: plugins=[my_module,path/to/file.py] (docs/extending.md).
"""


def cmd_fit(args: list[str]) -> int:
    from skilltrain.run import fit_command

    return fit_command(args)


def cmd_print_config(args: list[str]) -> int:
    from skilltrain.config import load_config, to_yaml

    print(to_yaml(load_config(args)), end="")
    return 0


def cmd_compare(args: list[str]) -> int:
    from skilltrain.comparison import compare

    return compare(args)


def cmd_benchmark(args: list[str]) -> int:
    from skilltrain.benchmark import benchmark

    return benchmark(args)


def cmd_sweep(args: list[str]) -> int:
    from skilltrain.sweep import sweep

    return sweep(args)


def export_data_options(args: list[str]):
    """(the run config, the directory) of `export-data`'s arguments, checked."""
    from skilltrain.config import load_config

    paths = [a.split("=", 1)[1] for a in args if a.startswith("path=")]
    if not paths or not paths[0]:
        raise UserError("export-data needs path=<directory> (where to save_to_disk the data set)")
    return load_config([a for a in args if not a.startswith("path=")]), paths[0]


def cmd_export_data(args: list[str]) -> int:
    from skilltrain.data.export import export_data

    cfg, path = export_data_options(args)
    counts = export_data(cfg, path)
    print(f"exported {', '.join(f'{n} {split} rows' for split, n in counts.items())} to {path}")
    return 0


def cmd_theory(args: list[str]) -> int:
    from skilltrain.theory.run import theory_command

    return theory_command(args)


def cmd_fit_theory(args: list[str]) -> int:
    from skilltrain.theory.fit import fit_theory_command

    return fit_theory_command(args)


def analyze_options(args: list[str]) -> dict:
    """`analyze`'s arguments, checked: run_dir, other, n_probe, seed, debiased, layers, checkpoint, plugins,
    trust_plugins (analyze_run's keywords)."""
    from omegaconf import OmegaConf

    from skilltrain.config import parse_overrides, require
    from skilltrain.rundir import reading_options

    cli = parse_overrides(args)
    extra = sorted(set(cli) - {"run_dir", "other", "n_probe", "debiased", "layers", "seed", "ckpt", "plugins",
                               "trust_plugins"})
    require(not extra, extra[0] if extra else "",
            "unknown key (analyze takes run_dir, other, n_probe, debiased, layers, seed, ckpt, plugins, trust_plugins)")
    plugins, trust_plugins = reading_options(cli)
    require(cli.get("run_dir"), "run_dir", "is required: the run directory to analyse (analyze run_dir=runs/…)")
    n_probe, debiased, seed = cli.get("n_probe", 1000), cli.get("debiased", False), cli.get("seed", 0)
    require(isinstance(n_probe, int) and not isinstance(n_probe, bool), "n_probe", f"expected an integer, got '{n_probe}'")
    require(isinstance(debiased, bool), "debiased", f"expected true or false, got '{debiased}'")
    require(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", f"expected an integer ≥ 0, got '{seed}'")
    layers = cli.get("layers")
    require(layers is None or OmegaConf.is_list(layers), "layers", f"expected a list such as [layers.0,layers.1], got '{layers}'")
    return {"run_dir": str(cli.run_dir), "other": cli.get("other"), "n_probe": n_probe, "seed": seed,
            "debiased": debiased, "layers": [str(x) for x in layers] if layers is not None else None,
            "checkpoint": str(cli.get("ckpt", "last")), "plugins": plugins, "trust_plugins": trust_plugins}


def cmd_analyze(args: list[str]) -> int:
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    from skilltrain.analysis.representations import analyze_run, labelled, report_file
    from skilltrain.report import console

    options = analyze_options(args)
    result = analyze_run(**options)
    probes, cka = result["probes"], result["cka"]
    table = Table(title=escape(f"held-out linear probe {probes['metric']} per layer (rows) and skill; CKA vs "
                               f"{'itself' if cka['other'] == cka['run'] else cka['other']} on the diagonal"))
    table.add_column("layer")
    for skill in probes["skills"]:
        table.add_column(escape(skill), justify="right")
    table.add_column("effective dim", justify="right")
    table.add_column("CKA (same layer)", justify="right")
    for i, layer in enumerate(probes["layers"]):
        row = [probes["held_out"][layer][s] for s in probes["skills"]]
        same = cka["matrix"][i][cka["other_layers"].index(layer)] if layer in cka["other_layers"] else None
        dim = result["effective_dim"]["overall"][layer]
        table.add_row(escape(labelled([layer], probes.get("layer_kinds"))[0]), *["—" if v is None else f"{v:.2f}" for v in row],
                      "—" if dim is None else f"{dim:.1f}", "—" if same is None else f"{same:.2f}")
    console().print(table)
    print(f"representations: {Path(options['run_dir']) / report_file(options['checkpoint'])}", flush=True)
    return 0


DISCOVER_KEYS = ("run_dir", "method", "k", "ckpt", "export", "seed", "params", "plugins", "trust_plugins")


def discover_options(args: list[str]) -> dict:
    """`discover`'s arguments, checked: run_dir, method, k and discover_run's keywords."""
    from omegaconf import OmegaConf

    from skilltrain.analysis.discovery import METHODS
    from skilltrain.config import parse_overrides, require
    from skilltrain.rundir import reading_options

    cli = parse_overrides(args)
    for key in cli:
        if key not in DISCOVER_KEYS:
            raise unknown("key", str(key), DISCOVER_KEYS, key="discover")
    plugins, trust_plugins = reading_options(cli)
    require(cli.get("run_dir"), "run_dir", "is required: a run trained with discover.record=true (discover run_dir=runs/…)")
    method, k, seed = str(cli.get("method", "gradients")), cli.get("k", "auto"), cli.get("seed", 0)
    if method not in METHODS:
        raise unknown("method", method, METHODS, key="method")
    require(k == "auto" or (isinstance(k, int) and not isinstance(k, bool)), "k", f"expected auto or a number, got '{k}'")
    require(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", f"expected an integer ≥ 0, got '{seed}'")
    params = cli.get("params")
    require(params is None or OmegaConf.is_list(params), "params", f"expected a list such as [model.net.0], got '{params}'")
    export = cli.get("export")
    return {"run_dir": str(cli.run_dir), "method": method, "k": k, "checkpoint": str(cli.get("ckpt", "last")),
            "params": [str(p) for p in params] if params is not None else None, "seed": seed,
            "export": None if export is None else str(export), "plugins": plugins, "trust_plugins": trust_plugins}


def cmd_discover(args: list[str]) -> int:
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    from skilltrain.analysis.discovery import discover_run
    from skilltrain.report import console
    from skilltrain.rundir import DISCOVERED

    options = discover_options(args)
    export = options["export"]
    result = discover_run(**options)
    auto = result["k_auto"]
    how = (f"k=auto chose {result['k']} (gap ratio {auto['gap_ratio']:.2f}; next best k={auto['second_k']})"
           if auto and auto["gap_ratio"] is not None else f"k={result['k']}")
    table = Table(title=escape(f"discovered skills ({result['method']}, {how})"))
    for column in ("cluster", "size", "learn step", *(("majority skill", "purity") if result["skills"] else ())):
        table.add_column(column, justify="left" if column in ("cluster", "majority skill") else "right")
    for info in result["cluster_info"]:
        row = [info["name"], str(info["size"]), "—" if info["learn_step"] is None else str(info["learn_step"])]
        if result["skills"]:
            row += [escape(info["majority_skill"]), f"{info['purity']:.2f}"]
        table.add_row(*row)
    console().print(table)
    if result["ari"] is not None:
        base = result["input_baseline"]
        print(f"against the true skills: ARI {result['ari']:.3f}, NMI {result['nmi']:.3f}; "
              f"k-means on the inputs: ARI {base['ari']:.3f}, NMI {base['nmi']:.3f}")
    if export is not None:
        print(f"exported {result['n_samples']} samples with their clusters to {export} "
              f"(train on them: python -m skilltrain fit recipe=hf_example data.path={export})")
    print(f"discovered: {Path(options['run_dir']) / DISCOVERED}", flush=True)
    return 0


def cmd_check(args: list[str]) -> int:
    from skilltrain.testing import check_command

    return check_command(args)


def command_summaries() -> list[tuple[str, str]]:
    """(command, its one-line summary) from USAGE, the one place commands are described."""
    import re

    found = dict(re.findall(r"^  ([a-z-]+) {2,}(.+)$", USAGE, flags=re.M))
    return [(name, found.get(name, "")) for name in COMMANDS]


def list_options(args: list[str]) -> list[str]:
    """`list`'s plugins, checked."""
    from skilltrain.config import parse_overrides

    extra = [a for a in args if not a.startswith("plugins=")]
    if extra:
        raise UserError(f"list takes only plugins=[...] (plugins whose entries to list too), got '{extra[0]}'")
    return list(parse_overrides(args).get("plugins") or [])


def cmd_list(args: list[str]) -> int:
    from rich.markup import escape
    from rich.table import Table

    from skilltrain.config import recipe_description, recipe_names
    from skilltrain.plugins import load_plugins
    from skilltrain.registry import BUILTIN, INTERVENTIONS, MODELS, OPTIMIZERS, TASKS
    from skilltrain.report import console as make_console

    load_plugins(list_options(args))

    def described(entry) -> str:
        modes = f" · modes: {', '.join(entry.modes)}" if entry.modes else ""
        return entry.description + modes + ("" if entry.source == BUILTIN else f" · from {entry.source}")

    from skilltrain.theory.config import theory_recipe_description, theory_recipe_names

    sections = [("commands (python -m skilltrain --help shows an example of each)", command_summaries()),
                ("recipes", [(n, recipe_description(n)) for n in recipe_names()]),
                ("theory recipes (python -m skilltrain theory recipe=…)",
                 [(n, theory_recipe_description(n)) for n in theory_recipe_names()])]
    for title, registry in (("tasks", TASKS), ("models", MODELS), ("optimizers", OPTIMIZERS), ("interventions", INTERVENTIONS)):
        sections.append((title, [(e.name, described(e)) for e in registry.entries()]))
    console = make_console()
    for title, rows in sections:
        console.print(f"[bold underline]{title}[/]")
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for name, description in rows or [("(none yet)", "")]:
            table.add_row(escape(name), escape(description))  # descriptions hold [brackets], not rich markup
        console.print(table)
        console.print()
    return 0


def check_command_line(argv: list[str]) -> str:
    """Parse and validate a command line (what follows `python -m skilltrain`) as its command does, and stop before
    it would train, simulate or read a run: nothing is written, and nothing is read but the recipes, presets,
    plugins, arms and suite files it names (and a resumed run's config: `fit ckpt_path=…`). `fit`, `print-config`
    and `export-data`: the run config; `theory`: the toy model's config; `compare`, `sweep` and `benchmark`: their
    plan, each arm's config checked (with its first seed: the runs differ only in seed and folder); `analyze`, `discover`,
    `fit-theory`, `list` and `check`: their arguments (and the plugins `list` and `check` name). A mistake raises
    UserError with the one line the command would print. Returns what was checked, in a few words."""
    argv = [_plain(a) for a in argv]
    if not argv or argv[0] in ("-h", "--help", "help") or any(a in ("-h", "--help") for a in argv[1:]):
        return "the usage"
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        raise unknown("command", command, COMMANDS)
    if command in ("fit", "print-config"):
        from skilltrain.config import load_config

        cfg = load_config(args)
        return f"{command}: recipe {cfg.recipe}"
    if command == "export-data":
        cfg, path = export_data_options(args)
        return f"export-data: recipe {cfg.recipe} to {path}"
    if command == "theory":
        from skilltrain.theory.config import load_theory_config

        return f"theory: model {load_theory_config(args).model}"
    if command == "compare":
        from skilltrain.comparison import plan

        the_plan = plan(args)
        return f"compare: {len(the_plan.arms)} arms × {len(the_plan.seeds)} seeds of {the_plan.recipe}"
    if command == "sweep":
        from skilltrain.sweep import plan_sweep

        the_sweep = plan_sweep(args)
        return f"sweep: {len(the_sweep.grid)} grid points × {len(the_sweep.comparison.seeds)} seeds"
    if command == "benchmark":
        from skilltrain.benchmark import plan_benchmark

        the_plan = plan_benchmark(args)
        return f"benchmark: {len(the_plan.tasks)} tasks × {len(the_plan.arms)} arms"
    if command == "fit-theory":
        from skilltrain.theory.fit import fit_theory_options

        return f"fit-theory: {fit_theory_options(args)['run_dir']}"
    if command == "list":
        from skilltrain.plugins import load_plugins

        load_plugins(list_options(args))
        return "list"
    if command == "check":
        from skilltrain.plugins import load_plugins
        from skilltrain.testing import check_options

        options = check_options(args)
        load_plugins(options["plugins"])
        return f"check: {', '.join(options['plugins'])}"
    options = (analyze_options if command == "analyze" else discover_options)(args)
    return f"{command}: {options['run_dir']}"


def _plain(arg: str) -> str:
    """`--optim.lr=0.01` (how W&B sweep agents and argparse habits write it) is `optim.lr=0.01`."""
    return arg[2:] if arg.startswith("--") and "=" in arg else arg


COMMANDS = {"fit": cmd_fit, "compare": cmd_compare, "benchmark": cmd_benchmark, "list": cmd_list,
            "print-config": cmd_print_config, "export-data": cmd_export_data, "theory": cmd_theory,
            "fit-theory": cmd_fit_theory, "analyze": cmd_analyze, "discover": cmd_discover,
            "sweep": cmd_sweep, "check": cmd_check}


def main(argv: list[str] | None = None) -> int:
    argv = [_plain(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(USAGE, end="")
        return 0

    def call() -> int:
        if command not in COMMANDS:
            raise unknown("command", command, COMMANDS)
        return COMMANDS[command](args)

    return command_exit(command, call)


if __name__ == "__main__":
    raise SystemExit(main())
