"""The task zoo: exact labels and structure of compositional_sparse_parity, dependency_graph, two_skill_regression,
modular_addition and rhm, and their one-line config errors (a short fit on each: tests/e2e/test_tasks_zoo.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from helpers import load
from omegaconf import OmegaConf

from skilltrain.cli import main
from skilltrain.data import build_task, rhm
from skilltrain.data.stream import generator, make_pool_and_eval
from skilltrain.models import build_model


def task_of(name, *args, seed=0, dtype=torch.float64):
    """Task `name` with its own defaults (a recipe holding only the task and an MLP), plus the overrides."""
    Path("zoo.yaml").write_text(f"data: {{name: {name}}}\nmodel: {{name: mlp}}\n")  # in the test's own tmp_path
    cfg = load("recipe=zoo.yaml", *args)
    return build_task(OmegaConf.to_object(cfg.data), seed, dtype), cfg


def xor(row, bits):
    return sum(int(row[b]) for b in bits) % 2


def rows_of(x):
    return [tuple(r) for r in x.tolist()]


# ---- compositional_sparse_parity ------------------------------------------------------------------------------


def test_compositional_sparse_parity_labels_are_union_parities_with_multi_hot_control_bits():
    task, _ = task_of("compositional_sparse_parity", "data.composites=[[0,1],[1,2,3]]", seed=3)
    parts = [[0], [1], [2], [3], [0, 1], [1, 2, 3]]
    assert task.skills == ["a0", "a1", "a2", "a3", "a0+a1", "a1+a2+a3"]
    subsets = task.subsets.tolist()
    used = [b for s in subsets for b in s]
    assert all(len(s) == 2 for s in subsets) and len(set(used)) == 8 and all(0 <= b < 32 for b in used)  # disjoint
    skill = torch.arange(6).repeat(100)
    batch = task.sample(len(skill), generator(1), skill)
    assert batch["x"].shape == (600, 4 + 32) and torch.equal(batch["skill"], skill)
    for row, s, y in zip(batch["x"].tolist(), skill.tolist(), batch["y"].tolist()):
        assert row[:4] == [1.0 if i in parts[s] else 0.0 for i in range(4)]
        assert set(row[4:]) <= {0.0, 1.0}
        assert y == xor(row[4:], [b for i in parts[s] for b in subsets[i]])
    for s in range(6):  # no skill has a constant label
        assert set(batch["y"][skill == s].tolist()) == {0, 1}
    same, _ = task_of("compositional_sparse_parity", seed=3)
    other, _ = task_of("compositional_sparse_parity", seed=4)
    assert torch.equal(same.subsets, task.subsets) and not torch.equal(other.subsets, task.subsets)


def test_compositional_sparse_parity_frequencies():
    task, cfg = task_of("compositional_sparse_parity")
    assert task.frequencies == pytest.approx([1 / 6] * 6)  # alpha 0: uniform, composites at the mean weight
    assert cfg.data.n_samples is None and cfg.data.batch_size == 1024 and cfg.data.eval_samples == 500
    zipf, _ = task_of("compositional_sparse_parity", "data.alpha=1.0")
    weights = [1, 1 / 2, 1 / 3, 1 / 4, 25 / 48, 25 / 48]  # composites: the mean of 1, 1/2, 1/3, 1/4
    assert zipf.frequencies == pytest.approx([w / sum(weights) for w in weights])
    fixed, _ = task_of("compositional_sparse_parity", "data.alpha=1.0", "data.composite_weight=2.0")
    weights = [1, 1 / 2, 1 / 3, 1 / 4, 2, 2]
    assert fixed.frequencies == pytest.approx([w / sum(weights) for w in weights])
    given, _ = task_of("compositional_sparse_parity", "data.frequencies=[1,1,1,1,4,4]")
    assert given.frequencies == pytest.approx([1 / 12] * 4 + [4 / 12] * 2)


def test_compositional_sparse_parity_token_form():
    floats, _ = task_of("compositional_sparse_parity", "data.n_bits=10", seed=2)
    tokens, _ = task_of("compositional_sparse_parity", "data.n_bits=10", "data.token_form=true", seed=2)
    assert (tokens.vocab_size, tokens.seq_len) == (4, 14) and floats.vocab_size is None
    skill = torch.arange(6).repeat(20)
    a, b = floats.sample(120, generator(5), skill), tokens.sample(120, generator(5), skill)
    assert b["x"].dtype == torch.long and b["x"].shape == (120, 14)
    assert torch.equal(b["x"][:, :4], 2 + a["x"][:, :4].long())  # control bits as ids 2 (off) / 3 (on)
    assert torch.equal(b["x"][:, 4:], a["x"][:, 4:].long()) and torch.equal(a["y"], b["y"])


# ---- dependency_graph -----------------------------------------------------------------------------------------


def test_dependency_chain_targets_are_prefix_parities():
    task, _ = task_of("dependency_graph", "data.length=5", "data.k=3")
    assert task.skills == ["c1", "c2", "c3", "c4", "c5"] and task.frequencies == [1.0] * 5
    batch = task.sample(400, generator(2))
    for row, y in zip(batch["x"].tolist(), batch["y"].tolist()):
        assert y == [xor(row, range(3 * j)) for j in range(1, 6)]  # c_j = p0 ⊕ … ⊕ p_{j−1}, leaf p_i = bits 3i…3i+2
    assert (batch["y"].mean(0) > 0.3).all() and (batch["y"].mean(0) < 0.7).all()


GRAPH = "data.graph={both: {op: and, of: [p0, p1]}, either: {op: or, of: [p2, p3]}, top: {op: xor, of: [both, either, p1]}}"


def test_dependency_graph_and_or_xor_targets_are_exact():
    task, _ = task_of("dependency_graph", "data.structure=graph", GRAPH, "data.n_bits=12")
    assert task.skills == ["p0", "p1", "p2", "p3", "both", "either", "top"]
    batch = task.sample(500, generator(3))
    seen = set()
    for row, y in zip(batch["x"].tolist(), batch["y"].tolist()):
        p = [xor(row, [2 * j, 2 * j + 1]) for j in range(4)]
        both, either = p[0] & p[1], p[2] | p[3]
        assert y == [*p, both, either, both ^ either ^ p[1]]
        seen.add((both, either))
    assert seen == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_dependency_graph_token_form():
    floats, _ = task_of("dependency_graph", seed=1)
    tokens, _ = task_of("dependency_graph", "data.token_form=true", seed=1)
    assert (tokens.vocab_size, tokens.seq_len) == (2, 32)
    a, b = floats.sample(50, generator(4)), tokens.sample(50, generator(4))
    assert b["x"].dtype == torch.long and torch.equal(b["x"], a["x"].long()) and torch.equal(a["y"], b["y"])


# ---- two_skill_regression -------------------------------------------------------------------------------------


def test_two_skill_regression_targets_inputs_and_exact_pool_proportions():
    task, cfg = task_of("two_skill_regression", "metric.name=loss")
    assert task.skills == ["x1sq", "x2sq"] and task.frequencies == pytest.approx([0.99, 0.01])
    assert (task.form, task.loss, task.accuracy, task.head, task.n_outputs) == ("control", "mse", False, "per_skill", 1)
    model = build_model(OmegaConf.to_object(cfg.model), task)
    assert model.layers[-1].out_features == 2  # one output unit per skill
    pool, eval_set = make_pool_and_eval(task, cfg.data.n_samples, cfg.data.eval_samples, data_seed=0)
    assert torch.bincount(pool["skill"]).tolist() == [990, 10]  # 1% of the paper's 1000 rows
    assert torch.bincount(eval_set["skill"]).tolist() == [500, 500]
    for data in (pool, eval_set):
        rows, s = torch.arange(len(data["y"])), data["skill"]
        u, other = data["x"][rows, s], data["x"][rows, 1 - s]
        assert (other == 0).all() and torch.equal(data["y"], u**2)
        assert u.abs().max() <= 1 and u.min() < -0.9 and u.max() > 0.9
    rare, _ = task_of("two_skill_regression", "metric.name=loss", "data.rare_fraction=0.2")
    given, _ = task_of("two_skill_regression", "metric.name=loss", "data.frequencies=[1,1]")
    assert rare.frequencies == pytest.approx([0.8, 0.2]) and given.frequencies == [0.5, 0.5]


# ---- modular_addition -----------------------------------------------------------------------------------------


def test_modular_addition_split_covers_all_pairs_once():
    task, cfg = task_of("modular_addition", "data.p=7")
    assert (task.vocab_size, task.seq_len, task.n_classes, task.n_outputs) == (7, 2, 7, 7)
    assert task.skills == ["sum"] and task.frequencies == [1.0]
    train, held_out = make_pool_and_eval(task, cfg.data.n_samples, cfg.data.eval_samples, data_seed=0)
    assert (len(train["y"]), len(held_out["y"])) == (39, 10)  # round(0.8 · 49)
    pairs = rows_of(train["x"]) + rows_of(held_out["x"])
    assert sorted(pairs) == list(itertools.product(range(7), repeat=2))  # disjoint and covering
    for data in (train, held_out):
        assert data["x"].dtype == torch.long
        assert torch.equal(data["y"], data["x"].sum(1) % 7) and (data["skill"] == 0).all()
    again, _ = make_pool_and_eval(task, None, 1, data_seed=0)
    other, _ = make_pool_and_eval(task, None, 1, data_seed=1)
    assert torch.equal(again["x"], train["x"]) and not torch.equal(other["x"], train["x"])
    default, cfg = task_of("modular_addition", "data.token_form=false")  # always tokens
    train, held_out = make_pool_and_eval(default, cfg.data.n_samples, cfg.data.eval_samples, data_seed=0)
    assert (default.vocab_size, len(train["y"]), len(held_out["y"])) == (59, 2785, 696)  # round(0.8 · 59²)


def test_modular_addition_residue_skills():
    task, cfg = task_of("modular_addition", "data.p=7", "data.skills=residue", "data.n_residue_skills=3")
    assert task.skills == ["r0", "r1", "r2"]
    assert task.frequencies == pytest.approx([3 / 7, 2 / 7, 2 / 7])  # labels {0, 3, 6}, {1, 4}, {2, 5}
    train, held_out = make_pool_and_eval(task, cfg.data.n_samples, cfg.data.eval_samples, data_seed=0)
    for data in (train, held_out):
        assert torch.equal(data["skill"], data["y"] % 3)
    skill = torch.arange(3).repeat(100)
    streamed = task.sample(300, generator(1), skill)  # streaming draws pairs of the asked skill
    assert torch.equal(streamed["skill"], skill) and torch.equal(streamed["y"], streamed["x"].sum(1) % 7)
    assert set(streamed["y"].tolist()) == set(range(7))


# ---- rhm ------------------------------------------------------------------------------------------------------


def enumerate_rhm(task) -> dict[tuple, int]:
    """Every input → its class, by brute force over the task's rules (independent of its vectorised expansion)."""
    depth = len(task.rules)

    def expand(symbol, level):
        if level == depth:
            return [(symbol,)]
        out = []
        for rule in task.rules[level][symbol].tolist():
            out += [sum(parts, ()) for parts in itertools.product(*[expand(c, level + 1) for c in rule])]
        return out

    inputs = {}
    for c in range(task.n_classes):
        leaves = expand(c, 0)
        assert len(set(leaves)) == len(leaves)  # distinct rule choices give distinct inputs
        for x in leaves:
            assert inputs.setdefault(x, c) == c  # an input belongs to one class
    return inputs


