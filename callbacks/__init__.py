"""Callbacks: the per-skill progress tracker and the interventions.

Interventions are grouped by what they change, one small class per method: loss_weighting.py, data_sampling.py,
gradient_editing.py, architecture.py, jacobian_weighting.py (the interface and the step timeline: intervention.py).
The public names users type map each mode to its class: skill_reweighting.py, gradient_rescaling.py,
modular_routing.py, jacobian_descent.py (imported here: they register the built-ins without importing Lightning).
Method cards: the classes' docstrings, and callbacks/README.md with the measured tables.

Installed as `skilltrain.callbacks` (never as a bare top-level `callbacks` module).
"""

from skilltrain.callbacks import gradient_rescaling, jacobian_descent, modular_routing, skill_reweighting  # noqa: F401  (register)
