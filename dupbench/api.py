"""The one-call API, with imagededup's names, parameters and output shapes.

    from dupbench import find_duplicates
    dups = find_duplicates("photos/", method="phash", max_distance_threshold=10, scores=True)

``method`` names a method or a preset (``dupbench methods`` lists them: "phash", "phash_16",
"crop_resistant_regions", "cnn", "file_digest", …) and its parameters pass through
(``hash_size=16``, ``profile="imagededup"``); a misspelt keyword is a ``TypeError`` that names the
closest valid one. Skipped files are logged on the ``dupbench`` logger (a WARNING summary, each
file at INFO) and listed in ``encode_images(...).skipped`` and ``search_duplicates(...).skipped``.
The imagededup-style classes at the bottom (``PHash().find_duplicates(...)``) are thin wrappers
over the same functions.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dupbench import images
from dupbench.distance import DistanceKind
from dupbench.duplicates import DuplicateMap, DuplicateResult, KeepPolicy, split_entry
from dupbench.errors import UsageError, check_parameters, unknown_name
from dupbench.files import write_json
from dupbench.methods import Method, get_method, method_class
from dupbench.methods.base import accepted_params
from dupbench.records import Candidates, Encodings, GroupedCandidates, hex_to_words
from dupbench.search import range_groups
from dupbench.search.registry import find_whole_search, index_backends

log = logging.getLogger("dupbench")
_HEX = re.compile("[0-9a-fA-F]+")


@functools.cache
def _api_keywords() -> tuple[str, ...]:
    """The keyword names of the public functions: suggestions for a misspelt keyword, which
    would otherwise land in ``**params`` and be taken for a method parameter."""
    functions = (
        search_duplicates,
        find_duplicates,
        find_duplicates_to_remove,
        encode_images,
        encode_image,
    )
    return tuple(
        sorted(
            {
                name
                for f in functions
                for name in inspect.signature(f).parameters
                if name != "params"
            }
        )
    )


def _method(method: str | Method, params: dict[str, Any]) -> Method:
    """``get_method``, with unknown keywords reported against the API's names too."""
    cls = type(method) if isinstance(method, Method) else method_class(method)
    name = method.name if isinstance(method, Method) else method
    check_parameters(params, accepted_params(cls), f"method {name!r}", also_suggest=_api_keywords())
    return get_method(method, **params)


def _log_skipped(enc: Encodings) -> None:
    """One WARNING line summing up the skipped files, then each at INFO."""
    if not enc.skipped:
        return
    first = enc.skipped[0]
    log.warning(
        "%d of %d files skipped (unreadable or not an image), e.g. %s: %s; the "
        "`skipped` list of encode_images()/search_duplicates() has them all",
        len(enc.skipped),
        len(enc) + len(enc.skipped),
        first.path,
        first.reason,
    )
    for s in enc.skipped:
        log.info("skipped %s: %s", s.path, s.reason)


def _relative_names(root: Path, files: list[Path]) -> list[str]:
    """imagededup's keys: the path relative to the image directory, with forward slashes."""
    return [f.relative_to(root).as_posix() for f in files]


def encode_images(
    image_dir: str | os.PathLike | None = None,
    method: str | Method = "phash",
    *,
    files: list[str | os.PathLike] | None = None,
    recursive: bool = False,
    num_enc_workers: int = 0,
    progress: bool = True,
    store: str | os.PathLike | None = None,
    cluster: str | None = None,
    **params: Any,
) -> Encodings:
    """Encode every file in ``image_dir`` (or the given ``files``); unreadable files are skipped.

    Ids are names relative to ``image_dir`` (as imagededup's keys), or the paths as given.
    ``num_enc_workers``: processes for per-image methods (``cpus.worker_count``: 0 one per usable
    core; 1: in this process).
    ``store``: a folder that keeps ``image_dir``'s codes on disk as they are made
    (``dupbench.encoding_store``): an interrupted encode resumes, and a later call encodes only
    new or changed files.
    ``cluster``: encode on a Dask cluster, ``"local:N"`` or a scheduler address such as
    ``"tcp://host:8786"`` (``dupbench.cluster``; the workers read the files themselves, so they
    must see them at the same paths); the codes are the same as a local run's.
    """
    m = _method(method, params)
    if (image_dir is None) == (files is None):
        raise UsageError("give exactly one of image_dir or files")
    if store is not None:
        if image_dir is None:
            raise UsageError("store= keeps the codes of one folder: give image_dir, not files")
        return _encode_stored(
            Path(image_dir), m, store, recursive, num_enc_workers, progress, cluster
        )
    if image_dir is not None:
        root = Path(image_dir)
        return _encode_scan(
            images.scan_files(root, recursive), root, m, num_enc_workers, progress, cluster
        )
    assert files is not None  # exactly one of image_dir and files, checked above
    paths = [os.fspath(f) for f in files]
    enc = _encode(m, paths, paths, num_enc_workers, progress, cluster)
    _log_skipped(enc)
    return enc


