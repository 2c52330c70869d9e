"""A theory run's configuration: a dataclass schema, filled in layers like `fit`'s.

    schema defaults  ←  recipes/theory/<recipe>.yaml  ←  key=value on the command line

`model` names the toy model (geometry | resource | domino); its section (`geometry.*`, `resource.*`, `domino.*`)
holds its parameters, and `optim.*` (the Geometry model's optimizer) takes the same keys as `fit`'s, from
conf/defaults.yaml. Mistakes are one line naming the key, as for `fit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from skilltrain.config import (
    load_defaults,
    load_plugins_of,
    merge,
    optim_schema,
    parse_overrides,
    recipe_description,
    recipe_layer,
    recipe_names,
    recipe_sections,
    require,
    validate_section,
)
from skilltrain.errors import UserError, unknown
from skilltrain.seeds import check_seed
from skilltrain.theory.domino import DominoConfig
from skilltrain.theory.geometry import GeometryConfig
from skilltrain.theory.resource import ResourceConfig
from skilltrain.theory.scaling import ScalingConfig

SECTIONS = ("geometry", "resource", "domino", "scaling")
MODELS = {"geometry": "parameters moving along skills' task vectors, trained by an optimizer on minibatches of task ids",
          "resource": "skills sharing one update budget η against wasted resources N0 (with prerequisite gates)",
          "domino": "skills learned one at a time, each in t0 = 1/η_eff; modules learn in parallel"}


@dataclass
class SkillsConfig:
    """The skills of a theory run: their names and frequencies p."""

    n: int | None = None  # how many, when neither names nor frequencies say it
    names: list[str] | None = None  # default: T1, T2, …
    frequencies: list[float] | None = None  # p_i; default: zipf_alpha
    zipf_alpha: float | None = None  # p_i ∝ i^−α (normalised); null with no frequencies: equal p
    # true: p / Σp; false: p as given (the weights of the paper's Fig 12); null: the Geometry model normalises, the
    # Resource and Domino models take p as given (as the paper's scripts)
    normalize: bool | None = None


@dataclass
class LevelMetric:
    threshold: float = 0.9  # a skill is learned at the first step its skill level s_i reaches this


@dataclass
class TheoryStop:
    when_all_learned: bool = False  # end once every skill is learned, after `patience` more steps (compare sets it)
    patience: int = 100


@dataclass
class TheoryConfig:
    recipe: str | None = None  # a name from recipes/theory/ or a path to a YAML file
    model: str = "resource"  # geometry | resource | domino
    seed: int = 1  # task vectors and minibatches (geometry); the resource and domino models are deterministic
    out_dir: str | None = None  # null: runs/theory/<recipe or model>/<timestamp>
    overwrite: bool = False
    steps: int = 1000
    log_every: int | None = None  # steps between rows of metrics.csv; null: about 500 rows
    skills: SkillsConfig = field(default_factory=SkillsConfig)
    metric: LevelMetric = field(default_factory=LevelMetric)
    stop: TheoryStop = field(default_factory=TheoryStop)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    resource: ResourceConfig = field(default_factory=ResourceConfig)
    domino: DominoConfig = field(default_factory=DominoConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)  # scaling.dims set: a sweep (geometry model only)
    optim: Any = None  # the Geometry model's optimizer: fit's optim.* keys and defaults
    plugins: list[str] = field(default_factory=list)  # modules or .py files registering optimizers

    def skill_names(self) -> list[str]:
        s = self.skills
        n = len(s.names) if s.names else len(s.frequencies) if s.frequencies else s.n or 2
        return list(s.names) if s.names else [f"T{i}" for i in range(1, n + 1)]

    def frequencies(self) -> list[float]:
        s, k = self.skills, len(self.skill_names())
        weights = [float(p) for p in s.frequencies] if s.frequencies else [i ** -(s.zipf_alpha or 0.0) for i in range(1, k + 1)]
        normalize = s.normalize if s.normalize is not None else (self.model == "geometry" or not s.frequencies)
        return [w / sum(weights) for w in weights] if normalize else weights


def theory_recipe_names() -> list[str]:
    return recipe_names("theory")


def theory_recipe_description(name: str) -> str:
    return recipe_description(name, "theory")


def is_theory_recipe(recipe: str) -> bool:
    """A shipped theory recipe's name, or a recipe file for a toy model: its `model` is a toy model's name (fit's is
    a mapping), or it has a toy model's section (`geometry`, `resource`, `domino`, `scaling`) and no `data`."""
    if recipe in theory_recipe_names():
        return True
    if recipe.endswith((".yaml", ".yml")) and Path(recipe).is_file():
        try:
            layer = OmegaConf.load(recipe)
        except Exception:
            return False
        return str(layer.get("model")) in MODELS or ("data" not in layer and any(k in layer for k in SECTIONS))
    return False


