"""One registration idiom for every extension point: methods, backbones, datasets, formats, searches.

An extension registers itself where it is defined, with a decorator::

    SEARCHES = Registry("search", modules=("dupbench.search.regions", ...))

    @SEARCHES.register("crop_resistant")
    def region_search(encodings, radius, **params): ...

The modules that hold registrations are named once, in the ``Registry`` call (``modules``), or
found by scanning a package (``packages``: every submodule not starting with ``_``, so a new
extension is one new file in that package); they are imported on the first lookup, and must
import heavy libraries inside functions, so that listing names stays fast.
Lookups of unknown names raise ``UnknownNameError`` with the nearest valid name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dupbench.errors import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """Names → extensions of one kind (``kind`` names it in error messages)."""

    def __init__(
        self, kind: str, modules: tuple[str, ...] = (), packages: tuple[str, ...] = ()
    ) -> None:
        self.kind = kind
        self.modules = modules
        self.packages = packages
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (default: its ``name``
        attribute, else its ``__name__``), lower-cased. Registering a second, different object
        under a taken name is an error: two extensions would silently shadow each other."""

        def decorate(obj: T) -> T:
            self.add(name or getattr(obj, "name", None) or obj.__name__, obj)  # type: ignore[attr-defined]
            return obj

        return decorate

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name`` (for objects that cannot be decorated, such as specs)."""
        key = name.lower()
        if key in self._entries and self._entries[key] is not obj:
            raise ValueError(f"{self.kind} name {name!r} is registered twice")
        self._entries[key] = obj

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.modules:
                importlib.import_module(module)
            for package in self.packages:
                path = importlib.import_module(package).__path__
                for info in pkgutil.iter_modules(path):
                    if not info.name.startswith("_"):
                        importlib.import_module(f"{package}.{info.name}")

    def get(self, name: str) -> T:
        """The extension called ``name`` (case-insensitive); ``UnknownNameError`` if none."""
        self._load()
        try:
            return self._entries[name.lower()]
        except KeyError:
            raise unknown_name(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, extension) pairs, sorted by name."""
        self._load()
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        self._load()
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)
