"""Every `python -m skilltrain …` command the documentation shows is checked as its command would check it, without
training: the shell blocks of README.md, docs/*.md and callbacks/README.md (and their inline `python -m skilltrain …`
code), and the commands in the comments of recipes/ and conf/. Each is split as a shell splits it and goes through
skilltrain.cli.check_command_line: the run config for fit, the plan (every run's config) for compare, sweep and
benchmark, the arguments for the commands that read a run; under torchrun or srun, in the environment they give it,
torchrun's own arguments parsed by torchrun. A failing command is reported by file:line, with its error.

Skipped, since they are templates rather than commands: a command holding a placeholder (`<recipe>`, `NAME`, `DIR`,
`sweep.KEY=…`, `…` or `...`, `[key=value ...]`). A `for VAR in a b …; do` loop's `$VAR` is its first value. A YAML
block whose first line is `# <name>.yaml` is a file the page's commands use (an arms file): it is written to the
working directory before they are checked; the repository's examples/ is there too. A benchmark's plan takes a minute
or more (every task built with every arm): those commands are marked slow.

Inline `key=value` code is checked too: it must be one shell argument (`'key={a: b}'` quoted) and parse as an
override; and the sections recipes point to must exist.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT

from skilltrain.errors import UserError

SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
# a placeholder: <recipe>, NAME / DIR / SKILL as a value or a key, …, ..., an optional part in [brackets]
TEMPLATE = re.compile(r"<[^<>\s][^<>]*>|…|\.\.\.|(?<=[=.-])[A-Z][A-Z0-9_]+\b|\[\w+=")
CONTROL = {"&&", "||", ";", "|", "&", "(", ")", ";;"}
REDIRECT = {">", ">>", "<", ">&", "&>", "<<"}
PREFIXES = {"nice": 2, "srun": 0, "time": 0, "env": 0, "exec": 0}  # a command word and how many arguments it takes


@dataclass
class DocCommand:
    where: str  # file:line
    text: str  # as written (continuation lines joined, loop variables substituted)
    files: dict  # name → content: the YAML files shown on the same page


def _expand(line: str, variables: dict[str, str]) -> str:
    for name, value in variables.items():
        line = re.sub(rf"\$\{{{name}\}}|\${name}(?!\w)", value, line)
    return line


def shell_commands(text: str, first_line: int, console: bool = False) -> list[tuple[int, str]]:
    """(line number, command) of a shell block: continuation lines joined, `$VAR` of enclosing for-loops replaced by
    their first value; in a console block only the `$ ` lines."""
    found, variables, pending, start = [], {}, "", None
    for i, raw in enumerate(text.split("\n")):
        line = raw.rstrip()
        if console:
            if not (line.startswith("$ ") or pending):
                continue
            line = line[2:] if line.startswith("$ ") and not pending else line
        loop = re.match(r"^\s*for (\w+) in ([^;]*); do\b", line)
        if loop and not pending:
            variables[loop.group(1)] = loop.group(2).split()[0]
            continue
        if re.match(r"^\s*done\b", line) and not pending:
            variables.clear()  # (a loop's variable ends with it; nested loops are not shown in the docs)
            continue
        if start is None:
            start = first_line + i
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        found.append((start, _expand(pending + line, variables).strip()))
        pending, start = "", None
    return [(n, c) for n, c in found if c.strip()]


def markdown_commands(path: Path, text: str) -> list[DocCommand]:
    """The shell commands of a Markdown file's fenced shell blocks and its inline `python -m skilltrain …` code."""
    lines = text.split("\n")
    files, blocks, inline = {}, [], []
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(```+|~~~+)\s*([\w-]*)", lines[i])
        if fence:
            indent, mark, language = fence.groups()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(mark)), len(lines))
            body = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:end])
            named = re.match(r"^#\s*(\S+\.ya?ml)\s*$", body.split("\n", 1)[0])
            if language in ("yaml", "yml") and named:
                files[named.group(1)] = body
            elif language in SHELL_BLOCKS:
                blocks.append((i + 2, body, language == "console"))
            lines[i:end + 1] = [""] * (min(end + 1, len(lines)) - i)  # what is left is the prose
            i = end + 1
            continue
        i += 1
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    found = [DocCommand(f"{name}:{n}", command, files) for start, body, console in blocks
             for n, command in shell_commands(body, start, console)]
    prose = "\n".join(lines)
    for match in re.finditer(r"(?<!`)`((?:nice -n \d+ )?python -m skilltrain [^`]+)`(?!`)", prose):
        line = prose.count("\n", 0, match.start()) + 1
        inline.append(DocCommand(f"{name}:{line}", " ".join(match.group(1).split()), files))
    return found + inline


