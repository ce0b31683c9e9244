"""Method adapters (one module per family) and the registry that names them."""

from dupbench.methods.base import Method
from dupbench.methods.registry import METHODS, available, get_method, method_class, names

__all__ = ["METHODS", "Method", "available", "get_method", "method_class", "names"]
