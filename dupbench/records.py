"""The array-shaped values that flow between stages: skips, encodings and candidate pairs.

Hex strings and ``{file: [dups]}`` maps exist only at the edges (API output, JSON files); inside,
codes are packed ``uint64`` words (binary hashes, exact digests) or ``float32`` rows (embeddings),
and search results are parallel index arrays.
"""

from __future__ import annotations

import importlib
import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.files import replacing

Kind = Literal["binary", "float", "exact"]
#: a stored .npz may unpack to at most this many times its size, or NPZ_MIN_CAP bytes if more
NPZ_MAX_RATIO = 64  # real candidate files unpack to ~15x
NPZ_MIN_CAP = 64 << 20
#: ``Encodings`` subclasses that save one object per row beside the codes, by the ``saved_as``
#: tag their files' header carries. ``Encodings.load`` imports one only when a file names it:
#: the methods that define them import this module, so it cannot import them up front (nor
#: would a plain phash file want OpenCV's method modules loaded); and a fixed table, rather than
#: a module path read from the file, means a file cannot choose what gets imported.
SAVED_SUBCLASSES = {"verified": "dupbench.methods.verified:VerifiedEncodings"}


class DamagedFile(ValueError):
    """A stored file that is empty, truncated, not in the expected layout, or made to exhaust
    memory; the message names the path. Readers of run folders skip such a run."""


