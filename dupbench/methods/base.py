"""The method contract: a class that declares what it is and turns images into codes.

A method never searches, never computes metrics and never writes files. Per-image methods (hashes,
digests) implement ``encode_image`` and inherit ``encode``, which loads through ``dupbench.images``,
records skips, shows progress and can fan out over worker processes. Batch methods (CNNs) override
``encode`` itself.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from abc import ABC
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from dupbench import images
from dupbench.cpus import worker_count
from dupbench.distance import DistanceKind
from dupbench.errors import MissingExtraError, UsageError, check_parameters
from dupbench.records import Encodings, Kind, Skipped, pack_bits
from dupbench.workers import parallel_map


class Method(ABC):
    """Base of every method adapter.

    Subclasses set the class attributes, name every parameter they take in their ``__init__``
    signature and pass them on to ``Method.__init__``, which records them (``params``) and refuses
    any name that no ``__init__`` of the class declares, so a typo is an error, not a default.
    ``size`` is the number of bits of a binary or exact code, or the embedding dimension of a
    float one.
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    distance: ClassVar[DistanceKind]
    #: default threshold for ``find_duplicates``: a Hamming distance, or a cosine similarity
    default_threshold: ClassVar[float] = 0
    #: the edits whose copies it still finds, in a few words (``dupbench methods``)
    robust_to: ClassVar[str] = ""
    #: how ``dupbench methods`` writes its threshold, where its own search scores something other
    #: than the distance (e.g. "score ≥ {:g}"); None: the distance's usual form
    threshold_form: ClassVar[str | None] = None
    #: optional packages it imports (module names) and the ``dupbench[extra]`` that installs them
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    #: it takes a ``device`` parameter (a torch device), which the harness sets from
    #: ``benchmark.device`` unless the method's own config does
    takes_device: ClassVar[bool] = False
    #: (backend, params) of the search a preset pairs it with; None: the distance's usual search
    preferred_search: tuple[str, dict[str, Any]] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("distance"), str):  # a name such as "hamming" is accepted
            cls.distance = DistanceKind(cls.distance)

    def __init__(self, **params: Any) -> None:
        if params:
            where = f"method {getattr(self, 'name', type(self).__name__)!r}"
            check_parameters(params, accepted_params(type(self)), where)
        self._params: dict[str, Any] = dict(params)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def size(self) -> int:
        raise NotImplementedError

    #: keyword arguments for ``images.load``; profiles override (e.g. no EXIF, native mode)
    @property
    def load_options(self) -> dict[str, Any]:
        return {}

    def encode_image(self, image: Image.Image) -> np.ndarray:
        """One decoded image → a 1-D bool bit vector (binary), uint64 words (exact) or float row."""
        raise NotImplementedError(f"{type(self).__name__} encodes in batches; call encode()")

    def encode_source(self, source: images.Source) -> np.ndarray:
        """Load one source with this method's options and encode it (raises ``ImageError``)."""
        return self.encode_image(images.load(source, **self.load_options))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"

    def encode(
        self,
        sources: Sequence[images.Source],
        ids: Sequence[str] | None = None,
        *,
        workers: int | None = 1,
        progress: bool = False,
    ) -> Encodings:
        """Encode many images; unreadable ones become ``Skipped`` records, never exceptions.
        ``workers``: processes, as ``cpus.worker_count`` (None: every usable core; 1: here)."""
        ids = self._ids_for(sources, ids)
        results = _map_sources(self, list(sources), workers, progress)
        kept, codes, skipped = [], [], []
        for k, (src, result) in enumerate(zip(sources, results)):
            if isinstance(result, Skipped):
                skipped.append(Skipped(images.source_name(src), result.reason))
            else:
                kept.append(k)
                codes.append(result)
        return self._encodings(kept, ids, self._stack(codes), skipped)

    @staticmethod
    def _ids_for(sources: Sequence[images.Source], ids: Sequence[str] | None) -> list[str]:
        """The ids to report: as given, or each source's name."""
        ids = [images.source_name(s) for s in sources] if ids is None else [str(i) for i in ids]
        if len(ids) != len(sources):
            raise ValueError(f"{len(sources)} sources but {len(ids)} ids")
        return ids

    def _encodings(
        self,
        kept: Sequence[int] | np.ndarray,
        ids: list[str],
        codes: np.ndarray,
        skipped: list[Skipped],
    ) -> Encodings:
        """Wrap the codes of the sources at positions ``kept`` (of ``ids``, one per source) with
        this method's self-description."""
        return Encodings(
            ids=[ids[k] for k in kept],
            codes=codes,
            kind=self.kind,
            distance=self.distance,
            size=self.size,
            method=self.name,
            params=self.params,
            skipped=skipped,
            rows=np.asarray(kept, dtype=np.int64),
        )

    def _stack(self, rows: list[np.ndarray]) -> np.ndarray:
        if self.kind == "binary":
            if not rows:
                return np.zeros((0, max(1, -(-self.size // 64))), dtype=np.uint64)
            return pack_bits(np.stack(rows))
        if self.kind == "exact":
            return (
                np.stack(rows).astype(np.uint64)
                if rows
                else np.zeros((0, self.size // 64), np.uint64)
            )
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.size), np.float32)


@functools.cache
def accepted_params(cls: type[Method]) -> tuple[str, ...]:
    """The keyword parameters ``cls`` takes: the named ones of every ``__init__`` in its MRO."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            named = p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
            if named and p.name not in names:
                names.append(p.name)
    return tuple(names)


def missing_packages(cls: type[Method]) -> list[str]:
    """The optional packages ``cls`` needs that are not installed (found without importing)."""
    return [m for m in cls.requires if importlib.util.find_spec(m) is None]


def check_installed(cls: type[Method]) -> None:
    """Raise ``MissingExtraError`` naming the extra when a package ``cls`` needs is missing."""
    missing = missing_packages(cls)
    if missing:
        raise MissingExtraError(
            f"the {cls.name} method needs {', '.join(missing)}, which is not installed: "
            f"pip install 'dupbench[{cls.extra}]'"
        )


def int_param(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int ≥ ``minimum`` (an integral float such as 16.0 is accepted), or a
    ``UsageError`` naming the parameter: strings and booleans are refused, not converted."""
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral or value < minimum:
        raise UsageError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _encode_one(method: Method, source: images.Source) -> np.ndarray | Skipped:
    try:
        return method.encode_source(source)
    except images.ImageError as e:
        return Skipped(images.source_name(source), str(e))


def _map_sources(method: Method, sources: list, workers: int | None, progress: bool) -> list:
    """Encode in order, over ``workers`` processes (``cpus.worker_count``); chunks of 16 to 256
    sources, about 8 per worker, so the method is pickled rarely and the bar still moves."""
    size = max(16, min(256, len(sources) // (worker_count(workers) * 8)))
    return parallel_map(
        functools.partial(_encode_one, method),
        sources,
        workers,
        desc=f"encode {method.name}",
        unit="img",
        progress=progress,
        chunk_size=size,
        serial_below=64,
    )