def _encode(
    m: Method, sources: list[str], ids: list[str], workers: int, progress: bool, cluster: str | None
) -> Encodings:
    """``m.encode`` here, or on a cluster when one is named."""
    if cluster is None:
        return m.encode(sources, ids, workers=workers, progress=progress)
    from dupbench.cluster import cluster_map

    return cluster_map(m, sources, ids, cluster, progress=progress)


def _encode_stored(
    root: Path,
    m: Method,
    store: str | os.PathLike,
    recursive: bool,
    workers: int,
    progress: bool,
    cluster: str | None = None,
) -> Encodings:
    """Bring the store at ``store`` up to date with ``root`` and return its encodings."""
    from dupbench.encoding_store import EncodingStore

    with EncodingStore.open_or_create(store, m) as kept:
        counts = kept.update(
            root, recursive=recursive, workers=workers, progress=progress, cluster=cluster
        )
        log.info("store %s: %s", store, counts)
        enc = kept.encodings()
    _log_skipped(enc)
    return enc


def _encode_scan(
    scan: images.Scan,
    root: Path,
    m: Method,
    workers: int,
    progress: bool,
    cluster: str | None = None,
) -> Encodings:
    """Encode what a folder scan found; what the scan could not use joins the skipped files."""
    paths = [f.path for f in scan.files]
    enc = _encode(
        m, [str(p) for p in paths], _relative_names(root, paths), workers, progress, cluster
    )
    enc.skipped = scan.skipped + enc.skipped
    _log_skipped(enc)
    return enc


def encode_image(
    image_file: str | os.PathLike | None = None,
    image_array: np.ndarray | None = None,
    method: str | Method = "phash",
    **params: Any,
) -> str | np.ndarray:
    """One image's code: a hex string for hashes and digests, a float vector for embeddings."""
    if image_file is not None and image_array is None:
        source: images.Source = os.fspath(image_file)
    elif image_array is not None and image_file is None:
        source = image_array
    else:
        raise UsageError("give exactly one of image_file or image_array")
    m = _method(method, params)
    enc = m.encode([source], ["image"], workers=1)
    if enc.skipped:
        raise images.ImageError(f"{enc.skipped[0].path}: {enc.skipped[0].reason}")
    return enc.codes[0] if enc.kind == "float" else enc.to_hex()["image"]


