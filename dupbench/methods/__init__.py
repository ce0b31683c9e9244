"""Method adapters (one module per family) and the registry that names them."""

from dupbench.methods.base import Method
from dupbench.methods.registry import available, get_method, method_class, names, register

__all__ = ["Method", "available", "get_method", "method_class", "names", "register"]