def recipe_arms(recipe: str) -> tuple[dict, dict]:
    return recipe_sections(recipe, "theory")


def load_theory_config(args: list[str]) -> DictConfig:
    """Compose and validate a theory run's config from `key=value` arguments (recipe=… first, if given)."""
    cli = parse_overrides(list(args))
    recipe = cli.get("recipe")
    layers = [*([recipe_layer(str(recipe), "theory")] if recipe else []), ("the command line", cli)]
    raw = OmegaConf.merge(*[layer for _, layer in layers])
    resolved = load_plugins_of(raw)
    schema = OmegaConf.structured(TheoryConfig)
    schema.optim = OmegaConf.merge(optim_schema(raw), load_defaults().optim)
    cfg = merge(schema, layers)
    cfg.plugins = resolved
    _validate(cfg)
    return cfg


def _validate(cfg: DictConfig) -> None:
    if cfg.model not in MODELS:
        raise unknown("theory model", cfg.model, MODELS, key="model")
    require(cfg.steps >= 1, "steps", f"must be ≥ 1, got {cfg.steps}")
    check_seed(cfg.seed, "seed")
    require(cfg.log_every is None or cfg.log_every >= 1, "log_every", f"must be ≥ 1 or null, got {cfg.log_every}")
    require(0 < cfg.metric.threshold < 1, "metric.threshold", f"a skill level must be in (0, 1), got {cfg.metric.threshold}")
    require(cfg.stop.patience >= 0, "stop.patience", f"must be ≥ 0, got {cfg.stop.patience}")
    s = cfg.skills
    lengths = {k: len(v) for k, v in (("skills.names", s.names), ("skills.frequencies", s.frequencies)) if v}
    require(len(set(lengths.values())) <= 1, "skills.frequencies",
            f"has {lengths.get('skills.frequencies')} values for {lengths.get('skills.names')} skills.names")
    require(s.n is None or s.n >= 1, "skills.n", f"must be ≥ 1, got {s.n}")
    require(not (s.frequencies and s.zipf_alpha is not None), "skills.zipf_alpha",
            "give skills.frequencies or skills.zipf_alpha, not both")
    for i, p in enumerate(s.frequencies or []):
        require(p > 0, f"skills.frequencies[{i}]", f"must be > 0, got {p}")
    names = OmegaConf.to_object(cfg).skill_names()
    require(len(set(names)) == len(names) and all(n and "/" not in n for n in names), "skills.names",
            "must be distinct, non-empty, without '/'")
    require(not cfg.scaling.dims or cfg.model == "geometry", "scaling.dims", "a scaling sweep needs model=geometry")
    for key in ("geometry", "resource", "domino", "scaling", "optim"):
        validate_section(key, OmegaConf.to_object(cfg[key]))
    if cfg.model == "resource":
        from skilltrain.theory.resource import gates_from

        gates_from(OmegaConf.to_container(cfg.resource.prerequisites), names)
        c = cfg.resource.overlap
        require(c is None or (len(c) == len(names) and all(len(row) == len(names) for row in c)), "resource.overlap",
                f"expected a {len(names)} × {len(names)} matrix (t_i·t_j) or null")
    if cfg.model == "geometry" and (cfg.optim.scheduler != "constant" or cfg.optim.warmup_steps):
        key = "optim.scheduler" if cfg.optim.scheduler != "constant" else "optim.warmup_steps"
        raise UserError(f"{key}: theory runs use a constant learning rate")
    if cfg.scaling.dims:  # checked before a sweep writes anything
        require(cfg.geometry.loss == "ce", "geometry.loss", "the scaling sweep uses the CE loss (as the paper)")
        require(cfg.geometry.task_vectors in ("random", "modular"), "geometry.task_vectors",
                "the scaling sweep takes random (overlapping) or modular (one coordinate per task, none beyond N) vectors")
        require(cfg.steps >= cfg.scaling.step_window[1], "steps",
                f"must reach the end of scaling.step_window ({cfg.scaling.step_window[1]})")
