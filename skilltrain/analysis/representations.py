"""What a network's layers represent: CKA similarity between layers and runs, linear probes per skill, and effective
dimension.

Learning curves say when a skill is learned; these measures say how. Do two seeds (or an arm and its baseline)
arrive at the same representations? Which layer first makes a skill's target linearly readable, and, for a
composite, its parts' targets? How many directions does a layer use?

- `linear_cka(X, Y)`: linear centred kernel alignment (Kornblith et al. 2019) between two sets of features of the
  same n samples, ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) after centring each feature. 1 for the same features up to a
  rotation and a scale, 0 for unrelated ones. The plain (biased) estimate of independent features is about
  d/n, not 0: with `debiased=True` the HSIC terms are the unbiased estimator of Song et al. (2012), as in the
  debiased CKA of Nguyen et al. (2021), whose value for independent features is 0 ± noise (it can be negative).
  Everything is computed in float64 from feature-space sums, never an n × n Gram matrix unless the features
  are wider than the samples are many.
- `capture(model, inputs)`: activations of named modules (forward hooks), one [n, features] tensor each.
- `cka_matrix(acts_a, acts_b)`: CKA of every layer of one capture against every layer of another.
- `probe(features, targets, groups=…)`: a closed-form ridge readout fitted on 70% of the samples (fixed seed),
  scored on the other 30%, repeated inputs kept on one side: accuracy for class targets (one-hot least squares,
  argmax), R² for real-valued targets.
- `effective_dimension(features, debiased=…)`: the participation ratio (Σλ)² / Σλ² of the covariance eigenvalues
  λ: d for isotropic features, 1 for features on a line; the plain estimate is biased low (d/(1 + d/n) for d
  isotropic directions in n samples), the debiased one is not.
- `task_difference(a, b)`: whether two runs' tasks are one task (representations compare only those).
- `analyze_run(run_dir, other=None)`: all of the above for a trained run on a fixed probe set drawn from its task,
  written to <run_dir>/representations.json with cka.png and probes.png; `compare_representations` across the
  runs of a comparison.

The core functions take plain tensors and any `nn.Module`: nothing here needs Lightning except reading a run.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skilltrain.analysis.plots import colormap, figure
from skilltrain.analysis.stats import median
from skilltrain.errors import UserError, unknown
from skilltrain.files import read_json, save_figure, write_json

REPORT_FILE = "representations.json"
TRAIN_FRACTION = 0.7  # a probe's training share; the rest is held out
RIDGE = 1e-2  # a probe's penalty per training sample, on standardised features
CAPTURE_CHUNK = 1024  # samples per forward pass in analyze_run (token models' activations are [n, seq, d])
SEQUENCE_MODES = ("mean", "flatten")


# ---- CKA ----------------------------------------------------------------------------------------------------------

def centred(features: torch.Tensor) -> torch.Tensor:
    """[n, d] features in float64 with every feature's mean removed (CKA and the covariance need centred features)."""
    if features.dim() != 2:
        raise ValueError(f"expected features of shape [n, d], got {tuple(features.shape)}")
    x = features.detach().to(torch.float64)
    return x - x.mean(dim=0, keepdim=True)