def comment_commands(path: Path, text: str) -> list[DocCommand]:
    """The `python -m skilltrain …` commands in a YAML file's comments, to the end of the comment (or of the
    parenthesis the command is in)."""
    found = []
    for n, line in enumerate(text.split("\n"), 1):
        comment = line.partition("#")[2] if "#" in line else ""
        at = comment.find("python -m skilltrain ")
        if at < 0:
            continue
        command, before = comment[at:], comment[:at]
        if before.count("(") > before.count(")"):  # "(make one: python -m skilltrain …)"
            command = command[: command.rfind(")")] if ")" in command else command
        found.append(DocCommand(f"{path.relative_to(ROOT).as_posix()}:{n}", command.strip(), {}))
    return found


def documentation_files() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "callbacks" / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    return [p for p in found if p.is_file()]


def collect() -> list[DocCommand]:
    commands = [c for p in documentation_files() for c in markdown_commands(p, p.read_text())]
    for folder in ("recipes", "conf"):
        commands += [c for p in sorted((ROOT / folder).glob("**/*.yaml")) for c in comment_commands(p, p.read_text())]
    return commands


def split_shell(text: str) -> list[list[str]]:
    """A command line as a shell splits it: its simple commands (split at &&, ;, | …), each as words, with
    redirections and comments left out."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words, tokens = [], [], list(lexer)
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token in REDIRECT:
            skip = True
            if words and words[-1].isdigit():  # 2>&1
                words.pop()
        elif token in CONTROL:
            commands.append(words)
            words = []
        else:
            words.append(token)
    return [c for c in [*commands, words] if c]


@dataclass
class Invocation:
    argv: list[str]  # what follows `python -m skilltrain`
    torchrun: list[str] | None = None  # torchrun's own arguments, when torchrun launches it
    srun: bool = False  # started by SLURM's srun


def skilltrain_invocations(words: list[str]) -> list[Invocation]:
    """The skilltrain command of a simple command (`python -m skilltrain …`, `skilltrain …`, `torchrun … -m
    skilltrain …`, after `VAR=value`, `nice -n 19`, `srun`), or none."""
    i = 0
    while i < len(words) and (re.match(r"^\w+=", words[i]) or words[i] in PREFIXES):
        i += 1 + (PREFIXES.get(words[i], 0) if words[i] in PREFIXES else 0)
    rest, srun = words[i:], "srun" in words[:i]
    if not rest:
        return []
    if rest[0] in ("python", "python3") and rest[1:3] == ["-m", "skilltrain"]:
        return [Invocation(rest[3:], srun=srun)]
    if rest[0] == "skilltrain":
        return [Invocation(rest[1:], srun=srun)]
    if rest[0] == "torchrun" and "skilltrain" in rest:
        at = rest.index("skilltrain")
        if rest[at - 1] == "-m":
            return [Invocation(rest[at + 1:], rest[1:at - 1])]
    return []


def check_torchrun(arguments: list[str]) -> dict[str, str]:
    """torchrun's own arguments, parsed by torchrun's parser: a multi-node launch needs a rendezvous (else every
    node is node 0 and takes rank 0). The environment torchrun gives the processes it starts (what skilltrain reads
    of it)."""
    from torch.distributed.run import get_args_parser

    options = get_args_parser().parse_args([*arguments, "-m", "skilltrain"])
    max_nodes = int(str(options.nnodes).split(":")[-1])
    if max_nodes > 1 and options.rdzv_backend == "static" and "--node-rank" not in " ".join(arguments):
        raise UserError(f"torchrun --nnodes={options.nnodes} without --rdzv-backend=c10d (or --node-rank per node): "
                        "every node would be node 0")
    per_node = int(options.nproc_per_node) if str(options.nproc_per_node).isdigit() else 1
    return {"TORCHELASTIC_RUN_ID": str(options.rdzv_id), "WORLD_SIZE": str(max_nodes * per_node),
            "LOCAL_WORLD_SIZE": str(per_node)}


def check(command: DocCommand, directory: Path) -> list[str]:
    """What `command` runs through skilltrain, checked (in the environment its launcher, torchrun or srun, would
    give it): the checks' one-line descriptions. Raises UserError."""
    from skilltrain.cli import check_command_line

    for name, content in command.files.items():
        (directory / name).write_text(content)
    if not (directory / "examples").exists():
        (directory / "examples").symlink_to(ROOT / "examples")
    done = []
    for words in split_shell(command.text):
        for invocation in skilltrain_invocations(words):
            environment = check_torchrun(invocation.torchrun) if invocation.torchrun is not None else {}
            if invocation.srun:
                environment["SLURM_NTASKS"] = "1"  # (the allocation's size is sbatch's, not on the line)
            key = (tuple(invocation.argv), tuple(sorted(environment.items())), tuple(sorted(command.files.items())))
            if key not in PASSED:  # the same command on two pages (or twice on one) is checked once
                with pytest.MonkeyPatch.context() as patch:
                    for name, value in environment.items():
                        patch.setenv(name, value)
                    PASSED[key] = check_command_line(invocation.argv)
            done.append(PASSED[key])
    return done


