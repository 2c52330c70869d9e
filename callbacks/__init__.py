"""Callbacks: the per-skill progress tracker and, one file each, the interventions (registered by name).

Installed as `skilltrain.callbacks` (never as a bare top-level `callbacks` module). Method cards: callbacks/README.md.
"""

from skilltrain.callbacks import gradient_rescaling, modular_routing, skill_reweighting  # noqa: F401  (register)
