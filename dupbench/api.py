"""The one-call API, with imagededup's names, parameters and output shapes.

    from dupbench import find_duplicates
    dups = find_duplicates("photos/", method="phash", max_distance_threshold=10, scores=True)

``method`` names a registry entry ("phash", "dhash", "cnn", "file_digest", …) and its parameters
pass through (``hash_size=16``, ``profile="imagededup"``). The imagededup-style classes at the
bottom (``PHash().find_duplicates(...)``) are thin wrappers over the same functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dupbench import images
from dupbench.duplicates import DuplicateMap, DuplicateResult, KeepPolicy, split_entry
from dupbench.files import write_json
from dupbench.methods import Method, get_method
from dupbench.records import Candidates, Encodings, hex_to_words
from dupbench.search import range_groups


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
    **params: Any,
) -> Encodings:
    """Encode every file in ``image_dir`` (or the given ``files``); unreadable files are skipped.

    Ids are names relative to ``image_dir`` (as imagededup's keys), or the paths as given.
    ``num_enc_workers``: processes for per-image methods (0: one per CPU; 1: in-process).
    """
    m = get_method(method, **params)
    if (image_dir is None) == (files is None):
        raise ValueError("give exactly one of image_dir or files")
    if image_dir is not None:
        root = Path(image_dir)
        paths = images.list_files(root, recursive=recursive)
        ids = _relative_names(root, paths)
    else:
        paths = [Path(f) for f in files]
        ids = [os.fspath(f) for f in files]
    return m.encode([str(p) for p in paths], ids, workers=num_enc_workers, progress=progress)


def encode_image(
    image_file: str | os.PathLike | None = None,
    image_array: np.ndarray | None = None,
    method: str | Method = "phash",
    **params: Any,
) -> str | np.ndarray:
    """One image's code: a hex string for hashes and digests, a float vector for embeddings."""
    if (image_file is None) == (image_array is None):
        raise ValueError("give exactly one of image_file or image_array")
    m = get_method(method, **params)
    source = image_array if image_array is not None else os.fspath(image_file)
    enc = m.encode([source], ["image"], workers=1)
    if enc.skipped:
        raise images.ImageError(f"{enc.skipped[0].path}: {enc.skipped[0].reason}")
    return enc.codes[0] if enc.kind == "float" else enc.to_hex()["image"]


def _encodings_from_map(encoding_map: dict, m: Method) -> Encodings:
    """An imagededup encoding map ({file: hex} or {file: vector}) → Encodings for method ``m``."""
    ids = list(encoding_map)
    values = list(encoding_map.values())
    if m.kind == "float":
        codes = np.stack([np.asarray(v, dtype=np.float32).ravel() for v in values]) if values \
            else np.zeros((0, m.size), np.float32)
        if codes.shape[1] != m.size:
            raise ValueError(f"encoding map holds {codes.shape[1]}-d vectors; {m!r} makes "
                             f"{m.size}-d ones")
    else:
        digits = -(-m.size // 4)
        wrong = next((k for k, v in encoding_map.items() if len(str(v).strip()) != digits), None)
        if wrong is not None:
            raise ValueError(f"hash of {wrong!r} has {len(str(encoding_map[wrong]).strip())} hex "
                             f"digits; {m!r} makes {digits} (a {m.size}-bit code)")
        codes = hex_to_words([str(v) for v in values], m.size)
    return Encodings(ids, codes, m.kind, m.metric, m.size, m.name, m.params)


def _threshold(m: Method, max_distance_threshold, min_similarity_threshold) -> float:
    if m.metric == "cosine":
        if max_distance_threshold is not None:
            raise ValueError(f"{m.name} scores similarity: use min_similarity_threshold")
        t = m.default_threshold if min_similarity_threshold is None else min_similarity_threshold
        if not -1.0 <= t <= 1.0:
            raise ValueError(f"min_similarity_threshold must be in [-1, 1], got {t}")
        return float(t)
    if min_similarity_threshold is not None:
        raise ValueError(f"{m.name} scores Hamming distance: use max_distance_threshold")
    if m.metric == "equal":
        return 0
    t = m.default_threshold if max_distance_threshold is None else max_distance_threshold
    if not (float(t).is_integer() and 0 <= t <= m.size):
        raise ValueError(f"max_distance_threshold must be an integer in [0, {m.size}], got {t}")
    return int(t)


def search_duplicates(
    image_dir: str | os.PathLike | None = None,
    encoding_map: dict | None = None,
    method: str | Method = "phash",
    *,
    max_distance_threshold: int | None = None,
    min_similarity_threshold: float | None = None,
    recursive: bool = False,
    num_enc_workers: int = 0,
    search_method: str = "auto",
    progress: bool = True,
    **params: Any,
) -> DuplicateResult:
    """Encode (or take an encoding map), search, and return the array-form result with skips.

    The functions below and the CLI all go through here; use it directly to get the skipped
    files, duplicate groups and keep policies from one search.
    """
    m = get_method(method, **params)
    threshold = _threshold(m, max_distance_threshold, min_similarity_threshold)
    if (image_dir is None) == (encoding_map is None):
        raise ValueError("give exactly one of image_dir or encoding_map")
    if image_dir is not None:
        enc = encode_images(image_dir, m, recursive=recursive, num_enc_workers=num_enc_workers,
                            progress=progress)
        paths = [str(Path(image_dir) / i) for i in enc.ids]
    else:
        enc = _encodings_from_map(encoding_map, m)
        paths = None
    pairs = range_groups(enc, threshold, backend=search_method)
    return DuplicateResult(enc.ids, pairs, enc.skipped, paths)


def find_duplicates(
    image_dir: str | os.PathLike | None = None,
    encoding_map: dict | None = None,
    method: str | Method = "phash",
    max_distance_threshold: int | None = None,
    min_similarity_threshold: float | None = None,
    scores: bool = False,
    outfile: str | os.PathLike | None = None,
    recursive: bool = False,
    num_enc_workers: int = 0,
    search_method: str = "auto",
    progress: bool = True,
    **params: Any,
) -> DuplicateMap:
    """``{file: [duplicates]}`` (or ``[(duplicate, score)]`` with ``scores``), every file a key.

    Hashes: duplicates are within ``max_distance_threshold`` bits (default: the method's, 10 for
    64-bit hashes, as imagededup). CNN: cosine similarity ≥ ``min_similarity_threshold`` (0.9).
    Scored lists are sorted best first, for CNN too (imagededup leaves those unsorted).
    The map is read-only and computes each value when read, so 5,000 identical files do not
    cost 12.5 M stored pairs; ``dict(...)`` gives a plain dict. ``outfile`` is written key by key.
    """
    result = search_duplicates(
        image_dir, encoding_map, method, max_distance_threshold=max_distance_threshold,
        min_similarity_threshold=min_similarity_threshold, recursive=recursive,
        num_enc_workers=num_enc_workers, search_method=search_method, progress=progress, **params,
    )
    if outfile:
        result.write_map(outfile, scores=scores)
    return result.to_map(scores=scores)


def find_duplicates_to_remove(
    image_dir: str | os.PathLike | None = None,
    encoding_map: dict | None = None,
    method: str | Method = "phash",
    max_distance_threshold: int | None = None,
    min_similarity_threshold: float | None = None,
    outfile: str | os.PathLike | None = None,
    recursive: bool = False,
    num_enc_workers: int = 0,
    keep: KeepPolicy = "first",
    search_method: str = "auto",
    progress: bool = True,
    **params: Any,
) -> list[str]:
    """Files to remove so no two kept files are duplicates; nothing is deleted.

    ``keep`` decides which file of a set survives: "first" (by name, imagededup's behaviour),
    "largest_resolution", "largest_file" or "oldest".
    """
    result = search_duplicates(
        image_dir, encoding_map, method, max_distance_threshold=max_distance_threshold,
        min_similarity_threshold=min_similarity_threshold, recursive=recursive,
        num_enc_workers=num_enc_workers, search_method=search_method, progress=progress, **params,
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
    cand = Candidates(arr[:, 0], arr[:, 1], np.zeros(len(arr), np.int32), "equal")
    return DuplicateResult(ids, cand).groups()


class _ImagededupStyle:
    """imagededup's method classes: ``PHash().find_duplicates(image_dir=...)`` and friends."""

    method: str = ""

    def __init__(self, verbose: bool = True, **params: Any) -> None:
        self.verbose = verbose
        self._method = get_method(self.method, **params)

    def encode_image(self, image_file=None, image_array=None):
        return encode_image(image_file, image_array, method=self._method)

    def encode_images(self, image_dir=None, recursive: bool = False, num_enc_workers: int = 0):
        enc = encode_images(image_dir, self._method, recursive=recursive,
                            num_enc_workers=num_enc_workers, progress=self.verbose)
        if enc.kind == "float":
            return dict(zip(enc.ids, enc.codes))
        return enc.to_hex()

    def find_duplicates(self, image_dir=None, encoding_map=None, **kwargs):
        kwargs.setdefault("progress", self.verbose)
        return find_duplicates(image_dir, encoding_map, self._method, **kwargs)

    def find_duplicates_to_remove(self, image_dir=None, encoding_map=None, **kwargs):
        kwargs.setdefault("progress", self.verbose)
        return find_duplicates_to_remove(image_dir, encoding_map, self._method, **kwargs)


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