def gram_product_trace(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """tr(K L) for the linear kernels K = XXᵀ and L = YYᵀ, which is ‖YᵀX‖²_F: through the d_x × d_y cross product, or
    through the n × n Gram matrices when the features are wider than the samples are many (the smaller of the two)."""
    n, dx, dy = x.shape[0], x.shape[1], y.shape[1]
    if dx * dy <= n * n:
        return (x.T @ y).square().sum()
    return ((x @ x.T) * (y @ y.T)).sum()


def hsic(x: torch.Tensor, y: torch.Tensor, debiased: bool) -> float:
    """HSIC of two centred feature sets with linear kernels, up to a factor that depends on n alone (it cancels in CKA).

    Biased: tr(K L). Debiased (Song et al. 2012): with K̃, L̃ the Gram matrices with their diagonals set to 0,
        tr(K̃ L̃) + (1ᵀK̃1)(1ᵀL̃1) / ((n−1)(n−2)) − 2/(n−2) · 1ᵀK̃L̃1.
    For centred features K1 = 0, so with k = diag(K), l = diag(L) (the samples' squared norms) this is
        tr(K L) − kᵀl + Σk Σl / ((n−1)(n−2)) − 2 kᵀl / (n−2),
    which needs no n × n matrix.
    """
    cross = gram_product_trace(x, y)
    if not debiased:
        return float(cross)
    n = x.shape[0]
    k_diag, l_diag = x.square().sum(dim=1), y.square().sum(dim=1)
    kl = k_diag @ l_diag
    return float(cross - kl + k_diag.sum() * l_diag.sum() / ((n - 1) * (n - 2)) - 2 * kl / (n - 2))


def cka_from_hsic(xy: float, xx: float, yy: float) -> float:
    """HSIC(X, Y) / √(HSIC(X, X) HSIC(Y, Y)); NaN when either self-similarity is not positive (a constant layer, or
    a debiased estimate that noise pushed to ≤ 0): the similarity is then undefined, not 0."""
    denominator = xx * yy
    return xy / math.sqrt(denominator) if denominator > 0 else math.nan


def _check_samples(n: int, debiased: bool) -> None:
    need = 4 if debiased else 2  # the unbiased estimator divides by n − 3 (dropped here) and n − 2
    if n < need:
        raise ValueError(f"{'debiased ' if debiased else ''}CKA needs at least {need} samples, got {n}")


def linear_cka(X: torch.Tensor, Y: torch.Tensor, debiased: bool = False) -> float:
    """Linear CKA of two representations of the same n samples, X [n, d_x] and Y [n, d_y] (rows paired).

    Invariant to orthogonal transforms and isotropic scaling of either side, and to shifts (features are centred);
    not to other invertible linear maps. NaN when a side is constant. See the module docstring for `debiased`.
    """
    x, y = centred(X), centred(Y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"X and Y must hold the same samples: {x.shape[0]} rows vs {y.shape[0]}")
    _check_samples(x.shape[0], debiased)
    return cka_from_hsic(hsic(x, y, debiased), hsic(x, x, debiased), hsic(y, y, debiased))


def cka_matrix(acts_a: Mapping[str, torch.Tensor], acts_b: Mapping[str, torch.Tensor],
               debiased: bool = False) -> tuple[list[str], list[str], torch.Tensor]:
    """(names_a, names_b, matrix): linear CKA of every layer of `acts_a` (rows) against every layer of `acts_b`
    (columns), e.g. two captures of `capture` on the same inputs; matrix is a float64 tensor [len(a), len(b)]."""
    names_a, names_b = list(acts_a), list(acts_b)
    xs = {name: centred(v) for name, v in acts_a.items()}
    ys = {name: centred(v) for name, v in acts_b.items()}
    rows = {v.shape[0] for v in [*xs.values(), *ys.values()]}
    if len(rows) > 1:
        raise ValueError(f"every layer must hold the same samples, got row counts {sorted(rows)}")
    _check_samples(rows.pop() if rows else 0, debiased)
    self_a = {name: hsic(x, x, debiased) for name, x in xs.items()}  # once per layer, not once per pair
    self_b = self_a if acts_b is acts_a else {name: hsic(y, y, debiased) for name, y in ys.items()}
    matrix = torch.empty(len(names_a), len(names_b), dtype=torch.float64)
    for i, a in enumerate(names_a):
        for j, b in enumerate(names_b):
            matrix[i, j] = cka_from_hsic(hsic(xs[a], ys[b], debiased), self_a[a], self_b[b])
    return names_a, names_b, matrix


# ---- effective dimension ------------------------------------------------------------------------------------------

def effective_dimension(features: torch.Tensor, debiased: bool = False) -> float:
    """Participation ratio (Σλ)² / Σλ² of the covariance eigenvalues λ of [n, d] features: between 1 (all variance
    along one direction) and d (isotropic). tr(C)² / ‖C‖²_F, so no eigendecomposition; NaN for constant features.

    The sample covariance's Σλ² is biased high by about (Σλ)²/n, so the plain estimate is biased low: about
    d / (1 + d/n) for d isotropic directions in n samples (67 for d = 100, n = 200). `debiased=True` replaces Σλ² by
    its unbiased estimate (the debiased HSIC of the features with themselves, Song et al. 2012; needs n ≥ 4), which
    leaves a bias of order 1/n: the participation ratio of the population. NaN when that estimate is not positive
    (too few samples for the features' spread)."""
    x = centred(features)
    n = x.shape[0]
    if n < (4 if debiased else 2):
        raise ValueError(f"the {'debiased ' if debiased else ''}effective dimension needs at least "
                         f"{4 if debiased else 2} samples, got {n}")
    total = float(x.square().sum()) / (n - 1)  # Σλ (unbiased)
    squares = hsic(x, x, True) / (n * (n - 3)) if debiased else float(gram_product_trace(x, x)) / (n - 1) ** 2  # Σλ²
    return total**2 / squares if squares > 0 else math.nan


# ---- linear probes ------------------------------------------------------------------------------------------------

def is_classification(targets: torch.Tensor) -> bool:
    """Class labels: integer or boolean targets, or real ones that are all whole numbers (0/1 parity targets)."""
    if not targets.is_floating_point():
        return True
    return bool(torch.isfinite(targets).all() and torch.equal(targets, targets.round()))


def split(n: int, train_fraction: float, seed: int, groups: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(train rows, held-out rows): a fixed random split, the same for every layer probed on the same samples.

    `groups` [n] (e.g. the id of each row's input): rows of one group go to the same side, so no held-out input is
    also a fit row (probe sets are drawn with replacement, and a small input space repeats inputs). Groups are taken
    in the order the shuffle first reaches them, each to the fit side while fewer than round(train_fraction · n)
    rows are there: with all groups distinct, the same split as without `groups`. The held-out side is empty
    when one group holds (nearly) every row."""
    if n < 2:
        raise ValueError(f"a probe needs at least 2 samples (one to fit, one to test), got {n}")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = min(max(round(train_fraction * n), 1), n - 1)
    if groups is None:
        return order[:n_train], order[n_train:]
    if len(groups) != n:
        raise ValueError(f"groups must label the {n} rows, got {len(groups)}")
    _, group = torch.unique(groups.flatten().cpu(), return_inverse=True)
    group = group[order]  # each shuffled row's group
    count = torch.bincount(group)
    first = torch.full_like(count, n).scatter_reduce(0, group, torch.arange(n), "amin")  # where the shuffle meets it
    by_first = first.argsort()
    rows_before = count[by_first].cumsum(0) - count[by_first]
    fit_group = torch.empty_like(count, dtype=torch.bool)
    fit_group[by_first] = rows_before < n_train
    fit = fit_group[group]
    return order[fit], order[~fit]


def input_groups(x: torch.Tensor) -> torch.Tensor:
    """[n] ids of the rows' distinct inputs (equal ids: the same input), for `probe(groups=…)`."""
    return torch.unique(x.detach().cpu().flatten(1), dim=0, return_inverse=True)[1]


def ridge_fit(a: torch.Tensor, t: torch.Tensor, ridge: float) -> torch.Tensor:
    """W minimising ‖A W − T‖² + ridge · n · ‖W‖² (A and T centred): the primal solve when features are fewer than
    samples, else the dual one (the same W through an n × n system)."""
    n, d = a.shape
    penalty = ridge * n
    if d <= n:
        return torch.linalg.solve(a.T @ a + penalty * torch.eye(d, dtype=a.dtype), a.T @ t)
    return a.T @ torch.linalg.solve(a @ a.T + penalty * torch.eye(n, dtype=a.dtype), t)


def probe(features: torch.Tensor, targets: torch.Tensor, *, train_fraction: float = TRAIN_FRACTION, ridge: float = RIDGE,
          seed: int = 0, groups: torch.Tensor | None = None) -> float:
    """Held-out score of a linear readout of `targets` [n] from `features` [n, d].

    The readout is ridge regression in closed form on features standardised with the training rows' mean and
    standard deviation (so `ridge` means the same for every layer), with an unpenalised intercept. Class targets
    (see `is_classification`; binary or multi-class) are regressed as one-hot vectors and predicted by argmax: the
    score is the held-out accuracy (chance: the majority class's share). Real-valued targets: the held-out R².
    Deterministic: the split depends on `seed`, n and `groups` only. `groups` (the rows' input ids, `input_groups`)
    keeps repeated inputs on one side of the split, so the held-out rows are inputs the readout was not fitted on.
    NaN when the features are not finite (a diverged run) or nothing can be held out (one group).
    """
    x = features.detach().to(device="cpu", dtype=torch.float64).flatten(1)
    targets = targets.detach().cpu().flatten()
    if len(x) != len(targets):
        raise ValueError(f"features and targets must hold the same samples: {len(x)} rows vs {len(targets)}")
    if not torch.isfinite(x).all():
        return math.nan
    train, test = split(len(x), train_fraction, seed, groups)
    if len(test) == 0:
        return math.nan
    mean, std = x[train].mean(0), x[train].std(0, correction=0)
    x = (x - mean) / torch.where(std > 0, std, 1.0)  # a constant feature stays 0 instead of dividing by 0
    classify = is_classification(targets)
    if classify:
        classes, labels = torch.unique(targets, return_inverse=True)
        t = nn.functional.one_hot(labels, len(classes)).to(torch.float64)
    else:
        t = targets.to(torch.float64)[:, None]
    offset = t[train].mean(0)
    w = ridge_fit(x[train], t[train] - offset, ridge)
    predicted = x[test] @ w + offset
    if classify:
        return float((predicted.argmax(1) == labels[test]).double().mean())
    residual = (t[test] - predicted).square().sum()
    spread = (t[test] - t[test].mean()).square().sum()
    return float(1 - residual / spread) if spread > 0 else math.nan


def chance_score(targets: torch.Tensor) -> float:
    """What a probe scores without reading the features: the majority class's share (accuracy), or 0 (R²)."""
    targets = targets.detach().cpu().flatten()
    if not is_classification(targets):
        return 0.0
    return float(torch.unique(targets, return_counts=True)[1].max()) / len(targets)


# ---- capturing activations ----------------------------------------------------------------------------------------

def default_layers(model: nn.Module) -> list[str]:
    """What `capture` records when no layers are named: every Linear (MaskedLinear too), every activation function of
    torch.nn (ReLU, GELU, SiLU, Tanh, …), every Embedding (a token model's first representation) and every element
    of a ModuleList (a stack of blocks: the transformer's residual stream after each block)."""
    stacked = {id(m) for module in model.modules() if isinstance(module, nn.ModuleList) for m in module}
    return [name for name, module in model.named_modules() if name and (is_layer(module) or id(module) in stacked)]


def layer_kinds(model: nn.Module, names: Sequence[str]) -> dict[str, str]:
    """What each named layer is, by its class (`Linear`, `ReLU`, `Embedding`, a block's own class), for labels that
    say more than a module path (`net.1`)."""
    modules = dict(model.named_modules())
    return {name: type(modules[name]).__name__ for name in names if name in modules}


def labelled(names: Sequence[str], kinds: Mapping[str, str] | None) -> list[str]:
    """`net.1 (ReLU)`: each layer's path with what it is (the path alone where the kind is not known)."""
    kinds = kinds or {}
    return [f"{name} ({kinds[name]})" if name in kinds else name for name in names]


def is_layer(module: nn.Module) -> bool:
    """A Linear, an Embedding or one of torch.nn's activation functions (MultiheadAttention lives there too, and
    returns a tuple: not one)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        return True
    return type(module).__module__ == "torch.nn.modules.activation" and not isinstance(module, nn.MultiheadAttention)


def as_features(output: Any, sequence: str) -> torch.Tensor | None:
    """A module's output as [n, features]: the first tensor of a tuple output; [n, seq, d] averaged over the positions
    (`sequence="mean"`, any number of middle dimensions) or flattened (`"flatten"`); None when there is no tensor."""
    if isinstance(output, (tuple, list)):
        output = next((o for o in output if isinstance(o, torch.Tensor)), None)
    if not isinstance(output, torch.Tensor) or output.dim() == 0:
        return None
    out = output.detach()
    if out.dim() == 1:
        out = out[:, None]
    elif out.dim() > 2 and sequence == "mean":
        out = out.flatten(1, -2).mean(dim=1)
    out = out.flatten(1)
    return out if out.dtype == torch.float64 else out.float()  # bf16/fp16 (and integer) outputs: float32 for the sums


def chunks(inputs: torch.Tensor | Sequence[Any], batch_size: int | None) -> tuple[int, list[tuple]]:
    """(n, the positional arguments of each forward pass): tensors split along their first dimension, anything else
    passed to every pass as it is."""
    args = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if not tensors:
        raise ValueError("capture needs at least one input tensor (batch dimension first)")
    n = len(tensors[0])
    if n == 0:
        raise ValueError("capture needs at least one sample")
    size = batch_size or n
    return n, [tuple(a[start:start + size] if isinstance(a, torch.Tensor) else a for a in args)
               for start in range(0, n, size)]


def capture(model: nn.Module, inputs: torch.Tensor | Sequence[Any], layers: Sequence[str] | None = None, *,
            sequence: str = "mean", batch_size: int | None = None) -> dict[str, torch.Tensor]:
    """Activations of the named modules of `model` on `inputs`: {name: Tensor[n, features]}, in the order the forward
    pass reaches them.

    `inputs`: the input tensor, or a tuple of the forward's positional arguments (e.g. `(x, skill)` for a model that
    routes by skill), batch dimension first. `layers`: names from `model.named_modules()`; default: every Linear,
    activation function, Embedding and block of a ModuleList (`default_layers`). An unknown name is a one-line
    UserError naming the closest valid one. Outputs are flattened to [n, features]; a token model's [n, seq, d]
    outputs are averaged over the positions (`sequence="mean"`, the default: the model's own width, comparable
    across sequence lengths) or flattened (`sequence="flatten"`: keeps where each feature was). A module the
    forward calls k > 1 times (an activation module reused by every layer) gives k entries, `name[0]` … `name[k−1]`.

    Runs without gradients, in eval mode (every submodule's mode is restored afterwards), in chunks of `batch_size`
    samples (default: all at once); hooks are removed afterwards, also on error.
    """
    if sequence not in SEQUENCE_MODES:
        raise unknown("sequence mode", sequence, SEQUENCE_MODES, key="sequence")
    named = {name: module for name, module in model.named_modules() if name}  # "" is the model itself
    if layers is None:
        chosen = default_layers(model)
    else:
        for name in layers:
            if name not in named:
                raise unknown("layer", name, named, key="layers")
        chosen = list(dict.fromkeys(layers))
    n, passes = chunks(inputs, batch_size)
    calls: list[tuple[str, torch.Tensor | None]] = []  # (module name, its output) in the order the forward pass ends them

    def record(name: str):
        return lambda module, args, output: calls.append((name, as_features(output, sequence)))

    handles = [named[name].register_forward_hook(record(name)) for name in chosen]
    modes = [(module, module.training) for module in model.modules()]  # a user's model may mix train and eval parts
    per_pass: list[list[tuple[str, torch.Tensor | None]]] = []
    try:
        model.eval()
        with torch.no_grad():
            for args in passes:
                calls.clear()
                model(*args)
                per_pass.append(list(calls))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    return _join_passes(per_pass, n, explicit=layers is not None, requested=chosen)


def _join_passes(per_pass: list[list[tuple[str, torch.Tensor | None]]], n: int, explicit: bool,
                 requested: list[str]) -> dict[str, torch.Tensor]:
    """One [n, features] tensor per recorded call, the chunks' outputs concatenated; repeated modules numbered."""
    order = [name for name, _ in per_pass[0]]
    if any([name for name, _ in calls] != order for calls in per_pass):
        raise ValueError("the forward pass reached different modules on different chunks; capture with batch_size=None")
    if explicit:
        missing = [name for name in requested if name not in order]
        if missing:
            raise UserError(f"layers: the forward pass never calls {', '.join(repr(m) for m in missing)}")
    counts = {name: order.count(name) for name in order}
    seen: dict[str, int] = {}
    out: dict[str, torch.Tensor] = {}
    for i, name in enumerate(order):
        parts = [calls[i][1] for calls in per_pass]
        call = seen.get(name, 0)
        seen[name] = call + 1
        label = name if counts[name] == 1 else f"{name}[{call}]"
        if any(p is None for p in parts) or sum(len(p) for p in parts) != n:
            if explicit:  # a module asked for by name must give one row per sample
                raise UserError(f"layers: '{label}' does not output one row per sample (batch dimension first)")
            continue  # a default layer applied to something else than the batch (none of skilltrain's models)
        out[label] = torch.cat(parts) if len(parts) > 1 else parts[0]
    return out


# ---- a trained run ------------------------------------------------------------------------------------------------

def load_run(run_dir: Path, checkpoint: str = "last", key: str = "run_dir", plugins: Sequence[str] = (),
             trust_plugins: bool = False):
    """The run's SkillModule with the weights of its checkpoint `checkpoint` (`last`, or `learned-<skill>` from
    checkpoint.at_learn_steps=true), in eval mode, on the CPU.

    The model is rebuilt from the run's saved config; an architecture intervention (modular_routing) replaces it as
    it did in training before the weights are loaded, so the checkpoint's keys match. Nothing else the run names is
    executed: its callbacks and loggers are never instantiated, its plugins imported only when named in `plugins`
    or with `trust_plugins` (skilltrain.rundir).
    """
    from skilltrain.build import build_model
    from skilltrain.config import from_container
    from skilltrain.rundir import RunDir

    if not re.fullmatch(r"last|learned-[^/\\]+", checkpoint):
        raise UserError(f"ckpt: expected last or learned-<skill> (a checkpoint of checkpoint.at_learn_steps=true), "
                        f"got '{checkpoint}'")
    run = RunDir(run_dir)
    run.require("config", "checkpoint", key=key, kind="a skilltrain training run")
    if not run.checkpoint(checkpoint).is_file():
        raise unknown("checkpoint", checkpoint, run.checkpoint_names(), key="ckpt")
    container = run.config_for_reading(plugins, trust_plugins, key)
    with run.explaining_plugins(key):
        cfg = from_container(container, f"the saved config of {run_dir}")
        module = build_model(cfg)  # as it trained: an architecture intervention's model in place
    state = run.load_checkpoint(checkpoint)["state_dict"]
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{key}: the checkpoint of '{run_dir}' does not fit the model its saved config builds "
                        f"({str(e).splitlines()[0]})") from None
    return module.eval()


def probe_batches(task, n_probe: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """The fixed probe set, the same for every run of the task: outputs form, one draw of `n_probe` samples (each
    carries every skill's target); control form, one draw of `n_probe` samples per skill (as data.eval_samples)."""
    from skilltrain.data.stream import generator, mix_seed

    if task.form == "outputs":
        return [task.sample(n_probe, generator(mix_seed(seed, "representations")))]
    return [task.sample(n_probe, generator(mix_seed(seed, "representations", k)), torch.full((n_probe,), k))
            for k in range(task.n_skills)]


def part_targets(task, batches: list[dict[str, torch.Tensor]], n_probe: int, seed: int) -> dict[int, dict[int, torch.Tensor]]:
    """{composite: {part: the part's targets on the composite's probe samples}} for a task that declares its
    prerequisites, where the task gives them.

    Outputs form: every sample carries every target, so a part's targets are its column of y. Control form: the
    composite's samples are drawn again, from the same random stream, as the part's; the task gives the parts'
    targets when that draw has the same inputs up to the skill's marker (the columns that differ are constant
    within each draw: control bits, a task token). A task whose sampler draws differently gives none.
    """
    from skilltrain.data.stream import generator, mix_seed

    out: dict[int, dict[int, torch.Tensor]] = {}
    for composite, (_, parts) in task.prerequisites.items():
        for part in parts:
            if task.form == "outputs":
                target = batches[0]["y"][:, part]
            else:
                draw = task.sample(n_probe, generator(mix_seed(seed, "representations", composite)), torch.full((n_probe,), part))
                if not same_inputs_but_the_marker(batches[composite]["x"], draw["x"]):
                    continue
                target = draw["y"]
            out.setdefault(composite, {})[part] = target
    return out


def same_inputs_but_the_marker(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two single-skill draws differ only in columns that are constant within each draw."""
    a, b = a.flatten(1), b.flatten(1)
    if a.shape != b.shape:
        return False
    differ = (a != b).any(dim=0)
    return bool((a[:, differ] == a[:1, differ]).all() and (b[:, differ] == b[:1, differ]).all())


def model_inputs(module, x: torch.Tensor, skill: torch.Tensor | None) -> tuple:
    """The arguments SkillModule.forward gives its model: x in the model's dtype, and the skill ids for a model that
    routes by skill (modular networks)."""
    if x.is_floating_point():
        x = x.to(next(module.model.parameters()).dtype)
    return (x, skill) if getattr(module.model, "routes_by_skill", False) else (x,)


IDENTITY_SAMPLES = 64  # samples per draw (per skill in the control form) that `task_difference` compares
NOT_STRUCTURE = {"cfg", "seed", "dtype", "skills", "frequencies"}  # task attributes compared elsewhere, or sampling


def task_difference(a, b) -> str | None:
    """None when two tasks are one task for representations, else what differs between them, in words.

    One task: the same skills, inputs and outputs (names, form, sizes); the same structure (every attribute the task
    holds, e.g. multitask_parity's subsets or the RHM's rules, which these tasks draw from the data seed: runs of
    another data seed train another function, on other inputs for the RHM); and the same function of the config
    (the two tasks, built from the same data seed, give the same samples, inputs and targets, from the same random
    stream). A task whose structure does not depend on the data seed (masked_parity, whose data seed only draws the
    training pool and the held-out set) is one task across data seeds. How often a skill is sampled
    (data.frequencies, data.alpha) and the pool's size are not part of a task.
    """
    def shape(t) -> dict:
        return {"task": t.cfg.name, "form": t.form, "skills": ", ".join(t.skills), "inputs": t.n_inputs,
                "vocabulary": t.vocab_size, "sequence length": t.seq_len, "loss": t.loss,
                "classes": t.n_classes if t.loss == "ce" else None}

    first, second = shape(a), shape(b)
    for key in first:
        if first[key] != second[key]:
            return f"{key} {second[key]} vs {first[key]}"
    config_a, config_b = (dataclasses.asdict(t.cfg) if dataclasses.is_dataclass(t.cfg) else {} for t in (a, b))
    changed = [f"data.{k}={config_b.get(k)} vs {config_a.get(k)}" for k in sorted(set(config_a) | set(config_b))
               if k != "seed" and config_a.get(k) != config_b.get(k)]
    attributes = sorted(k for k in set(vars(a)) | set(vars(b)) if k not in NOT_STRUCTURE and not k.startswith("_"))
    structure = [k for k in attributes if not same_structure(getattr(a, k, None), getattr(b, k, None))]
    if structure:
        if a.seed != b.seed and not changed:
            return f"data seed {b.seed} vs {a.seed}, from which {a.cfg.name} draws its {', '.join(structure)}"
        return "; ".join(changed) or f"its {', '.join(structure)}"
    from skilltrain.data import build_task

    same_seed = b if b.seed == a.seed else build_task(copy.deepcopy(b.cfg), a.seed, b.dtype)
    draws = zip(probe_batches(a, IDENTITY_SAMPLES, 0), probe_batches(same_seed, IDENTITY_SAMPLES, 0))
    if all(same_values(da[k], db[k]) for da, db in draws for k in ("x", "y")):
        return None
    return "; ".join(changed) or "their samples differ"


def same_structure(x: Any, y: Any) -> bool:
    """Whether two task attributes are equal: tensors by value (`same_values`), containers item by item."""
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        return isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and same_values(x, y)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(same_structure(u, v) for u, v in zip(x, y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(same_structure(x[k], y[k]) for k in x)
    if type(x).__eq__ is object.__eq__:  # an object compared by identity only (a user's helper): nothing to compare
        return True
    try:
        return bool(x == y)
    except Exception:  # an equality that does not give one truth value: not structure this can compare
        return True


def same_values(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Equal shapes and values; floats compared at the coarser of the two dtypes (a float64 run and a float32 one)."""
    if x.shape != y.shape:
        return False
    if x.is_floating_point() and y.is_floating_point() and x.dtype != y.dtype:
        coarse = min(x.dtype, y.dtype, key=lambda t: torch.finfo(t).bits)
        x, y = x.to(coarse), y.to(coarse)
    return x.dtype == y.dtype and torch.equal(x, y)


def check_same_task(module, other, run_dir: Path, other_dir: Path) -> None:
    """Representations compare runs of one task only (`task_difference`): else a one-line UserError naming what
    differs (runs of a task drawn from the data seed need one data.seed)."""
    difference = task_difference(module.task, other.task)
    if difference is not None:
        hint = " (give both runs one data.seed)" if difference.startswith("data seed") else ""
        raise UserError(f"other: '{other_dir}' and '{run_dir}' trained different tasks ({difference}): compare runs "
                        f"of the same task{hint}")


def analyze_run(run_dir: str | Path, other: str | Path | None = None, n_probe: int = 1000, *, seed: int = 0,
                debiased: bool = False, layers: Sequence[str] | None = None, sequence: str = "mean",
                checkpoint: str = "last", plugins: Sequence[str] = (), trust_plugins: bool = False) -> dict:
    """Representations of a trained run: writes <run_dir>/representations.json, cka.png and probes.png; returns the
    JSON's content.

    Probe set: drawn from the run's task with `seed` (not the run's seed, so runs of a task see the same samples):
    `n_probe` samples in the outputs form, `n_probe` per skill in the control form. Activations: `capture` of the
    run's model (default layers, or `layers`, for both runs).

    JSON keys:
    - `cka`: {"run", "other", "debiased", "n_samples", "layers", "other_layers", "matrix", "layer_kinds",
      "other_layer_kinds" ({layer: its class, e.g. Linear, ReLU}, as `probes` has too)}: linear CKA of every
      layer of this run (rows) against every layer of `other`'s model on the same inputs (columns), or against
      itself when other is None. `other` must be a run of the same task (`task_difference`: for a task whose
      structure is drawn from the data seed, such as multitask_parity and the RHM, the same data seed), else a
      one-line UserError naming the difference.
    - `probes`: {"metric" (accuracy, or r2 for regression skills), "train_fraction", "ridge", "split",
      "n_distinct_inputs", "layers", "layer_kinds", "skills", "held_out": {layer: {skill: score}}, "chance": {skill: score},
      "parts": {layer: {composite: {part: score}}}, "across_skills" (control form): {"held_out": {layer: score},
      "chance"}, "notes"}: per layer and skill, the held-out score of a linear probe for the skill's targets on its
      samples (outputs form: all samples; control form: the skill's), the split keeping each distinct input on one
      side (the probe set is drawn with replacement: no held-out input is among the fit rows). A skill whose samples
      all have one class (the RHM, whose skills are its classes) has no score (null, with a note): a probe scores 1.0
      there on any features. In the control form `across_skills` probes the targets on every skill's samples (what
      a shared head must decode; for the RHM, the class). For a composite, also its parts' targets on the
      composite's samples, when the task gives them (`part_targets`).
    - `effective_dim`: {"layers", "n_samples", "n_samples_per_skill", "overall": {layer: value}, "per_skill":
      {layer: {skill: value}}, "overall_debiased", "per_skill_debiased", "bias"}: the participation ratio on all
      probe samples and on each skill's (outputs form: the same samples, so the same value); the plain value is
      biased low (about d/(1 + d/n) for d isotropic directions in n samples), the debiased one is not
      (`effective_dimension`).
    Undefined values (a constant layer, a diverged run) are null.
    """
    run_dir = Path(run_dir)
    if n_probe < 4:
        raise UserError(f"n_probe: must be ≥ 4 (a probe needs samples to fit and to test), got {n_probe}")
    module = load_run(run_dir, checkpoint, plugins=plugins, trust_plugins=trust_plugins)
    task = module.task
    batches = probe_batches(task, n_probe, seed)
    x = torch.cat([b["x"] for b in batches])
    skill = torch.cat([b["skill"] for b in batches]) if task.form == "control" else None
    acts = capture(module.model, model_inputs(module, x, skill), layers, sequence=sequence, batch_size=CAPTURE_CHUNK)
    if other is None:
        other_dir, other_acts = run_dir, acts
    else:
        other_dir = Path(other)
        other_module = load_run(other_dir, key="other", plugins=plugins, trust_plugins=trust_plugins)
        check_same_task(module, other_module, run_dir, other_dir)
        other_acts = capture(other_module.model, model_inputs(other_module, x, skill), layers, sequence=sequence,
                             batch_size=CAPTURE_CHUNK)
    names, other_names, matrix = cka_matrix(acts, other_acts, debiased)

    result = {
        "cka": {"run": str(run_dir), "other": str(other_dir), "debiased": debiased, "n_samples": len(x),
                "layers": names, "other_layers": other_names, "matrix": matrix.tolist(),
                "layer_kinds": layer_kinds(module.model, names),
                "other_layer_kinds": layer_kinds((module if other is None else other_module).model, other_names)},
        "probes": probe_tables(task, acts, batches, n_probe, seed),
        "effective_dim": dimension_tables(task, acts, n_probe),
    }
    result["probes"]["layer_kinds"] = layer_kinds(module.model, result["probes"]["layers"])
    result["checkpoint"] = checkpoint
    result = _without_nan(result)
    suffix = "" if checkpoint == "last" else f"-{checkpoint}"  # learned-<skill>: beside the final weights' report
    write_json(run_dir / f"{REPORT_FILE[: -len('.json')]}{suffix}.json", result)
    plot_cka(run_dir / f"cka{suffix}.png", result["cka"])
    plot_probes(run_dir / f"probes{suffix}.png", result["probes"])
    return result


def skill_slices(task, n_probe: int) -> list[slice]:
    """Each skill's rows of a capture on `probe_batches`: outputs form, every row (each carries every skill's target);
    control form, the skill's own n_probe rows (drawn skill after skill)."""
    if task.form == "outputs":
        return [slice(None)] * task.n_skills
    return [slice(k * n_probe, (k + 1) * n_probe) for k in range(task.n_skills)]


def probe_tables(task, acts: Mapping[str, torch.Tensor], batches: list[dict[str, torch.Tensor]], n_probe: int,
                 seed: int) -> dict:
    """The `probes` entry of representations.json (see `analyze_run`): held-out probe scores per layer and skill,
    per composite and part, and, in the control form, across skills; the split keeps repeated inputs on one side."""
    rows = skill_slices(task, n_probe)
    targets = [batches[0]["y"][:, k] for k in range(task.n_skills)] if task.form == "outputs" else [b["y"] for b in batches]
    groups = input_groups(torch.cat([b["x"] for b in batches]))
    names, skills = list(acts), list(task.skills)
    classify = is_classification(targets[0])
    one_class = [s for k, s in enumerate(skills) if classify and len(torch.unique(targets[k])) == 1]

    def score(features: torch.Tensor, target: torch.Tensor, rows_: Any = slice(None)) -> float:
        return probe(features[rows_], target, seed=seed, groups=groups[rows_])

    held_out = {name: {s: None if s in one_class else score(acts[name], targets[k], rows[k]) for k, s in enumerate(skills)}
                for name in names}
    parts = part_targets(task, batches, n_probe, seed)
    part_scores = {name: {skills[c]: {skills[p]: score(acts[name], t, rows[c]) for p, t in by_part.items()}
                          for c, by_part in parts.items()} for name in names}
    out = {"metric": "accuracy" if classify else "r2", "train_fraction": TRAIN_FRACTION, "ridge": RIDGE,
           "split": "by distinct input: no held-out input is among the fit rows", "n_distinct_inputs": int(groups.max()) + 1,
           "layers": names, "skills": skills, "held_out": held_out,
           "chance": {s: chance_score(targets[k]) for k, s in enumerate(skills)}, "parts": part_scores, "notes": []}
    if task.form == "control":
        everything = torch.cat(targets)
        out["across_skills"] = {"held_out": {name: score(acts[name], everything) for name in names},
                                "chance": chance_score(everything)}
    if one_class:
        out["notes"].append(f"{', '.join(one_class)}: one class on the skill's own samples (the skill is the class), "
                            "where a probe scores 1.0 on any features: no score per skill (null); across_skills "
                            "probes the class on every skill's samples")
    return out


def dimension_tables(task, acts: Mapping[str, torch.Tensor], n_probe: int) -> dict:
    """The `effective_dim` entry of representations.json (see `analyze_run`): plain and debiased participation ratios
    on all probe samples and on each skill's."""
    rows = skill_slices(task, n_probe)
    names, skills = list(acts), list(task.skills)
    out: dict[str, Any] = {"layers": names, "n_samples": len(next(iter(acts.values()))) if acts else 0,
                           "n_samples_per_skill": n_probe if task.form == "control" else None}
    for key, debiased in (("", False), ("_debiased", True)):
        out["overall" + key] = {name: effective_dimension(acts[name], debiased) for name in names}
        out["per_skill" + key] = {name: {s: effective_dimension(acts[name][rows[k]], debiased) for k, s in enumerate(skills)}
                                  for name in names}
    out["bias"] = ("overall/per_skill: the sample participation ratio, biased low (about d/(1 + d/n) for d isotropic "
                   "directions in n samples); *_debiased: with the unbiased estimate of Σλ², bias of order 1/n")
    return out


def report_file(checkpoint: str = "last") -> str:
    """representations.json for the final weights, representations-learned-<skill>.json for a learn-step checkpoint."""
    return REPORT_FILE if checkpoint == "last" else f"representations-{checkpoint}.json"


def _without_nan(value: Any) -> Any:
    """NaN → None, everywhere: JSON has no NaN (json.dumps would write a token other readers reject)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


# ---- plots --------------------------------------------------------------------------------------------------------

def plot_cka(path: Path, cka: Mapping) -> None:
    """Heatmap of the CKA matrix: this run's layers down, the other run's across (undefined entries blank)."""
    rows, cols = cka["layers"], cka["other_layers"]
    values = torch.tensor([[math.nan if v is None else v for v in row] for row in cka["matrix"]], dtype=torch.float64)
    fig, axes = figure(1, 1, (max(5.0, 0.4 * len(cols) + 3), max(4.0, 0.4 * len(rows) + 2)))
    ax = axes[0][0]
    image = ax.imshow(values.numpy(), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(cols)), labelled(cols, cka.get("other_layer_kinds")), rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), labelled(rows, cka.get("layer_kinds")), fontsize=7)
    ax.set_xlabel(f"layers of {Path(cka['other']).name}")
    ax.set_ylabel(f"layers of {Path(cka['run']).name}")
    fig.colorbar(image, ax=ax, label=f"{'debiased ' if cka['debiased'] else ''}linear CKA")
    ax.set_title(f"linear CKA on {cka['n_samples']} probe samples", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_probes(path: Path, probes: Mapping) -> None:
    """Held-out probe score per layer (in forward order), one line per skill, its chance level dotted."""
    layers, skills = probes["layers"], probes["skills"]
    fig, axes = figure(1, 1, (max(6.0, 0.4 * len(layers) + 3), 4))
    ax = axes[0][0]
    colors = colormap("tab10")
    for k, skill in enumerate(skills):
        values = [probes["held_out"][layer][skill] for layer in layers]
        ax.plot(range(len(layers)), [math.nan if v is None else v for v in values], marker="o", ms=3, lw=1.2,
                color=colors(k % 10), label=skill)
        ax.axhline(probes["chance"][skill], color=colors(k % 10), lw=0.8, ls=":")
    if "across_skills" in probes:  # the control form: the target on every skill's samples (the RHM: the class)
        across = probes["across_skills"]
        ax.plot(range(len(layers)), [math.nan if across["held_out"][layer] is None else across["held_out"][layer]
                                     for layer in layers], marker="s", ms=3, lw=1.6, color="black", label="across skills")
        ax.axhline(across["chance"], color="black", lw=0.8, ls=":")
    ax.set_xticks(range(len(layers)), labelled(layers, probes.get("layer_kinds")), rotation=90, fontsize=7)
    ax.set_ylabel(f"held-out {probes['metric']}")
    if probes["metric"] == "accuracy":
        ax.set_ylim(0, 1.02)
    ax.set_title(f"linear probes per layer (ridge, {probes['train_fraction']:.0%} fit / rest held out; dotted: chance)",
                 fontsize=10)
    ax.legend(fontsize=7, ncol=max(1, len(skills) // 8))
    fig.tight_layout()
    save_figure(fig, path)


# ---- across the runs of a comparison ------------------------------------------------------------------------------


def compare_representations(directory: Path, seeds: Mapping[str, Sequence[int]], baseline: str, n_probe: int = 500,
                            seed: int = 0) -> dict:
    """For a comparison whose runs wrote representations.json (analysis.representations=true): per arm, the median
    over seed pairs of each layer's CKA with the same layer of another seed (is what is learned universal across
    seeds?), and the median held-out probe score per layer and skill (from the runs' own reports); across arms, the
    median over seeds of the layer × layer CKA of each arm's run against the baseline's run of the same seed (did
    the intervention change what is learned, or only when?). Medians are `stats.median` (the mean of the middle two
    for an even count).

    Only runs of one task are compared (`task_difference`): the seeds of a task whose structure is drawn from the
    data seed (multitask_parity, the RHM, with data.seed unset) trained different tasks, and are not paired (a note
    says so; give the runs one data.seed). Each group of runs of one task is probed with one probe set of
    `n_probe` samples (per skill in the control form) drawn from that task. `seeds_differ_in` says, per arm, what
    the paired seeds differ in. An arm whose runs trained another task than the baseline's run of the same seed (a
    swept input size) has no CKA against it, with a note."""
    runs = {arm: {s: Path(directory) / arm / f"seed{s}" for s in arm_seeds} for arm, arm_seeds in seeds.items()}
    modules = {arm: {s: load_run(run) for s, run in arm_runs.items()} for arm, arm_runs in runs.items()}
    if not any(modules.values()):
        return {}
    # group the runs by task; each group is probed on its own task's samples
    tasks: list = []
    group: dict[str, dict[int, int]] = {}
    for arm, by_seed in modules.items():
        group[arm] = {}
        for s, module in by_seed.items():
            index = next((i for i, t in enumerate(tasks) if task_difference(t, module.task) is None), None)
            if index is None:
                tasks.append(module.task)
                index = len(tasks) - 1
            group[arm][s] = index
    inputs = []
    for task in tasks:
        batches = probe_batches(task, n_probe, seed)
        inputs.append((torch.cat([b["x"] for b in batches]),
                       torch.cat([b["skill"] for b in batches]) if task.form == "control" else None))
    acts = {arm: {s: capture(module.model, model_inputs(module, *inputs[group[arm][s]]), batch_size=CAPTURE_CHUNK)
                  for s, module in by_seed.items()} for arm, by_seed in modules.items()}
    out: dict[str, Any] = {"n_samples": len(inputs[0][0]), "layers": {}, "cross_seed_cka": {}, "cross_seed_pairs": {},
                           "seeds_differ_in": {}, "vs_baseline": {}, "probes": {}, "notes": []}
    notes = out["notes"]
    for arm, by_seed in acts.items():
        layers = list(next(iter(by_seed.values()))) if by_seed else []
        out["layers"][arm] = layers
        pairs = [(a, b) for a, b in itertools.combinations(sorted(by_seed), 2) if group[arm][a] == group[arm][b]]
        out["cross_seed_pairs"][arm] = [list(pair) for pair in pairs]
        out["cross_seed_cka"][arm] = {
            layer: median([linear_cka(by_seed[a][layer], by_seed[b][layer]) for a, b in pairs
                           if layer in by_seed[a] and layer in by_seed[b]]) for layer in layers}
        out["seeds_differ_in"][arm] = seeds_differ_in(modules[arm], pairs)
        unpaired = sorted(s for s in by_seed if not any(s in pair for pair in pairs))
        if len(by_seed) > 1 and unpaired:
            other = next(s for s in by_seed if s != unpaired[0])
            difference = task_difference(modules[arm][other].task, modules[arm][unpaired[0]].task)
            notes.append(f"{arm}: seed{'s' if len(unpaired) > 1 else ''} {', '.join(map(str, unpaired))} trained a task "
                         f"no other seed trained (seed {unpaired[0]} vs {other}: {difference}): no CKA across seeds with "
                         "them; give the runs one data.seed")
        reports = [read_json(runs[arm][s] / REPORT_FILE) for s in by_seed
                   if (runs[arm][s] / REPORT_FILE).is_file()]
        if reports:
            out["probes"][arm] = median_probes(reports)
        if arm != baseline and baseline in acts:
            common = [s for s in by_seed if s in acts[baseline] and group[baseline][s] == group[arm][s]]
            apart = [s for s in by_seed if s in acts[baseline] and s not in common]
            if apart:
                difference = task_difference(modules[baseline][apart[0]].task, modules[arm][apart[0]].task)
                notes.append(f"{arm}: its runs trained another task than {baseline}'s of the same seed (seed {apart[0]}: "
                             f"{difference}): no CKA against {baseline} for seed{'s' if len(apart) > 1 else ''} "
                             f"{', '.join(map(str, apart))}")
            matrices = [cka_matrix(acts[baseline][s], by_seed[s])[2] for s in common]
            if matrices:
                base_layers = list(acts[baseline][common[0]])
                matrix = [[median([m[i, j].item() for m in matrices]) for j in range(len(layers))]
                          for i in range(len(base_layers))]
                # the same layer: by name, or by position in the forward pass when the architectures name them apart
                same = [(b, b) for b in base_layers if b in layers] if set(base_layers) & set(layers) else \
                    list(zip(base_layers, layers)) if len(base_layers) == len(layers) else []
                out["vs_baseline"][arm] = {"baseline_layers": base_layers, "layers": layers, "seeds": common,
                                           "matrix": matrix,
                                           "same_layer": [[b, a, matrix[base_layers.index(b)][layers.index(a)]]
                                                          for b, a in same]}
    return _without_nan(out)


def seeds_differ_in(by_seed: Mapping[int, Any], pairs: Sequence[tuple[int, int]]) -> str | None:
    """What the paired runs of an arm differ in, in words (None without pairs): always their initialisation and the
    order of their batches (the run seed); also the data seed's draws when it differs (the training pool and the
    held-out set; the task is the same, its structure not being drawn from the data seed)."""
    paired = sorted({s for pair in pairs for s in pair})
    if not paired:
        return None
    data_seeds = sorted({by_seed[s].task.seed for s in paired})
    task = by_seed[paired[0]].task.cfg.name
    text = f"seeds {', '.join(map(str, paired))}: initialisation and batch sampling (the run seed)"
    if len(data_seeds) == 1:
        return text + f"; one task and data (data seed {data_seeds[0]})"
    return text + (f", and the training pool and held-out set (data seeds {', '.join(map(str, data_seeds))}); one task "
                   f"({task}'s structure is not drawn from the data seed)")


def median_probes(reports: Sequence[Mapping]) -> dict:
    """Per layer and skill (and across skills, in the control form), the median held-out probe score over the runs'
    representations.json reports."""
    probes = reports[0]["probes"]
    out = {"metric": probes["metric"], "held_out": {
        layer: {sk: median([r["probes"]["held_out"].get(layer, {}).get(sk) for r in reports]) for sk in probes["skills"]}
        for layer in probes["layers"]}}
    if "across_skills" in probes:
        out["across_skills"] = {layer: median([r["probes"].get("across_skills", {}).get("held_out", {}).get(layer)
                                               for r in reports]) for layer in probes["layers"]}
    notes = probes.get("notes", [])
    if notes:
        out["notes"] = list(notes)
    return out


def plot_comparison(path: Path, result: Mapping) -> None:
    """Left: each arm's cross-seed CKA per layer; right: one heatmap per arm of its CKA against the baseline."""
    arms = list(result["layers"])
    others = list(result["vs_baseline"])
    fig, axes = figure(1, 1 + len(others), (5 + 4 * len(others), 4))
    ax = axes[0][0]
    colors = colormap("tab10")
    for i, arm in enumerate(arms):
        layers = result["layers"][arm]
        values = [result["cross_seed_cka"][arm][layer] for layer in layers]
        ax.plot(range(len(layers)), [math.nan if v is None else v for v in values], "o-", color=colors(i % 10), label=arm)
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=7)
    ax.set(ylim=(0, 1.05), ylabel="CKA between seeds (median)", title="universal across seeds?")
    ax.legend(fontsize=7)
    for j, arm in enumerate(others, start=1):
        v = result["vs_baseline"][arm]
        matrix = [[math.nan if c is None else c for c in row] for row in v["matrix"]]
        image = axes[0][j].imshow(matrix, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        axes[0][j].set_yticks(range(len(v["baseline_layers"])), v["baseline_layers"], fontsize=7)
        axes[0][j].set_xticks(range(len(v["layers"])), v["layers"], rotation=45, ha="right", fontsize=7)
        axes[0][j].set_title(f"{arm} (columns) vs baseline (rows)", fontsize=9)
        fig.colorbar(image, ax=axes[0][j], fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)


def comparison_markdown(result: Mapping) -> str:
    lines = ["", "## Representations (analysis.representations=true)", "",
             f"Linear CKA on {result['n_samples']} probe samples drawn from the task; medians over seed pairs (within an "
             "arm) or over seeds (against the baseline, same seed).", ""]
    for arm, layers in result["layers"].items():
        versus = result["vs_baseline"].get(arm)
        same = {a: (b, c) for b, a, c in versus["same_layer"]} if versus else {}
        differ = result.get("seeds_differ_in", {}).get(arm)
        lines += [f"{arm}:" + (f" CKA across {differ}." if differ else " no CKA across seeds (fewer than two runs of "
                                                                       "one task)."), "",
                  "| layer | CKA across seeds |" + (" CKA vs the baseline's layer |" if versus else ""),
                  "|---|---|" + ("---|" if versus else "")]
        for layer in layers:
            across = result["cross_seed_cka"][arm].get(layer)
            row = f"| {layer} | {'—' if across is None else f'{across:.2f}'} |"
            if versus:
                value = same.get(layer, (None, None))
                row += " — |" if value[1] is None else f" {value[1]:.2f} ({value[0]}) |"
            lines.append(row)
        lines.append("")
    for arm, probes in result["probes"].items():
        skills = list(next(iter(probes["held_out"].values())))
        across = probes.get("across_skills")
        columns = skills + (["across skills"] if across else [])
        lines += ["", f"Held-out linear probe {probes['metric']} per layer and skill, {arm} (median over seeds):", "",
                  "| layer | " + " | ".join(columns) + " |", "|---" * (1 + len(columns)) + "|"]
        for layer, row in probes["held_out"].items():
            values = [row[s] for s in skills] + ([across.get(layer)] if across else [])
            lines.append(f"| {layer} | " + " | ".join("—" if v is None else f"{v:.2f}" for v in values) + " |")
        lines += [f"note: {arm}: {n}" for n in probes.get("notes", [])]
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines) + "\n"