# (v, n_c, m, s, L, eval_samples per class): pool + held-out = all n_c · m^nodes inputs
RHM_CASES = [(4, 2, 2, 2, 2, 2), (4, 2, 2, 2, 3, 28), (3, 3, 3, 2, 2, 7)]


@pytest.mark.parametrize("v, n_c, m, s, L, n_eval", RHM_CASES, ids=["v{}-nc{}-m{}-s{}-L{}".format(*c) for c in RHM_CASES])
def test_rhm_rules_inputs_and_split_are_exact(v, n_c, m, s, L, n_eval):
    nodes = (s**L - 1) // (s - 1)
    total = n_c * m**nodes
    params = [f"data.v={v}", f"data.n_c={n_c}", f"data.m={m}", f"data.s={s}", f"data.L={L}", "data.token_form=true",
              f"data.n_samples={total - n_c * n_eval}", f"data.eval_samples={n_eval}", "data.batch_size=null"]
    task, cfg = task_of("rhm", *params)
    assert task.skills == [f"class{i}" for i in range(n_c)] and task.n_classes == n_c
    for level, rules in enumerate(task.rules):
        assert rules.shape == (n_c if level == 0 else v, m, s)
        tuples = rows_of(rules.flatten(0, 1))
        assert len(set(tuples)) == len(tuples)  # m distinct rules per symbol, no tuple shared within a level
    inputs = enumerate_rhm(task)
    assert len(inputs) == total and all(len(x) == s**L and set(x) <= set(range(v)) for x in inputs)

    pool, held_out = make_pool_and_eval(task, cfg.data.n_samples, cfg.data.eval_samples, data_seed=0)
    assert torch.bincount(held_out["y"], minlength=n_c).tolist() == [n_eval] * n_c
    train_x, eval_x = rows_of(pool["x"]), rows_of(held_out["x"])
    assert len(set(train_x)) == len(train_x) and len(set(eval_x)) == len(eval_x) and not set(train_x) & set(eval_x)
    assert set(train_x) | set(eval_x) == set(inputs)  # here the split uses every input exactly once
    for data in (pool, held_out):
        assert torch.equal(data["y"], data["skill"])
        assert [inputs[x] for x in rows_of(data["x"])] == data["y"].tolist()

    skill = torch.arange(n_c).repeat(500)
    streamed = task.sample(len(skill), generator(7), skill)
    assert [inputs[x] for x in rows_of(streamed["x"])] == skill.tolist()


