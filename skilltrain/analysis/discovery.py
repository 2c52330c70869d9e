"""Skills without labels: find the skills of a run's data from how the network learned it (docs/discovery.md).

A run trained with `discover.record=true` keeps a fixed probe set of training samples and their per-sample loss
curves (skilltrain.callbacks.run.discover_recording). From them and the run's checkpoint:

- `gradients`: each probe sample's gradient of its loss (torch.func: functional_call + vmap(grad); a loop where the
  model cannot be vectorised), over every parameter or the chosen ones, normalised; the affinity of two samples is
  |cos θ| of their gradients (Michaud et al.'s quanta discovery, arXiv 2303.13506, clusters the angular similarity
  1 − arccos(cos θ)/π, their code ejmichaud/quantization-model, experiments/clustering-0; made sign-invariant here,
  see `gradient_affinity`).
- `loss_curves`: each sample's recorded loss curve, z-scored (its level and scale removed: what is left is *when*
  it falls); affinity exp(−d²/median d²) of the Euclidean distance d between two z-scored curves.
- `both`: the product of the two affinities (two samples are close only when both say so).

Clusters: scikit-learn's SpectralClustering on the precomputed affinity. `k=auto` takes the number of clusters at
the largest gap among the first min(30, n/2) eigenvalues of the affinity's normalised Laplacian (k ≥ 2), and reports
how clear that was: the largest gap over the second largest (≫ 1: clear; near 1: two choices about as good), and
the second-best k.

Where the probe has more than one true skill, the clusters are scored against them (adjusted Rand index, normalised
mutual information, a confusion table), next to a baseline that clusters the raw inputs with k-means (same k): a
task whose skills can be read off the inputs is no test of discovery.

Nothing here imports what trains a run: the model is rebuilt from the run's saved config and its checkpoint's weights
(skilltrain.analysis.representations.load_run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skilltrain.errors import UserError, require, unknown

METHODS = ("gradients", "loss_curves", "both")
K_MAX = 30  # k=auto looks at the first min(K_MAX, n/2) eigenvalues
LEARNED_FRACTION = 0.1  # a cluster is learned at the first recorded step where its mean loss ≤ 10% of its first one
GRADIENT_CHUNK = 256  # samples per vmap call


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise UserError("discover needs scikit-learn: pip install 'skilltrain[discover]' (or pip install scikit-learn)") from None


# ---- affinities ---------------------------------------------------------------------------------------------------

def gradient_affinity(features: torch.Tensor) -> np.ndarray:
    """[n, n] |cos θ| between the rows of `features` (a zero row: 0 to everything).

    Sign-invariant: with a cross-entropy loss, two samples of one skill with opposite labels have gradients that
    point in nearly opposite directions (∇loss = −(1 − p_y)·∇margin_y), so Michaud et al.'s angular similarity
    1 − arccos(cos θ)/π splits every skill by its label (measured on multitask_parity: docs/discovery.md)."""
    g = torch.nn.functional.normalize(features.double(), dim=1)
    return (g @ g.T).abs().clamp(0, 1).numpy()


def curve_affinity(losses: torch.Tensor) -> np.ndarray:
    """[n, n] affinity of the probe samples' loss curves ([T, n]): exp(−d²/median d²) between z-scored curves."""
    curves = losses.double().T  # [n, T]
    centred = curves - curves.mean(1, keepdim=True)
    scale = centred.std(1, keepdim=True)
    z = torch.where(scale > 1e-12, centred / scale.clamp(min=1e-12), torch.zeros_like(centred))
    d2 = torch.cdist(z, z).pow(2)
    off = d2[~torch.eye(len(d2), dtype=torch.bool)]
    median = float(off.median()) if len(off) else 1.0
    return torch.exp(-d2 / max(median, 1e-12)).numpy()


# ---- per-sample gradients -----------------------------------------------------------------------------------------