PASSED: dict[tuple, str] = {}  # the checks passed in this session


def is_template(command: DocCommand) -> bool:
    """Whether it holds a placeholder (its comments left out)."""
    return bool(TEMPLATE.search(" ".join(shlex.split(command.text, comments=True))))


def plans_a_benchmark(command: DocCommand) -> bool:
    return any(i.argv[:1] == ["benchmark"] for words in split_shell(command.text) for i in skilltrain_invocations(words))


COMMANDS = [pytest.param(c, id=c.where, marks=[pytest.mark.slow] if plans_a_benchmark(c) else [])
            for c in collect() if "skilltrain" in c.text]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_documented_command_passes_its_checks(command, tmp_path, clean_registries):
    if is_template(command):
        pytest.skip(f"a template, not a command: {command.text}")
    try:
        check(command, tmp_path)
    except UserError as e:
        pytest.fail(f"{command.where}: {command.text}\n  error: {e}", pytrace=False)


# ---- the collection itself -------------------------------------------------------------------------------------------


def test_shell_blocks_inline_code_and_yaml_files_are_collected(tmp_path):
    page = tmp_path / "page.md"
    text = ("# A page\n\n```bash\npython -m skilltrain fit recipe=a \\\n    seed=1   # a comment\n"
            "for s in 3 4; do\n  python -m skilltrain fit seed=$s\ndone\n```\n\n"
            "Run `python -m skilltrain compare\nrecipe=b arms=my.yaml` after writing\n\n"
            "```yaml\n# my.yaml\nbaseline: {}\n```\n\n```\npython -m skilltrain output, not a command\n```\n"
            "```console\n$ python -m skilltrain list\nrecipes\n```\n")
    found = markdown_commands(page, text)
    assert [(c.where, c.text) for c in found] == [
        ("page.md:4", "python -m skilltrain fit recipe=a      seed=1   # a comment"),
        ("page.md:7", "python -m skilltrain fit seed=3"),
        ("page.md:23", "python -m skilltrain list"),
        ("page.md:11", "python -m skilltrain compare recipe=b arms=my.yaml"),
    ]
    assert found[0].files == {"my.yaml": "# my.yaml\nbaseline: {}"}


def test_a_command_in_a_comment_ends_with_its_parenthesis():
    text = "# Your data (make one: python -m skilltrain export-data recipe=x path=data/y)\nkey: 1  # python -m skilltrain list\n"
    found = comment_commands(ROOT / "recipes" / "x.yaml", text)
    assert [(c.where, c.text) for c in found] == [("recipes/x.yaml:1", "python -m skilltrain export-data recipe=x path=data/y"),
                                                  ("recipes/x.yaml:2", "python -m skilltrain list")]


def test_a_line_is_split_as_a_shell_splits_it():
    words = split_shell("X=1 nice -n 19 python -m skilltrain compare 'arms.a={b: c}' arms.d={e: f} > log 2>&1 && echo done")
    assert words == [["X=1", "nice", "-n", "19", "python", "-m", "skilltrain", "compare", "arms.a={b: c}", "arms.d={e:",
                      "f}"], ["echo", "done"]]
    assert skilltrain_invocations(words[0])[0].argv == ["compare", "arms.a={b: c}", "arms.d={e:", "f}"]
    assert skilltrain_invocations(words[1]) == []
    torchrun = skilltrain_invocations(split_shell("torchrun --nnodes=2 -m skilltrain fit recipe=a")[0])[0]
    assert (torchrun.torchrun, torchrun.argv) == (["--nnodes=2"], ["fit", "recipe=a"])


@pytest.mark.parametrize("text", ["python -m skilltrain compare recipe=<recipe>", "python -m skilltrain fit recipe=NAME",
                                  "python -m skilltrain sweep sweep.KEY=[1,2]", "python -m skilltrain discover run_dir=…",
                                  "python -m skilltrain fit [key=value ...]", "python -m skilltrain list [plugins=[...]]"])
def test_templates_are_told_from_commands(text):
    assert TEMPLATE.search(text)


@pytest.mark.parametrize("text", ["python -m skilltrain fit recipe=domino_2task trainer.accelerator=gpu seed=$s",
                                  "python -m skilltrain compare recipe=a arms=[baseline,sgd] 'arms.x={a: 1}'",
                                  "torchrun --rdzv-endpoint=$HEAD:29500 -m skilltrain fit"])
