"""Callbacks: the per-skill progress tracker and, one file each, the interventions (registered by name).

Installed as `skilltrain.callbacks` (never as a bare top-level `callbacks` module).
"""
