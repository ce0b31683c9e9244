"""Seeds for a reproducible run: Python's, NumPy's and torch's random generators."""

from __future__ import annotations

import importlib.util
import random
import sys

import numpy as np


def seed_everything(seed: int, torch_too: bool = False) -> dict[str, int]:
    """Seed Python, NumPy and torch (when already imported, or ``torch_too`` and installed);
    returns what was seeded."""
    random.seed(seed)
    np.random.seed(seed)
    seeded = {"python": seed, "numpy": seed}
    torch = sys.modules.get("torch")
    if torch is None and torch_too and importlib.util.find_spec("torch") is not None:
        import torch
    if torch is not None:
        torch.manual_seed(seed)
        seeded["torch"] = seed
    return seeded