def test_commands_are_not_templates(text):
    assert not TEMPLATE.search(text)


def test_a_broken_command_fails_with_its_error(tmp_path, clean_registries):
    """A command the docs get wrong fails its check with the command's own one-line error."""
    wrong = DocCommand("x.md:1", "python -m skilltrain compare recipe=domino_2task arms.a={} seeds=2", {})
    with pytest.raises(UserError, match="unknown baseline arm 'baseline'"):
        check(wrong, tmp_path)
    with pytest.raises(UserError, match="every node would be node 0"):
        check(DocCommand("x.md:2", "torchrun --nnodes=2 --nproc-per-node=8 -m skilltrain fit", {}), tmp_path)
    assert check(DocCommand("x.md:3", "python -m skilltrain compare recipe=domino_2task arms=[baseline] seeds=2", {}),
                 tmp_path) == ["compare: 1 arms × 2 seeds of domino_2task"]


# ---- overrides shown inline, and the sections recipes point to -----------------------------------------------------

OVERRIDE = re.compile(r"^'?[A-Za-z_][\w.<>\[\]-]*=")


def inline_overrides(text: str) -> list[tuple[int, str]]:
    """(line, code) of the inline code spans of a Markdown text (fenced blocks left out) that are a `key=value`."""
    prose = re.sub(r"^(```+|~~~+).*?^\1[^\n]*$", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.M | re.S)
    return [(prose.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split()))
            for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose) if OVERRIDE.match(m.group(1))]


def split_for_the_shell(code: str) -> bool:
    """Whether inline `key=value` code falls apart on a command line: a word of it that is not a `key=value` (the
    rest of a value with a space); a command (`… python …`) is checked as a command instead."""
    words = shlex.split(code.replace("\\|", "|"))  # (`\|` is a `|` inside a Markdown table)
    return "python" not in words and not all(OVERRIDE.match(w) for w in words)


def test_an_override_shown_inline_is_one_shell_argument():
    """`key={a: b}` copied onto a command line is two arguments; quoted, it is one."""
    broken = [f"{path.relative_to(ROOT).as_posix()}:{n}: {code}" for path in documentation_files()
              for n, code in inline_overrides(path.read_text()) if split_for_the_shell(code)]
    assert not broken, "quote these for the shell ('key={a: b}'):\n" + "\n".join(broken)


def test_an_override_shown_inline_parses():
    """What the command line would make of it: `{qos:high}` is refused (YAML's key 'qos:high' without a value)."""
    from skilltrain.config import parse_overrides

    broken = []
    for path in documentation_files():
        for n, code in inline_overrides(path.read_text()):
            if split_for_the_shell(code) or TEMPLATE.search(code) or "python" in code or '"' in code:
                continue  # (broken otherwise; a template; a command, checked as one; Python: `overrides=[f"…"]`)
            try:
                parse_overrides(shlex.split(code.replace("\\|", "|")))
            except UserError as e:
                broken.append(f"{path.relative_to(ROOT).as_posix()}:{n}: {code}\n  error: {e}")
    assert not broken, "\n".join(broken)


def test_the_override_check_sees_a_mapping_with_spaces():
    found = inline_overrides("Use `a.b={c: d}` or `'a.b={c: d}'` or `seed=3 x=[1,2]`, `p=[a, b]`, not\n"
                             "```bash\nx `e={f: g}`\n```\n")
    assert found == [(1, "a.b={c: d}"), (1, "'a.b={c: d}'"), (1, "seed=3 x=[1,2]"), (1, "p=[a, b]")]
    assert [split_for_the_shell(code) for _, code in found] == [True, False, False, True]


def headings(page: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in page.read_text().split("\n") if line.startswith("#")]


def test_the_sections_recipes_point_to_exist():
    """`docs/<page>.md, "<section>"` and `docs/experiments.md, exp. N` in a recipe's comments name a heading."""
    broken = []
    for path in sorted((ROOT / "recipes").glob("**/*.yaml")):
        for n, line in enumerate(path.read_text().split("\n"), 1):
            for page, title in re.findall(r"(docs/[\w/]+\.md), \"([^\"]+)\"", line):
                if not any(h.startswith(title) for h in headings(ROOT / page)):
                    broken.append(f"{path.relative_to(ROOT)}:{n}: {page} has no section \"{title}\"")
            for page, number in re.findall(r"(docs/experiments\.md), exp\. (\d+)", line):
                if not any(re.search(rf"\bExp\. {number}\b", h) for h in headings(ROOT / page)) and \
                        f"**Exp. {number} " not in (ROOT / page).read_text():
                    broken.append(f"{path.relative_to(ROOT)}:{n}: {page} has no exp. {number}")
    assert not broken, "\n".join(broken)