def _encodings_from_map(encoding_map: Mapping | Encodings, m: Method) -> Encodings:
    """An imagededup encoding map ({file: hex} or {file: vector}) → Encodings for method ``m``;
    stored ``Encodings`` (``encode_images``, ``Encodings.load``) pass through as they are.

    Types are checked, not coerced: a hash must be a string of exactly the method's number of hex
    digits (an int such as 12345 is refused rather than read as the hex digits "12345").
    """
    if isinstance(encoding_map, Encodings):
        return _made_by(encoding_map, m)
    if not isinstance(encoding_map, Mapping):
        raise TypeError(
            f"encoding_map must be a dict {{file: code}}, got a {type(encoding_map).__name__}"
        )
    ids = list(encoding_map)
    values = list(encoding_map.values())
    if m.kind == "float":
        rows = []
        for key, value in encoding_map.items():
            row = np.asarray(value)
            if row.dtype.kind not in "fiu" or row.ndim != 1 or len(row) != m.size:
                raise ValueError(
                    f"embedding of {key!r} must be a {m.size}-d numeric vector "
                    f"(what {m!r} makes), got {type(value).__name__} of shape "
                    f"{row.shape} and dtype {row.dtype}"
                )
            rows.append(row.astype(np.float32))
        codes = np.stack(rows) if rows else np.zeros((0, m.size), np.float32)
    else:
        digits = -(-m.size // 4)
        for key, value in encoding_map.items():
            if not isinstance(value, str):
                raise TypeError(
                    f"hash of {key!r} must be a hex string, got {type(value).__name__} {value!r}"
                )
            if not _HEX.fullmatch(value.strip()):
                raise ValueError(f"hash of {key!r} is not hexadecimal: {value!r}")
            if len(value.strip()) != digits:
                raise ValueError(
                    f"hash of {key!r} has {len(value.strip())} hex digits; {m!r} "
                    f"makes {digits} (a {m.size}-bit code)"
                )
        codes = hex_to_words(values, m.size)
    return Encodings(ids, codes, m.kind, m.distance, m.size, m.name, m.params)


def _made_by(enc: Encodings, m: Method) -> Encodings:
    """``enc`` if ``m`` makes codes of its kind and size, so that ``m``'s threshold and search
    apply to them; searching one method's codes with another's is refused."""
    if (enc.method, enc.kind, enc.distance, enc.size) != (m.name, m.kind, m.distance, m.size):
        raise UsageError(
            f"these encodings are {enc.method or 'unnamed'} codes ({enc.kind}, size {enc.size}), "
            f"not {m.name} codes ({m.kind}, size {m.size}): pass method={enc.method!r} with the "
            f"parameters they record ({enc.params}), or its preset"
        )
    return enc


def _threshold(m: Method, max_distance_threshold, min_similarity_threshold) -> float:
    if m.distance.higher_is_closer:
        if max_distance_threshold is not None:
            raise UsageError(f"{m.name} scores similarity: use min_similarity_threshold")
        t = m.default_threshold if min_similarity_threshold is None else min_similarity_threshold
        if not -1.0 <= t <= 1.0:
            raise UsageError(
                f"{m.name} scores cosine similarity: the threshold "
                f"(min_similarity_threshold) must be in [-1, 1], got {t}"
            )
        return float(t)
    if min_similarity_threshold is not None:
        raise UsageError(
            f"{m.name} scores {m.distance.name.capitalize()} distance: use max_distance_threshold"
        )
    if not m.distance.graded:
        return 0
    t = m.default_threshold if max_distance_threshold is None else max_distance_threshold
    if not m.distance.discrete:
        if not 0 <= float(t) < float("inf"):
            raise UsageError(
                f"{m.name} scores {m.distance.name.capitalize()} distance: the threshold "
                f"(max_distance_threshold) must be a number ≥ 0, got {t}"
            )
        return float(t)
    if not (float(t).is_integer() and 0 <= t <= m.size):
        raise UsageError(
            f"{m.name} scores Hamming distance: the threshold "
            f"(max_distance_threshold) must be an integer in [0, {m.size}], got {t}"
        )
    return int(t)


#: imagededup's default thresholds for its own methods, kept by its functions and classes here
IMAGEDEDUP_THRESHOLDS = {"phash": 10, "ahash": 10, "dhash": 10, "whash": 10, "cnn": 0.9}


def _imagededup_thresholds(
    method: str | Method, params: dict[str, Any], max_distance, min_similarity
) -> dict[str, Any]:
    """The threshold keywords of imagededup's functions: as given, or, when neither is given for
    one of imagededup's methods as it has it (its name, no parameters), imagededup's default,
    so that code written for imagededup finds what it found there. Everything else keeps None:
    the method's own default, calibrated to 99 % pair precision (``dupbench methods``)."""
    thresholds = {
        "max_distance_threshold": max_distance,
        "min_similarity_threshold": min_similarity,
    }
    name = method.lower() if isinstance(method, str) else None
    if (
        max_distance is None
        and min_similarity is None
        and not params
        and name in IMAGEDEDUP_THRESHOLDS
    ):
        key = "min_similarity_threshold" if name == "cnn" else "max_distance_threshold"
        thresholds[key] = IMAGEDEDUP_THRESHOLDS[name]
    return thresholds


def _search_for(m: Method, backend: str) -> tuple[str, dict[str, Any]]:
    """(backend, params) for ``m``: the preset's own search under "auto", else ``backend``
    checked before any encoding is done."""
    if backend == "auto":
        return m.preferred_search or ("auto", {})
    if find_whole_search(backend) is not None:
        if backend not in (m.name, (m.preferred_search or ("",))[0]):
            raise UsageError(f"the {backend} search reads {backend} codes, not {m.name} codes")
        return backend, {}
    valid = index_backends(m.distance)
    if backend not in valid:
        raise unknown_name(f"search backend for {m.name} ({m.distance})", backend, ["auto", *valid])
    return backend, {}


def search_duplicates(
    image_dir: str | os.PathLike | None = None,
    encoding_map: dict | Encodings | None = None,
    method: str | Method = "phash",
    *,
    max_distance_threshold: int | None = None,
    min_similarity_threshold: float | None = None,
    recursive: bool = False,
    num_enc_workers: int = 0,
    search_method: str = "auto",
    progress: bool = True,
    store: str | os.PathLike | None = None,
    **params: Any,
) -> DuplicateResult:
    """Encode (or take an encoding map), search, and return the array-form result with skips.

    ``encoding_map``: imagededup's ``{file: hex}`` / ``{file: vector}``, or stored ``Encodings``
    of ``method`` (searched as they are, their skipped files kept in the result).

    ``store``: keep and reuse ``image_dir``'s codes in this folder (see ``encode_images``).

    The functions below and the CLI all go through here; use it directly to get the skipped
    files, duplicate groups and keep policies from one search.
    """
    m = _method(method, params)
    threshold = _threshold(m, max_distance_threshold, min_similarity_threshold)
    backend, search_params = _search_for(m, search_method)
    if (image_dir is None) == (encoding_map is None):
        raise UsageError("give exactly one of image_dir or encoding_map")
    if image_dir is not None and store is not None:
        enc = encode_images(
            image_dir,
            m,
            recursive=recursive,
            num_enc_workers=num_enc_workers,
            progress=progress,
            store=store,
        )
        return _search(
            enc, [str(Path(image_dir) / i) for i in enc.ids], m, threshold, backend, search_params
        )
    if image_dir is not None:
        root = Path(image_dir)
        return search_scan(
            images.scan_files(root, recursive),
            root,
            m,
            max_distance_threshold=max_distance_threshold,
            min_similarity_threshold=min_similarity_threshold,
            num_enc_workers=num_enc_workers,
            search_method=search_method,
            progress=progress,
        )
    assert encoding_map is not None  # exactly one of image_dir and encoding_map, checked above
    return _search(_encodings_from_map(encoding_map, m), None, m, threshold, backend, search_params)


def search_scan(
    scan: images.Scan,
    root: str | os.PathLike,
    method: str | Method = "phash",
    *,
    max_distance_threshold: int | None = None,
    min_similarity_threshold: float | None = None,
    num_enc_workers: int = 0,
    search_method: str = "auto",
    progress: bool = True,
    **params: Any,
) -> DuplicateResult:
    """``search_duplicates`` over the files of an ``images.scan_files`` scan of ``root``: for
    callers that act on the files afterwards and need what the scan recorded (sizes, mtimes,
    links, folders not searched), such as ``dupbench find``."""
    m = _method(method, params)
    threshold = _threshold(m, max_distance_threshold, min_similarity_threshold)
    backend, search_params = _search_for(m, search_method)
    root = Path(root)
    enc = _encode_scan(scan, root, m, num_enc_workers, progress)
    return _search(enc, [str(root / i) for i in enc.ids], m, threshold, backend, search_params)


def _search(
    enc: Encodings,
    paths: list[str] | None,
    m: Method,
    threshold: float,
    backend: str,
    search_params: dict[str, Any],
) -> DuplicateResult:
    """The configured search (a preset's own search function, or an index) over ``enc``."""
    whole = find_whole_search(backend)
    pairs: Candidates | GroupedCandidates
    if whole is not None:
        pairs = whole.search(enc, threshold, **search_params)
    else:
        pairs = range_groups(enc, threshold, backend=backend, **search_params)
    return DuplicateResult(enc.ids, pairs, enc.skipped, paths)


def find_duplicates(
    image_dir: str | os.PathLike | None = None,
    encoding_map: dict | Encodings | None = None,
    method: str | Method = "phash",
    max_distance_threshold: int | None = None,
    min_similarity_threshold: float | None = None,
    scores: bool = False,
    outfile: str | os.PathLike | None = None,
    recursive: bool = False,
    num_enc_workers: int = 0,
    search_method: str = "auto",
    progress: bool = True,
    store: str | os.PathLike | None = None,
    **params: Any,
) -> DuplicateMap:
    """``{file: [duplicates]}`` (or ``[(duplicate, score)]`` with ``scores``), every file a key.

    Hashes: duplicates are within ``max_distance_threshold`` bits; CNN: cosine similarity ≥
    ``min_similarity_threshold``. Left out, they are imagededup's defaults for imagededup's
    methods (10 bits for "phash", "ahash", "dhash", "whash"; 0.9 for "cnn"), as a drop-in
    replacement must; any other method or preset (or those with parameters) takes its own
    default, the threshold calibrated to 99 % pair precision (``dupbench methods``), as
    ``search_duplicates`` and ``dupbench find`` always do.
    Scored lists are sorted best first, for CNN too (imagededup leaves those unsorted).
    The map is read-only and computes each value when read, so 5,000 identical files do not
    cost 12.5 M stored pairs; ``dict(...)`` gives a plain dict. ``outfile`` is written key by key.
    """
    result = search_duplicates(
        image_dir,
        encoding_map,
        method,
        **_imagededup_thresholds(method, params, max_distance_threshold, min_similarity_threshold),
        recursive=recursive,
        num_enc_workers=num_enc_workers,
        search_method=search_method,
        progress=progress,
        store=store,
        **params,
    )
    if outfile:
        result.write_map(outfile, scores=scores)
    return result.to_map(scores=scores)


def find_duplicates_to_remove(
    image_dir: str | os.PathLike | None = None,
    encoding_map: dict | Encodings | None = None,
    method: str | Method = "phash",
    max_distance_threshold: int | None = None,
    min_similarity_threshold: float | None = None,
    outfile: str | os.PathLike | None = None,
    recursive: bool = False,
    num_enc_workers: int = 0,
    keep: KeepPolicy = "first",
    search_method: str = "auto",
    progress: bool = True,
    store: str | os.PathLike | None = None,
    **params: Any,
) -> list[str]:
    """Files to remove so no two kept files are duplicates; nothing is deleted. Thresholds as in
    ``find_duplicates``.

    ``keep`` decides which file of a set survives: "first" (by name, imagededup's behaviour),
    "largest_resolution", "largest_file" or "oldest".
    """
    result = search_duplicates(
        image_dir,
        encoding_map,
        method,
        **_imagededup_thresholds(method, params, max_distance_threshold, min_similarity_threshold),
        recursive=recursive,
        num_enc_workers=num_enc_workers,
        search_method=search_method,
        progress=progress,
        store=store,
        **params,
    )
    out = result.to_remove(keep)
    if outfile:
        write_json(outfile, out)
    return out


def duplicate_groups(duplicates: dict[str, list]) -> list[list[str]]:
    """Connected components of a ``find_duplicates`` map (scored or not), largest first."""
    if isinstance(duplicates, DuplicateMap):  # from its groups, without listing every pair
        return duplicates.result.groups()
    edges = [(a, split_entry(d)[0]) for a, v in duplicates.items() for d in v]
    ids = sorted(set(duplicates) | {b for _, b in edges})
    index = {k: n for n, k in enumerate(ids)}
    pairs = sorted({tuple(sorted((index[a], index[b]))) for a, b in edges})
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    cand = Candidates(arr[:, 0], arr[:, 1], np.zeros(len(arr), np.int32), DistanceKind.EQUAL)
    return DuplicateResult(ids, cand).groups()


class _ImagededupStyle:
    """imagededup's method classes: ``PHash().find_duplicates(image_dir=...)`` and friends."""

    method: str = ""

    def __init__(self, verbose: bool = True, **params: Any) -> None:
        self.verbose = verbose
        self._params = params
        self._method = _method(self.method, params)

    def _keywords(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with imagededup's default threshold and the progress bar as ``verbose``."""
        given = [
            kwargs.pop(k, None) for k in ("max_distance_threshold", "min_similarity_threshold")
        ]
        thresholds = _imagededup_thresholds(self.method, self._params, *given)
        return {"progress": self.verbose, **kwargs, **thresholds}

    def encode_image(self, image_file=None, image_array=None):
        return encode_image(image_file, image_array, method=self._method)

    def encode_images(self, image_dir=None, recursive: bool = False, num_enc_workers: int = 0):
        enc = encode_images(
            image_dir,
            self._method,
            recursive=recursive,
            num_enc_workers=num_enc_workers,
            progress=self.verbose,
        )
        if enc.kind == "float":
            return dict(zip(enc.ids, enc.codes))
        return enc.to_hex()

    def find_duplicates(self, image_dir=None, encoding_map=None, **kwargs):
        return find_duplicates(image_dir, encoding_map, self._method, **self._keywords(kwargs))

    def find_duplicates_to_remove(self, image_dir=None, encoding_map=None, **kwargs):
        return find_duplicates_to_remove(
            image_dir, encoding_map, self._method, **self._keywords(kwargs)
        )


class PHash(_ImagededupStyle):
    method = "phash"


class AHash(_ImagededupStyle):
    method = "ahash"


class DHash(_ImagededupStyle):
    method = "dhash"


class WHash(_ImagededupStyle):
    method = "whash"


class CNN(_ImagededupStyle):
    method = "cnn"