class _PerSampleLoss(torch.nn.Module):
    """A SkillModule's per-sample loss as a module's forward (for torch.func.functional_call)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, batch: dict) -> torch.Tensor:
        losses, _, mask, _ = self.module.loss_matrix(batch)
        return (losses.sum(1) if mask is None else torch.where(mask, losses, 0).sum(1)).sum()


def chosen_parameters(module, params: Sequence[str] | None) -> list[str]:
    """The names of the parameters whose gradients are compared: every trainable one, or those named (or under a
    named prefix) in `params`; a name that matches nothing is one line with the closest name."""
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    if not params:
        return names
    chosen = []
    for want in params:
        hits = [n for n in names if n == want or n.startswith(want + ".")]
        if not hits:
            raise unknown("parameter", want, names, key="params")
        chosen += [n for n in hits if n not in chosen]
    return chosen


def per_sample_gradients(module, probe: dict, params: Sequence[str] | None = None,
                         chunk: int = GRADIENT_CHUNK) -> torch.Tensor:
    """[n, P] gradients of each probe sample's loss with respect to the chosen parameters (flattened)."""
    from torch.func import functional_call, grad, vmap

    wrapper = _PerSampleLoss(module).eval()
    names = chosen_parameters(module, params)
    weights = {f"module.{n}": p.detach() for n, p in module.named_parameters() if n in names}
    fixed = {f"module.{n}": p.detach() for n, p in module.named_parameters() if n not in names}
    batch = {k: v for k, v in probe.items() if isinstance(v, torch.Tensor) and k in ("x", "y", "skill", "loss_mask")}
    n = len(batch["y"])

    def loss_of_one(w, sample):
        one = {k: v[None] for k, v in sample.items()}
        return functional_call(wrapper, {**w, **fixed}, (one,))

    out = []
    try:
        per_sample = vmap(grad(loss_of_one), in_dims=(None, 0))
        for start in range(0, n, chunk):
            part = {k: v[start:start + chunk] for k, v in batch.items()}
            g = per_sample(weights, part)
            out.append(torch.cat([g[k].flatten(1) for k in weights], dim=1))
    except (RuntimeError, NotImplementedError):  # a model vmap cannot batch: one sample at a time
        out = []
        tensors = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
        for i in range(n):
            loss = functional_call(wrapper, {**tensors, **fixed}, ({k: v[i:i + 1] for k, v in batch.items()},))
            grads = torch.autograd.grad(loss, list(tensors.values()), allow_unused=True)
            out.append(torch.cat([(torch.zeros_like(t) if g is None else g).flatten()
                                  for g, t in zip(grads, tensors.values())])[None])
    return torch.cat(out)


# ---- the number of clusters ---------------------------------------------------------------------------------------