def test_rhm_vector_and_token_forms():
    tokens, _ = task_of("rhm", "data.token_form=true", seed=1)
    floats, _ = task_of("rhm", seed=1)
    assert (tokens.vocab_size, tokens.seq_len) == (8, 8) and floats.vocab_size is None and floats.n_inputs == 64
    skill = torch.arange(4).repeat(25)
    a, b = tokens.sample(100, generator(2), skill), floats.sample(100, generator(2), skill)
    assert a["x"].dtype == torch.long and a["x"].shape == (100, 8)
    assert b["x"].dtype == torch.float64 and b["x"].shape == (100, 64)
    one_hot = b["x"].view(100, 8, 8)
    assert (one_hot.sum(-1) == 1).all() and torch.equal(one_hot.argmax(-1), a["x"])
    other, _ = task_of("rhm", seed=2)
    assert all(torch.equal(r, q) for r, q in zip(tokens.rules, floats.rules))  # the rules follow the data seed
    assert not all(torch.equal(r, q) for r, q in zip(tokens.rules, other.rules))


def test_rhm_large_input_space_draws_distinct_inputs(monkeypatch):
    task, cfg = task_of("rhm", "data.L=4", "data.token_form=true", "data.n_samples=512", "data.eval_samples=64")
    assert task.cfg.m ** task.nodes > rhm.RANDPERM_LIMIT  # 4^15 rule choices per class: drawn by rejection
    pool, held_out = make_pool_and_eval(task, cfg.data.n_samples, cfg.data.eval_samples, data_seed=0)
    train_x, eval_x = rows_of(pool["x"]), rows_of(held_out["x"])
    assert len(set(train_x)) == 512 and len(set(eval_x)) == 256 and not set(train_x) & set(eval_x)
    assert torch.bincount(pool["y"]).tolist() == [128] * 4
    monkeypatch.setattr(rhm, "RANDPERM_LIMIT", 0)  # rejection on a tiny space must still find every row
    rows = rhm.distinct_rows(2, 4, 16, generator(0))
    assert sorted(rows_of(rows)) == list(itertools.product(range(2), repeat=4))


