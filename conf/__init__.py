"""Base defaults (defaults.yaml) and presets (presets/*.yaml), shipped as package data of skilltrain.conf."""
