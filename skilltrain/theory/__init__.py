"""The paper's three toy models (arXiv 2501.12391) as simulators, and fitting them to real runs.

- `geometry`: parameters moving along skills' task vectors, trained by an optimizer on minibatches of task ids;
- `resource`: skills sharing one update budget η against wasted resources N0, with prerequisite gates;
- `domino`: the Resource model's limit: skills one at a time, modules in parallel;
- `run`: `python -m skilltrain theory recipe=<name>` writes a run directory in the format of `fit`'s;
- `fit`: `python -m skilltrain fit-theory run_dir=<dir>` fits the Resource model to a run's per-skill curves;
- `scaling`: the Geometry model's parameter- and step-scaling exponents over a sweep.

Plain torch: no Lightning.
"""
