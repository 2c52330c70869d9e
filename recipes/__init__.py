"""Experiment recipes: one YAML file per experiment, shipped as package data of skilltrain.recipes."""
