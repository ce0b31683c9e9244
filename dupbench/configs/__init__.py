"""Hydra configuration tree of ``dupbench run`` (package data; see config.yaml)."""
