"""What a run config names, built: the method and the dataset."""

from __future__ import annotations

from dupbench.harness.schema import RunConfig


def build_method(cfg: RunConfig):
    """The configured method; ``benchmark.device`` goes to methods that take a device
    (``Method.takes_device``) unless the method's config sets one."""
    from dupbench.methods import get_method, method_class

    name = cfg.method.name
    params = dict(cfg.method.params)
    if method_class(name).takes_device and "device" not in params:
        params["device"] = cfg.benchmark.device
    return get_method(name, **params)


def load_dataset(cfg: RunConfig):
    """The configured dataset (an unknown name raises a message listing the valid ones)."""
    from dupbench.datasets import load_dataset

    return load_dataset(cfg.dataset.name, **dict(cfg.dataset.params))