def read_npz(
    path: str | Path,
    expected: dict[str, tuple[str, int]],
    *,
    others: tuple[str, int] | None = None,
    max_bytes: int | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of an .npz, each checked from its header before any data is read.

    ``expected`` maps each required array to (allowed dtype kinds, number of dimensions), e.g.
    ``{"i": ("iu", 1)}``; ``others`` is the same for any further array (None: they are not
    read). Pickled objects are refused, and so is a total over ``max_bytes`` (default
    ``NPZ_MAX_RATIO`` times the file size, at least ``NPZ_MIN_CAP``). Anything wrong raises
    ``DamagedFile``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            raise DamagedFile(f"{path}: the file is empty")
        with zipfile.ZipFile(path) as zf:
            members = {n[:-4]: zf.getinfo(n) for n in zf.namelist() if n.endswith(".npy")}
            missing = sorted(set(expected) - set(members))
            if missing:
                raise DamagedFile(f"{path}: no array(s) {missing}; is it the right file?")
            specs = {name: expected.get(name, others) for name in members}
            wanted = {name: spec for name, spec in specs.items() if spec is not None}
            cap = max_bytes if max_bytes is not None else max(NPZ_MIN_CAP, NPZ_MAX_RATIO * size)
            total = 0
            for name, (kinds, ndim) in wanted.items():
                total += _checked_nbytes(zf, members[name], name, kinds, ndim, path)
                if total > cap:
                    raise DamagedFile(
                        f"{path}: would unpack to more than {cap:,} bytes; refusing to load it"
                    )
            out = {}
            for name in wanted:
                with zf.open(members[name]) as f:
                    out[name] = np.lib.format.read_array(f, allow_pickle=False)
            return out
    except DamagedFile:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as e:
        raise DamagedFile(f"{path}: damaged or not an .npz file ({e})") from None


def read_npz_header(
    path: str | Path,
    expected: dict[str, tuple[str, int]],
    *,
    header_key: str = "header",
    others: tuple[str, int] | None = None,
    max_bytes: int | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """``read_npz`` of a file ``write_npz`` wrote with a JSON ``header``: (arrays, header);
    a header that is not a JSON object raises ``DamagedFile``."""
    arrays = read_npz(path, {**expected, header_key: ("U", 0)}, others=others, max_bytes=max_bytes)
    try:
        header = json.loads(str(arrays.pop(header_key)))
    except ValueError as e:
        raise DamagedFile(f"{path}: unreadable {header_key} ({e})") from None
    if not isinstance(header, dict):
        raise DamagedFile(f"{path}: the {header_key} is not a JSON object")
    return arrays, header


def write_npz(
    path: str | Path,
    arrays: dict[str, np.ndarray],
    header: dict | None = None,
    *,
    header_key: str = "header",
    compressed: bool = True,
) -> Path:
    """Store ``arrays`` (and ``header`` as a JSON string under ``header_key``) in an .npz,
    atomically, for ``read_npz`` / ``read_npz_header``; like numpy, ``.npz`` is appended to a
    path without it. Returns the path written."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz")
    if header is not None:
        arrays = {**arrays, header_key: np.array(json.dumps(header))}
    save = np.savez_compressed if compressed else np.savez
    # Any: numpy's stubs would check the arrays against savez's allow_pickle: bool
    named: dict[str, Any] = arrays
    with replacing(path) as tmp:
        save(tmp, **named)
    return path


def _checked_nbytes(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, kinds: str, ndim: int, path: Path
) -> int:
    """The data size the header of one .npy member declares, after checking its dtype, shape
    and that the member is long enough to hold it."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DamagedFile(f"{path}: array {name!r} has an unknown format {version}")
        header = f.tell()
    if dtype.hasobject or dtype.kind not in kinds or len(shape) != ndim:
        raise DamagedFile(
            f"{path}: array {name!r} is {dtype} of shape {shape}; expected "
            f"{ndim} dimension(s) of kind {kinds!r}"
        )
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size < header + nbytes:
        raise DamagedFile(f"{path}: array {name!r} is truncated")
    return nbytes


@dataclass(frozen=True)
class Skipped:
    """A file that could not be used, and why; a run records it and goes on."""

    path: str
    reason: str


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a (n, nbits) boolean matrix into (n, ceil(nbits/64)) uint64 words.

    Bit order is big-endian within the row, so the hex of the words (see ``words_to_hex``) equals
    imagehash's and imagededup's hex strings for the same bits.
    """
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim == 1:
        bits = bits[None, :]
    n, nbits = bits.shape
    nwords = max(1, -(-nbits // 64))
    padded = np.zeros((n, nwords * 64), dtype=bool)
    padded[:, :nbits] = bits
    packed = np.packbits(padded, axis=1)  # (n, nwords*8) uint8, big-endian bit order
    return packed.view(">u8").astype(np.uint64)


def words_to_hex(words: np.ndarray, nbits: int) -> list[str]:
    """Hex strings, one per row, with ``ceil(nbits/4)`` digits (imagehash / imagededup format)."""
    digits = -(-nbits // 4)
    be = np.ascontiguousarray(np.atleast_2d(words).astype(">u8"))
    return [row.tobytes().hex()[:digits] for row in be]


def hex_to_words(hexes: list[str], nbits: int) -> np.ndarray:
    """Parse hex strings (as written by ``words_to_hex`` or imagededup) into packed words."""
    nwords = max(1, -(-nbits // 64))
    out = np.zeros((len(hexes), nwords * 8), dtype=np.uint8)
    for r, h in enumerate(hexes):
        h = h.strip().lower()
        if len(h) % 2:
            h += "0"
        raw = bytes.fromhex(h)
        if len(raw) > nwords * 8:
            raise ValueError(f"hash {h!r} is longer than {nbits} bits")
        out[r, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return out.view(">u8").astype(np.uint64)


@dataclass
class Encodings:
    """The output of ``Method.encode``: one code row per readable image, plus what was skipped.

    ``codes`` is (n, words) uint64 for ``kind`` binary/exact and (n, dim) float32 for float.
    ``size`` is the number of meaningful bits (binary/exact) or the dimension (float).
    ``rows``: the position of each encoded item in the sources given to ``encode`` (skipped ones
    left out), so that a caller maps results back to its own rows without going through ids;
    None where there was no source list (codes read back from a file, a store or a map).
    """

    ids: list[str]
    codes: np.ndarray
    kind: Kind
    distance: DistanceKind
    size: int
    method: str = ""
    params: dict = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.distance = DistanceKind(self.distance)
        if len(self.ids) != len(self.codes):
            raise ValueError(f"{len(self.ids)} ids but {len(self.codes)} code rows")
        if self.rows is not None and len(self.rows) != len(self.codes):
            raise ValueError(f"{len(self.rows)} source rows but {len(self.codes)} code rows")

    def __len__(self) -> int:
        return len(self.ids)

    def to_hex(self) -> dict[str, str]:
        """``{id: hex}`` for binary and exact codes (the imagededup encoding-map edge format)."""
        if self.kind == "float":
            raise TypeError("float embeddings have no hex form; use .codes")
        return dict(zip(self.ids, words_to_hex(self.codes, self.size)))

    # -- one object per row beside the codes: none here, a subclass's (see SAVED_SUBCLASSES) --
    #: the tag a subclass's saved files carry; "" for codes only
    saved_as: ClassVar[str] = ""
    #: the arrays ``extra_arrays`` makes, as ``read_npz`` checks them (kind, dimensions)
    extra_layout: ClassVar[dict[str, tuple[str, int]]] = {}

    def extra(self) -> list:
        """The per-row objects, ``extra()[r]`` for row r (none here)."""
        return []

    def extra_arrays(self) -> dict[str, np.ndarray]:
        """The per-row objects as arrays, saved beside the codes (by ``save`` and by an
        encoding store's shards)."""
        return {}

    @classmethod
    def extra_rows(
        cls, arrays: dict[str, np.ndarray], n: int, path: str | Path, rows: np.ndarray | None = None
    ) -> list:
        """The per-row objects of ``n`` rows that ``extra_arrays`` wrote (only those at
        ``rows`` when given, copied out of ``arrays``); an inconsistency raises
        ``DamagedFile`` naming ``path``."""
        return []

    @classmethod
    def with_extra(cls, base: Encodings, extra: list) -> Encodings:
        """``base`` with ``extra[r]`` as row r's object."""
        return base

    # -- files ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Store as a compressed .npz with a JSON header, per-row objects included;
        ``Encodings.load`` reads it back exactly."""
        path = Path(path)
        header = {
            "kind": self.kind,
            "metric": self.distance,  # the on-disk key keeps its old name: old files load
            "size": self.size,
            "method": self.method,
            "params": self.params,
            "skipped": [[s.path, s.reason] for s in self.skipped],
        }
        if self.saved_as:
            header["class"] = self.saved_as
        return write_npz(
            path,
            {
                "codes": self.codes,
                "ids": np.array(self.ids, dtype=object).astype(str),
                **self.extra_arrays(),
            },
            header,
        )

    @classmethod
    def load(cls, path: str | Path) -> Encodings:
        """Read what ``save`` wrote, as the class that saved it (``VerifiedEncodings`` with its
        local features); a damaged file raises ``DamagedFile``."""
        arrays, header = read_npz_header(path, {"codes": ("uif", 2), "ids": ("U", 1)})
        saved = saved_class(header.get("class", ""), path)
        if not issubclass(saved, cls):
            raise DamagedFile(f"{path}: holds {saved.__name__}, not {cls.__name__}")
        try:
            enc = Encodings(
                ids=[str(x) for x in arrays["ids"]],
                codes=arrays["codes"],
                kind=header["kind"],
                distance=header["metric"],
                size=header["size"],
                method=header["method"],
                params=header["params"],
                skipped=[Skipped(p, r) for p, r in header["skipped"]],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DamagedFile(f"{path}: unreadable header ({e})") from None
        if saved is Encodings:
            return enc
        extra = read_npz(path, saved.extra_layout)
        return saved.with_extra(enc, saved.extra_rows(extra, len(enc), path))


def saved_class(tag: str, path: str | Path) -> type[Encodings]:
    """The class of encodings whose files carry ``tag`` (``Encodings.saved_as``)."""
    if not tag:
        return Encodings
    if not isinstance(tag, str) or tag not in SAVED_SUBCLASSES:
        raise DamagedFile(f"{path}: holds {tag!r} encodings, which this dupbench cannot read")
    module, name = SAVED_SUBCLASSES[tag].split(":")
    return getattr(importlib.import_module(module), name)


def canonical_pairs(
    i, j, cross: bool = False, what: str = "pairs", error: type[Exception] = ValueError
) -> tuple[np.ndarray, np.ndarray]:
    """Validate index pairs and return them as int64 arrays in their canonical orientation.

    Negative indices raise ``error``. Within one collection (``cross=False``) a pair is
    unordered: it comes back as (min, max), and a self pair (i == j) raises ``error``. Directed
    pairs (``cross=True``) are returned as given.
    """
    i = np.asarray(i, dtype=np.int64).reshape(-1)
    j = np.asarray(j, dtype=np.int64).reshape(-1)
    if len(i) != len(j):
        raise error(f"{what}: {len(i)} first indices but {len(j)} second indices")
    if (len(i) and i.min() < 0) or (len(j) and j.min() < 0):
        raise error(f"{what}: indices must not be negative")
    if cross:
        return i, j
    selfs = i == j
    if selfs.any():
        raise error(
            f"{what}: self pairs (i == j) are not allowed; {int(selfs.sum())} found "
            f"(an image listed as its own duplicate), e.g. index {int(i[selfs][0])}"
        )
    return np.minimum(i, j), np.maximum(i, j)


@dataclass
class Candidates:
    """Scored pairs found by a search: parallel arrays ``i``, ``j``, ``score``.

    Range search within one collection gives undirected pairs (``cross=False``): every pair has
    ``i < j`` and there are no self pairs. Directed pairs (``cross=True``) come from searching
    queries against references, and from top-k lists (where both (a, b) and (b, a) can appear):
    ``i`` indexes the queries and ``j`` the references.
    ``score`` is a distance for hamming/equal (lower is closer) and a similarity for cosine
    (``distance``, a ``DistanceKind``, says which; a name such as "hamming" is accepted).
    Pairs are ordered best score first, then by (i, j), so results are deterministic.
    """

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray
    distance: DistanceKind
    cross: bool = False

    def __post_init__(self) -> None:
        self.distance = DistanceKind(self.distance)
        self.i = np.asarray(self.i, dtype=np.int64)
        self.j = np.asarray(self.j, dtype=np.int64)
        self.score = np.asarray(self.score)
        if not (len(self.i) == len(self.j) == len(self.score)):
            raise ValueError("i, j and score must have the same length")

    def __len__(self) -> int:
        return len(self.i)

    @property
    def higher_is_better(self) -> bool:
        return self.distance.higher_is_closer

    def within(self, threshold: float) -> Candidates:
        """Pairs at least as close as ``threshold`` (distance ≤ t, or similarity ≥ t)."""
        keep = self.distance.within(self.score, threshold)
        return Candidates(self.i[keep], self.j[keep], self.score[keep], self.distance, self.cross)

    def sorted(self) -> Candidates:
        """Best first, ties broken by (i, j)."""
        order = np.lexsort((self.j, self.i, self.distance.order_key(self.score)))
        return Candidates(
            self.i[order], self.j[order], self.score[order], self.distance, self.cross
        )

    @classmethod
    def empty(cls, distance: DistanceKind, cross: bool = False) -> Candidates:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), np.zeros(0, dtype=DistanceKind(distance).dtype), distance, cross)

    @classmethod
    def concat(
        cls, parts: list[Candidates], distance: DistanceKind, cross: bool = False
    ) -> Candidates:
        if not parts:
            return cls.empty(distance, cross)
        return cls(
            np.concatenate([p.i for p in parts]),
            np.concatenate([p.j for p in parts]),
            np.concatenate([p.score for p in parts]),
            distance,
            cross,
        )

    def save(self, path: str | Path) -> None:
        write_npz(
            path,
            {"i": self.i, "j": self.j, "score": self.score},
            {"metric": self.distance, "cross": self.cross},  # on-disk key: still "metric"
            header_key="meta",
        )

    @classmethod
    def load(
        cls, path: str | Path, n: int | None = None, *, max_bytes: int | None = None
    ) -> Candidates:
        """Read candidates saved by ``save``, refusing (``DamagedFile``) a damaged or hostile
        file before it costs memory: layout and size via ``read_npz``, and with the corpus
        size ``n``, indices in ``[0, n)`` and at most ``n * (n - 1)`` pairs (``n * n`` cross)."""
        arrays, meta = read_npz_header(
            path,
            {"i": ("iu", 1), "j": ("iu", 1), "score": ("iuf", 1)},
            header_key="meta",
            max_bytes=max_bytes,
        )
        try:
            distance, cross = meta["metric"], meta["cross"]
        except KeyError as e:
            raise DamagedFile(f"{path}: unreadable metadata ({e})") from None
        if distance not in list(DistanceKind) or not isinstance(cross, bool):
            raise DamagedFile(f"{path}: unknown metric {distance!r} or cross {cross!r}")
        i, j, score = arrays["i"], arrays["j"], arrays["score"]
        if not len(i) == len(j) == len(score):
            raise DamagedFile(f"{path}: i, j and score differ in length")
        if n is not None:
            most = n * n if cross else n * (n - 1)
            if len(i) > most:
                raise DamagedFile(f"{path}: {len(i):,} pairs, more than {n} images can have")
            for side in (i, j):
                if len(side) and (int(side.min()) < 0 or int(side.max()) >= n):
                    raise DamagedFile(f"{path}: indices outside the {n} images of the run")
        return cls(i, j, score, distance, cross)


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])``, without the loop."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths  # where each range begins in the output
    return np.repeat(starts - offsets, lengths) + np.arange(total)


@dataclass
class GroupedCandidates:
    """Undirected pairs within one collection, with images of identical codes collapsed into one
    class: memory grows with the number of images, not with the square of a group's size.

    ``classes[x]`` is the class of image ``x``; two images of one class are duplicates at
    distance 0. ``between`` holds pairs of classes (``i``/``j`` are class labels, ``i < j``) with
    the score that every member of one class has with every member of the other. 5,000 identical
    images are one class and no pair here, instead of 12.5 M pairs. ``expand()`` gives the plain
    ``Candidates`` for whoever needs every pair. Only distance metrics collapse: a cosine
    similarity is computed, never assumed, so cosine classes have one member each.
    """

    classes: np.ndarray
    between: Candidates

    def __post_init__(self) -> None:
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        if self.between.cross:
            raise ValueError("GroupedCandidates holds undirected pairs within one collection")
        if len(self.classes) and self.classes.min() < 0:
            raise ValueError("class labels must not be negative")
        n = self.n_classes
        if len(self.between) and (self.between.j.max() >= n or self.between.i.min() < 0):
            raise ValueError(f"a pair names a class outside the {n} classes")
        if self.between.higher_is_better and len(self.classes) > n:
            raise ValueError("cosine pairs cannot be collapsed: every class needs one member")

    @property
    def distance(self) -> DistanceKind:
        return self.between.distance

    @property
    def n_classes(self) -> int:
        return int(self.classes.max()) + 1 if len(self.classes) else 0

    def sizes(self) -> np.ndarray:
        """Members per class."""
        return np.bincount(self.classes, minlength=self.n_classes)

    def members(self) -> tuple[np.ndarray, np.ndarray]:
        """(order, bounds): the members of class c are ``order[bounds[c]:bounds[c + 1]]``,
        ascending."""
        order = np.argsort(self.classes, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(self.sizes())])
        return order, bounds

    def adjacency(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bounds, classes, scores): the classes paired with class c, and their scores, are at
        ``bounds[c]:bounds[c + 1]``."""
        b = self.between
        src = np.concatenate([b.i, b.j])
        order = np.argsort(src, kind="stable")
        dst = np.concatenate([b.j, b.i])[order]
        score = np.concatenate([b.score, b.score])[order]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=self.n_classes))])
        return bounds, dst, score

    def __len__(self) -> int:
        """The number of image pairs: within every class, and across every class pair."""
        sizes = self.sizes().astype(np.int64)
        within = int((sizes * (sizes - 1) // 2).sum())
        return within + int((sizes[self.between.i] * sizes[self.between.j]).sum())

    def expand(self) -> Candidates:
        """Every image pair, exactly as a range search over all images returns it (sorted).

        Memory is O(pairs): for evaluation and small results, not for big groups.
        """
        order, bounds = self.members()
        sizes = np.diff(bounds)
        c = np.arange(self.n_classes)
        # every ordered (member, member) of each class, then the pairs of class pairs
        ci = np.concatenate([c, self.between.i])
        cj = np.concatenate([c, self.between.j])
        score = np.concatenate([np.zeros(len(c), self.between.score.dtype), self.between.score])
        count = sizes[ci] * sizes[cj]
        pair = np.repeat(np.arange(len(ci)), count)
        t = concat_ranges(np.zeros(len(ci), np.int64), count)
        i = order[bounds[ci][pair] + t // sizes[cj][pair]]
        j = order[bounds[cj][pair] + t % sizes[cj][pair]]
        keep = (i < j) | (pair >= len(c))  # within a class: each unordered pair once, no self
        i, j = canonical_pairs(i[keep], j[keep])
        return Candidates(i, j, score[pair[keep]], self.distance).sorted()

    @classmethod
    def from_candidates(cls, candidates: Candidates, n: int) -> GroupedCandidates:
        """Plain pairs among ``n`` images, one class per image (nothing collapsed)."""
        if candidates.cross:
            raise ValueError("GroupedCandidates holds undirected pairs within one collection")
        return cls(np.arange(n), candidates)