def choose_k(affinity: np.ndarray, k_max: int = K_MAX) -> dict:
    """k=auto: {"k", "second_k", "gap_ratio", "eigenvalues"}: the k (≥ 2) at the largest gap λ_{k+1} − λ_k among the
    first min(k_max, n/2) eigenvalues of the normalised Laplacian; gap_ratio = largest gap / second largest."""
    from scipy.sparse.csgraph import laplacian

    n = len(affinity)
    m = max(3, min(k_max, n // 2))
    a = np.array(affinity, dtype=np.float64)
    np.fill_diagonal(a, 0)
    eig = np.linalg.eigvalsh(laplacian(a, normed=True))[: m + 1]
    gaps = np.diff(eig)  # gaps[i] = λ_{i+2} − λ_{i+1}: the gap after k = i + 1 clusters
    candidates = np.arange(1, len(gaps))  # k = 2 … m
    order = candidates[np.argsort(gaps[candidates])[::-1]]
    best, second = int(order[0]), int(order[1]) if len(order) > 1 else None
    ratio = float(gaps[best] / gaps[second]) if second is not None and gaps[second] > 0 else None
    return {"k": best + 1, "second_k": None if second is None else second + 1, "gap_ratio": ratio,
            "eigenvalues": [float(e) for e in eig]}


# ---- clustering and scores ----------------------------------------------------------------------------------------

def spectral_clusters(affinity: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    _sklearn()
    from sklearn.cluster import SpectralClustering

    return SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed,
                              n_init=10).fit_predict(affinity)


def input_clusters(x: torch.Tensor, k: int, seed: int = 0) -> np.ndarray:
    """The baseline: k-means on the raw inputs (flattened, as floats)."""
    _sklearn()
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x.flatten(1).double().numpy())


def scores(truth: np.ndarray, found: np.ndarray) -> dict:
    _sklearn()
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {"ari": float(adjusted_rand_score(truth, found)), "nmi": float(normalized_mutual_info_score(truth, found))}


def learn_step(steps: Sequence[int], mean_curve: np.ndarray) -> int | None:
    """The first recorded step at which the mean loss is ≤ LEARNED_FRACTION × its value at the first recorded step."""
    if len(mean_curve) == 0 or not mean_curve[0] > 0:
        return None
    below = np.nonzero(mean_curve <= LEARNED_FRACTION * mean_curve[0])[0]
    return int(steps[below[0]]) if len(below) else None


def relabel_by_learn_step(labels: np.ndarray, losses: np.ndarray, steps: Sequence[int]) -> np.ndarray:
    """Cluster ids in the order the clusters are learned (never-learned clusters last, larger first)."""
    ids = sorted(set(labels.tolist()))
    order = []
    for c in ids:
        step = learn_step(steps, losses[:, labels == c].mean(1))
        order.append((step if step is not None else math.inf, -(labels == c).sum(), c))
    new = {c: i for i, (_, _, c) in enumerate(sorted(order))}
    return np.array([new[c] for c in labels.tolist()])


def discover(probe: dict, steps: Sequence[int], losses: torch.Tensor, *, method: str = "gradients",
             k: int | str = "auto", module=None, params: Sequence[str] | None = None, seed: int = 0) -> tuple[dict, np.ndarray]:
    """(the discovered.json content, the affinity matrix) for a recorded probe set. `module`: the trained SkillModule
    (gradients and both)."""
    _sklearn()
    if method not in METHODS:
        raise unknown("method", method, METHODS, key="method")
    n = len(probe["y"])
    require(k == "auto" or (isinstance(k, int) and not isinstance(k, bool) and 2 <= k < n), "k",
            f"expected auto or a number of clusters in [2, {n - 1}] (the probe set has {n} samples), got '{k}'")
    require(len(steps) >= 2 or method == "gradients", "run_dir",
            f"the recording has {len(steps)} recorded step; the loss curves need ≥ 2 (train longer than "
            "trainer.log_every_n_steps)")
    parts = []
    if method in ("gradients", "both"):
        parts.append(gradient_affinity(per_sample_gradients(module, probe, params)))
    if method in ("loss_curves", "both"):
        parts.append(curve_affinity(losses))
    affinity = parts[0] if len(parts) == 1 else parts[0] * parts[1]
    auto = choose_k(affinity) if k == "auto" else None
    n_clusters = auto["k"] if auto else int(k)
    curves = losses.double().numpy()  # [T, n]
    labels = relabel_by_learn_step(spectral_clusters(affinity, n_clusters, seed), curves, steps)

    result: dict[str, Any] = {"method": method, "k": n_clusters, "k_auto": auto, "n_samples": n, "seed": seed,
                              "affinity": AFFINITY[method], "learned": f"mean loss ≤ {LEARNED_FRACTION} × its first value"}
    names = list(probe.get("skill_names") or [])
    truth = probe["skill"].numpy() if "skill" in probe and len(names) > 1 else None
    if truth is not None:
        result.update(scores(truth, labels))
        result["input_baseline"] = scores(truth, input_clusters(probe["x"], n_clusters, seed))
        result["skills"] = names
        result["confusion"] = [[int(((labels == c) & (truth == s)).sum()) for s in range(len(names))]
                               for c in range(n_clusters)]
    else:
        result.update({"ari": None, "nmi": None, "input_baseline": {"ari": None, "nmi": None}, "skills": None,
                       "confusion": None})
    result["steps"] = [int(s) for s in steps]
    result["clusters"] = [f"c{c}" for c in labels.tolist()]
    result["cluster_info"] = []
    for c in range(n_clusters):
        members = labels == c
        mean = curves[:, members].mean(1) if members.any() else np.full(len(steps), np.nan)
        info = {"name": f"c{c}", "size": int(members.sum()), "learn_step": learn_step(steps, mean),
                "mean_curve": [float(v) for v in mean]}
        if truth is not None:
            counts = np.bincount(truth[members], minlength=len(names))
            info["majority_skill"], info["purity"] = names[int(counts.argmax())], float(counts.max() / max(1, members.sum()))
        result["cluster_info"].append(info)
    return result, affinity


AFFINITY = {"gradients": "|cos| between normalised per-sample gradients",
            "loss_curves": "exp(−d²/median d²) between z-scored per-sample loss curves",
            "both": "the product of the gradient and loss-curve affinities"}


# ---- a run --------------------------------------------------------------------------------------------------------

def read_recording(run_dir: Path) -> tuple[dict, list[int], torch.Tensor]:
    """(probe, steps, losses) of a run trained with discover.record=true; one line when it has none."""
    from skilltrain.registry import TASKS
    from skilltrain.rundir import RunDir

    run = RunDir(run_dir)
    run.require("config", kind="a skilltrain training run")
    recorded = run.read_discover_recording()
    if recorded is None:
        name = str((run.read_config() or {}).get("data", {}).get("name", ""))
        if name in TASKS.names() and TASKS.get(name).obj.form == "outputs":
            raise UserError(f"run_dir: '{run_dir}' trained {name}, a task of the outputs form (every sample carries "
                            "every skill): its samples cannot be clustered into skills")
        raise UserError(f"run_dir: '{run_dir}' has no recording for discovery; train it with discover.record=true "
                        "(python -m skilltrain fit … discover.record=true)")
    probe, steps, losses = recorded
    require(len(steps) >= 1 and losses.shape[0] == len(steps), "run_dir", f"'{run_dir}': the recording is empty")
    return probe, [int(s) for s in steps], losses


def discover_run(run_dir: str | Path, method: str = "gradients", k: int | str = "auto", *, checkpoint: str = "last",
                 params: Sequence[str] | None = None, seed: int = 0, export: str | None = None,
                 plugins: Sequence[str] = (), trust_plugins: bool = False) -> dict:
    """Discover a recorded run's skills; writes <run_dir>/discovered.json and discovered.png (holding the run
    directory while it writes: refused while a fit trains in it), and, with `export`, the probe samples with their
    clusters as a Hugging Face dataset (`export_dataset`). Returns the JSON's content."""
    from skilltrain.analysis.representations import load_run
    from skilltrain.files import write_json
    from skilltrain.rundir import RunDir

    _sklearn()
    run_dir = Path(run_dir)
    if export is not None:
        require(not Path(export).exists(), "export", f"'{export}' already exists; discover never overwrites it "
                "(choose a new path)")
    probe, steps, losses = read_recording(run_dir)
    module = None
    if method in ("gradients", "both"):
        module = load_run(run_dir, checkpoint, plugins=plugins, trust_plugins=trust_plugins)
        if params is None:
            saved = RunDir(run_dir).read_config()
            recorded = saved.get("discover", {}).get("params") if saved is not None else None
            params = [str(p) for p in recorded] if recorded else None
    result, affinity = discover(probe, steps, losses, method=method, k=k, module=module, params=params, seed=seed)
    result["checkpoint"] = checkpoint if module is not None else None
    result["params"] = list(params) if params else None
    run = RunDir(run_dir)
    run.hold()  # one writer: not while a fit trains in this run
    try:
        write_json(run.discovered_path, result)
        plot_discovered(run.discovered_plot_path, result, affinity)
    finally:
        run.release()
    if export is not None:
        export_dataset(export, probe, result["clusters"])
    return result


def export_dataset(path: str | Path, probe: dict, clusters: Sequence[str]) -> int:
    """The probe samples with their discovered skills (`c0`, `c1`, …) as a Hugging Face dataset (save_to_disk), in
    export-data's columns (x, y, skill): `fit recipe=hf_example data.path=<path>` trains on the discovered skills.
    Where the probe has true skills, they are the column `true_skill`: `data.skill_column=true_skill
    data.mix_column=skill` measures every run on the true skills while data-sampling interventions mix over the
    discovered ones."""
    from skilltrain.data.export import save_dataset

    rows = {"x": probe["x"], "y": probe["y"], "skill": list(clusters)}
    names = list(probe.get("skill_names") or [])
    if "skill" in probe and len(names) > 1:
        rows["true_skill"] = [names[s] for s in probe["skill"].tolist()]
    return save_dataset(path, {"train": rows})["train"]


# ---- the figure ---------------------------------------------------------------------------------------------------

def plot_discovered(path: Path, result: dict, affinity: np.ndarray) -> None:
    """Left: the affinity matrix, samples ordered by cluster; right: each cluster's mean loss curve, learn step
    marked."""
    from skilltrain.analysis.plots import figure, skill_colors
    from skilltrain.files import save_figure

    labels = np.array([int(c[1:]) for c in result["clusters"]])
    order = np.argsort(labels, kind="stable")
    fig, axes = figure(1, 2, (12, 5))
    left, right = axes[0]
    image = left.imshow(affinity[np.ix_(order, order)], cmap="viridis", interpolation="nearest")
    bounds = np.cumsum(np.bincount(labels, minlength=result["k"]))[:-1]
    for b in bounds:
        left.axhline(b - 0.5, color="white", lw=0.5)
        left.axvline(b - 0.5, color="white", lw=0.5)
    left.set_title(f"affinity ({result['method']}), ordered by cluster")
    fig.colorbar(image, ax=left, fraction=0.046)
    colors = skill_colors(result["k"])
    for info, color in zip(result["cluster_info"], colors):
        label = f"{info['name']} (n={info['size']}" + (f", {info['majority_skill']}" if "majority_skill" in info else "") + ")"
        right.plot(result["steps"], info["mean_curve"], color=color, label=label)
        if info["learn_step"] is not None:
            right.axvline(info["learn_step"], color=color, ls=":", lw=0.8)
    right.set_xlabel("step")
    right.set_ylabel("mean per-sample loss")
    right.set_yscale("log")
    score = "" if result["ari"] is None else (f" · ARI {result['ari']:.2f} (inputs: {result['input_baseline']['ari']:.2f})")
    right.set_title(f"clusters' loss curves · k={result['k']}{score}")
    right.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