# ---- one-line config errors -----------------------------------------------------------------------------------

CSP, DG, REG = "data.name=compositional_sparse_parity", "data.name=dependency_graph", "data.name=two_skill_regression"
MOD, RHM = "data.name=modular_addition", "data.name=rhm"
GR = "data.structure=graph"
BAD = [
    ([CSP, "data.n_atomic=20"], "data.n_bits: 20 atomic skills of 2 disjoint bits need n_bits ≥ 40, got 32"),
    ([CSP, "data.composites=[[0]]"], "data.composites[0]: a composite needs ≥ 2 distinct atomic skills, got [0]"),
    ([CSP, "data.composites=[[1,1]]"], "data.composites[0]: a composite needs ≥ 2 distinct atomic skills, got [1, 1]"),
    ([CSP, "data.composites=[[0,4]]"], "data.composites[0]: atomic skill 4 is out of range [0, 4)"),
    ([CSP, "data.composites=[[0,1],[2,3],[1,0]]"], "data.composites[2]: repeats data.composites[0]"),
    ([CSP, "data.composite_weight=0"], "data.composite_weight: must be > 0 or null, got 0.0"),
    ([CSP, "data.alpha=-1"], "data.alpha: must be ≥ 0, got -1.0"),
    ([DG, "data.length=20"], "data.n_bits: 20 leaf parities of 2 disjoint bits need n_bits ≥ 40, got 32"),
    ([DG, "data.structure=tree"], "data.structure: unknown structure 'tree' (valid: chain, graph)"),
    ([DG, "data.graph={a: {op: and, of: [p0, p1]}}"], "data.graph: is only used with data.structure=graph"),
    ([DG, GR, "data.n_leaves=17"], "data.n_bits: 17 leaf parities of 2 disjoint bits need n_bits ≥ 34, got 32"),
    ([DG, GR, "data.graph={both: {op: and, of: [p0, p1]}, top: {op: or, of: [bothh, p2]}}"],
     "data.graph.top.of: unknown skill 'bothh' (did you mean both?)"),
    ([DG, GR, "data.graph={a: {op: and, of: [p0, p9]}}"], "data.graph.a.of: unknown skill 'p9' (valid: p0, p1, p2, p3)"),
    ([DG, GR, "data.graph={a: {op: and, of: [p0, b]}, b: {op: or, of: [p1, a]}}"],
     "data.graph.a.of: b is declared after a; children must be leaves or earlier composites"),
    ([DG, GR, "data.graph={a: {op: xor, of: [p0, a]}}"], "data.graph.a.of: a cannot depend on itself"),
    ([DG, GR, "data.graph={a: {op: nand, of: [p0, p1]}}"], "data.graph.a.op: unknown op 'nand' (did you mean 'and'?"),
    ([DG, GR, "data.graph={a: {op: and, of: [p0]}}"], "data.graph.a.of: expected a list of ≥ 2 distinct skill names, got ['p0']"),
    ([DG, GR, "data.graph={a: {op: and, of: [p0, [p1]]}}"], "data.graph.a.of: expected a list of ≥ 2 distinct skill names"),
    ([DG, GR, "data.graph={a: {op: and}}"], "data.graph.a: expected {op: and|or|xor, of: [children]}, got {'op': 'and'}"),
    ([DG, GR, "data.graph={p1: {op: and, of: [p0, p2]}}"], "data.graph.p1: is the name of a leaf parity"),
    ([REG], "metric.name: task two_skill_regression has regression skills without accuracy; use metric.name=loss"),
    ([REG, "metric.name=loss", "data.token_form=true"],
     "data.token_form: two_skill_regression has continuous inputs; it has no token form"),
    ([REG, "metric.name=loss", "data.rare_fraction=1.5"], "data.rare_fraction: must be in (0, 1), got 1.5"),
    ([MOD, "data.frequencies=[1.0]"], "data.frequencies: must be null: modular_addition is a fixed data set"),
    ([MOD, "data.skills=residu"], "data.skills: unknown skill split 'residu' (did you mean 'residue'?"),
    ([MOD, "data.skills=residue", "data.n_residue_skills=60"], "data.n_residue_skills: must be in [2, data.p=59], got 60"),
    ([MOD, "data.train_fraction=1.0"], "data.train_fraction: must leave both a training pool and a held-out set"),
    ([MOD, "data.p=1"], "data.p: must be ≥ 2, got 1"),
    ([RHM, "data.s=1"], "data.s: must be ≥ 2, got 1"),
    ([RHM, "data.m=20"], "data.m: m·n_c = 80 rules of the top level must be distinct s-tuples, but v^s = 64"),
    ([RHM, "data.m=10", "data.n_c=2"], "data.m: m·v = 80 rules of a lower level must be distinct s-tuples, but v^s = 64"),
    ([RHM, "data.n_samples=100000"],
     "data.n_samples: 27000 distinct inputs of one class (training pool + held-out set), but a class has only m^7 = 16384"),
    ([RHM, "data.v=4", "data.n_c=2", "data.m=2", "data.L=2", "data.n_samples=13", "data.eval_samples=2"],
     "data.n_samples: 9 distinct inputs of one class (training pool + held-out set), but a class has only m^3 = 8"),
    ([RHM, "data.n_samples=null", "data.batch_size=64", "data.eval_samples=20000"], "data.eval_samples: 20000 distinct inputs"),
    ([RHM, "data.frequencies=[1,1]"], "data.frequencies: expected 4 values (one per skill of rhm), got 2"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_zoo_config_is_one_line_and_exit_2(args, message, capsys):
    assert main(["print-config", "recipe=compositional", *args]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err, err
    assert "Traceback" not in err + out


@pytest.mark.parametrize("name", ["compositional_sparse_parity", "dependency_graph", "two_skill_regression",
                                  "modular_addition", "rhm"])
def test_zoo_config_prints(name, capsys):
    extra = ["metric.name=loss", "metric.threshold=1e-3"] if name == "two_skill_regression" else []
    assert main(["print-config", "recipe=compositional", f"data.name={name}", *extra]) == 0
    assert OmegaConf.create(capsys.readouterr().out).data.name == name
