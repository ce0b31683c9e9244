"""The in-process index backend: codes kept on disk, searched in memory, one query at a time.

Storage follows ``dupbench.encoding_store``: every ``add`` writes one append-only shard (ids and
codes in one structured ``.npy``), fsync'd and renamed *before* a SQLite (WAL) log row points at
it; ``remove`` appends log rows. Replaying the log in order rebuilds the live set, so a kill at
any point leaves at worst a shard no row names, deleted by the next writer. Every ``MAX_SHARDS``
shards, the live rows are written to one checkpoint shard whose log row says "start from here"
(``base``) and the log rows and shards before it are deleted.

Search answers a single query fast instead of all pairs: Hamming codes sit in one contiguous
uint64 array and a query is one XOR + popcount pass (a few ms at 1M 64-bit codes, exact at any
radius; the multi-index search of ``dupbench.search.mih`` wins only for all-pairs joins);
cosine rows go to a FAISS flat inner-product index on unit vectors; Euclidean rows are compared
with a query in one numpy pass; exact digests to a dict.
Removed rows are masked and compacted away once they are a quarter of the array.

Readers in other processes see a writer's commits: every query first replays new log rows
(``PRAGMA data_version`` tells in microseconds whether there are any). Within a process, writes
are serialised (``_write_lock``, held across the fsyncs), the in-memory arrays change under
``_lock`` only while a committed shard is appended, and queries search a snapshot of the arrays;
so a query never waits for a writer's disk. ``_db_lock`` serialises the one SQLite connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.encoding_store import write_durably
from dupbench.errors import MissingExtraError, check_parameters
from dupbench.index.backend import check_k, fitted_codes
from dupbench.records import Kind
from dupbench.search.cosine import unit_rows

FOLDER = "local"
DATABASE = "log.sqlite"
SHARDS = "shards"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, shard INTEGER, removed INTEGER,
    base INTEGER NOT NULL DEFAULT 0,
    CHECK ((shard IS NULL) != (removed IS NULL))
);
"""
#: shards (one per ``add``) before they are merged into one checkpoint shard: keeps the number
#: of files, and the time a reader takes to open the index, bounded however adds arrive
MAX_SHARDS = 256
#: rows an array grows by at least, so that adding one code at a time stays amortised O(1)
_MIN_CAPACITY = 1024


class LocalBackend:
    """``IndexBackend`` kept under ``folder/local``; see the module docstring."""

    def __init__(
        self,
        folder: str | os.PathLike,
        kind: Kind,
        distance: DistanceKind,
        size: int,
        **options: Any,
    ) -> None:
        check_parameters(options, (), "local index backend")
        self.kind, self.distance, self.size = kind, DistanceKind(distance), int(size)
        self.path = Path(folder) / FOLDER
        (self.path / SHARDS).mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path / DATABASE, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._db_lock = threading.RLock()
        self._max_id = -1  # ids above it are new: no replacement check needed
        self._width = self.size if kind == "float" else max(1, -(-self.size // 64))
        self._dtype = np.dtype(np.float32 if kind == "float" else np.uint64)
        self._reset(0)
        self._seen_seq = 0
        self._data_version = -1
        self._cleaned = False  # orphan shards are looked for once, by the first add
        self._refresh(force=True)

    # -- state ----------------------------------------------------------------------------------
    def _reset(self, capacity: int) -> None:
        self._ids = np.empty(capacity, np.int64)
        self._codes = np.empty((capacity, self._width), self._dtype)
        self._alive = np.zeros(capacity, bool)
        self._n = 0
        self._live = 0
        self._by_code: dict[bytes, list[int]] = {}  # equal distance: code bytes -> rows
        self._faiss = None
        if self.distance is DistanceKind.COSINE:
            try:
                import faiss
            except ImportError as e:
                raise MissingExtraError(
                    "a cosine index needs faiss: pip install 'dupbench[faiss]'"
                ) from e
            self._faiss = faiss.IndexFlatIP(self._width)

    def _append(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Put rows in memory (caller holds the lock); an id present already is replaced."""
        if len(ids) and ids.min() <= self._max_id:
            self._mask(ids)
        self._max_id = max(self._max_id, int(ids.max(initial=-1)))
        n, m = self._n, len(ids)
        if n + m > len(self._ids):
            self._grow(max(2 * len(self._ids), n + m, _MIN_CAPACITY))
        self._ids[n : n + m] = ids
        self._codes[n : n + m] = codes
        self._alive[n : n + m] = True
        if self.distance is DistanceKind.EQUAL:
            for row in range(n, n + m):
                self._by_code.setdefault(self._codes[row].tobytes(), []).append(row)
        if self._faiss is not None:
            self._faiss.add(np.ascontiguousarray(codes))
        self._n += m
        self._live += m

    def _grow(self, capacity: int) -> None:
        """New arrays (never resized in place: a query may be reading the old ones)."""
        for name in ("_ids", "_codes", "_alive"):
            old = getattr(self, name)
            new = (np.zeros if name == "_alive" else np.empty)(
                (capacity, *old.shape[1:]), old.dtype
            )
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def _mask(self, ids: np.ndarray) -> None:
        if self._live == 0 or len(ids) == 0:
            return
        rows = np.flatnonzero(np.isin(self._ids[: self._n], ids) & self._alive[: self._n])
        if len(rows):
            alive = self._alive.copy()  # a copy: a query holding the old mask stays consistent
            alive[rows] = False
            self._alive = alive
            self._live -= len(rows)

    def _compact(self) -> None:
        """Drop masked rows once they are a quarter of the array (keeps queries O(live))."""
        if self._n - self._live <= max(_MIN_CAPACITY, self._n // 4):
            return
        keep = np.flatnonzero(self._alive[: self._n])
        ids, codes = self._ids[keep], self._codes[keep]
        self._reset(max(len(keep), _MIN_CAPACITY))
        self._append(ids, codes)

    # -- durability -------------------------------------------------------------------------------
    def _shard_path(self, shard: int) -> Path:
        return self.path / SHARDS / f"{shard:08d}.npy"

    def _refresh(self, force: bool = False) -> None:
        """Replay log rows committed since the last look (by another process, or by this one
        when ``force``: ``data_version`` changes only for other connections' commits)."""
        with self._lock:
            with self._db_lock:
                version = self._db.execute("PRAGMA data_version").fetchone()[0]
                if version == self._data_version and not force:
                    return
                rows = self._db.execute(
                    "SELECT seq, shard, removed, base FROM log WHERE seq > ? ORDER BY seq",
                    (self._seen_seq,),
                ).fetchall()
            for seq, shard, removed, base in rows:
                if base:
                    self._reset(0)
                if shard is not None:
                    try:
                        data = np.load(self._shard_path(shard))
                    except FileNotFoundError:  # merged into a checkpoint meanwhile: start over
                        self._reset(0)
                        self._seen_seq = 0
                        self._refresh(force=True)
                        return
                    self._append(data["id"], data["code"].reshape(len(data), self._width))
                else:
                    self._mask(np.array([removed], np.int64))
                self._seen_seq = seq
            self._compact()
            self._data_version = version

    def _commit(self, sql: str, rows: list[tuple]) -> int:
        """Run ``sql`` for every row in one transaction; returns the last log seq."""
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(sql, rows)
                (seq,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM log").fetchone()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return seq

    def _select(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, args).fetchall()

    # -- the IndexBackend contract ----------------------------------------------------------------
    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64).reshape(-1)
        codes = self._checked(codes)
        if len(ids) != len(codes):
            raise ValueError(f"{len(ids)} ids but {len(codes)} codes")
        if len(ids) == 0:
            return
        if self.distance is DistanceKind.COSINE:
            codes = unit_rows(codes)
        with self._write_lock:
            if not self._cleaned:
                self._delete_orphans()
                self._cleaned = True
            self._write_shard(ids, codes, base=False)
            self._refresh(force=True)
            (shards,) = self._select("SELECT COUNT(*) FROM log WHERE shard IS NOT NULL")[0]
            if shards > MAX_SHARDS:
                self._checkpoint()

    def _write_shard(self, ids: np.ndarray, codes: np.ndarray, base: bool) -> int:
        """Write a shard durably, then commit its log row; returns the row's seq."""
        (shard,) = self._select("SELECT COALESCE(MAX(shard) + 1, 0) FROM log")[0]
        record = np.empty(len(ids), [("id", "<i8"), ("code", self._dtype, (self._width,))])
        record["id"], record["code"] = ids, codes
        write_durably(self._shard_path(shard), record)
        return self._commit("INSERT INTO log (shard, base) VALUES (?, ?)", [(shard, int(base))])

    def _checkpoint(self) -> None:
        """Merge the live rows into one base shard; drop the log rows and shards before it."""
        ids, codes = self.items()
        seq = self._write_shard(ids, codes, base=True)
        self._commit("DELETE FROM log WHERE seq < ?", [(seq,)])
        self._delete_orphans()
        self._refresh(force=True)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) == 0:
            return
        with self._write_lock:
            self._commit("INSERT INTO log (removed) VALUES (?)", [(int(i),) for i in ids])
            self._refresh(force=True)

    def query(
        self, codes: np.ndarray, threshold: float, k: int | None
    ) -> list[list[tuple[int, float]]]:
        codes = self._checked(codes)
        check_k(k)
        self._refresh()
        if self.distance is DistanceKind.COSINE:
            return [self._query_cosine(row, threshold, k) for row in unit_rows(codes)]
        if self.distance is DistanceKind.EQUAL:
            return [self._query_equal(row, k) for row in codes]
        if self.distance is DistanceKind.EUCLIDEAN:
            return [self._query_euclidean(row, threshold, k) for row in codes]
        return [self._query_hamming(row, threshold, k) for row in codes]

    def __len__(self) -> int:
        self._refresh()
        return self._live

    def close(self) -> None:
        with self._db_lock:
            self._db.close()

    # -- extras the Index uses when present -------------------------------------------------------
    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, codes) of every live row, in insertion order (for all-pairs searches)."""
        self._refresh()
        with self._lock:
            keep = np.flatnonzero(self._alive[: self._n])
            return self._ids[keep], self._codes[keep]

    # -- searching ----------------------------------------------------------------------------
    def _snapshot(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        with self._lock:
            return self._n, self._ids, self._codes, self._alive

    def _query_hamming(
        self, code: np.ndarray, threshold: float, k: int | None
    ) -> list[tuple[int, float]]:
        n, ids, codes, alive = self._snapshot()
        dist = np.bitwise_count(codes[:n, 0] ^ code[0])  # uint8: up to 255 bits
        if self._width > 1:
            dist = dist.astype(np.uint16)
            for w in range(1, self._width):
                dist += np.bitwise_count(codes[:n, w] ^ code[w])
        rows = np.flatnonzero((dist <= threshold) & alive[:n])
        return _ranked(ids[rows], dist[rows], k, descending=False)

    def _query_euclidean(
        self, vector: np.ndarray, threshold: float, k: int | None
    ) -> list[tuple[int, float]]:
        n, ids, codes, alive = self._snapshot()
        difference = codes[:n].astype(np.float64) - vector.astype(np.float64)
        dist = np.sqrt(np.einsum("ij,ij->i", difference, difference))
        rows = np.flatnonzero((dist <= threshold) & alive[:n])
        return _ranked(ids[rows], dist[rows], k, descending=False)

    def _query_equal(self, code: np.ndarray, k: int | None) -> list[tuple[int, float]]:
        with self._lock:
            rows = [r for r in self._by_code.get(code.tobytes(), ()) if self._alive[r]]
            found = self._ids[rows]
        found.sort()
        return [(int(i), 0.0) for i in found[:k]]

    def _query_cosine(
        self, vector: np.ndarray, threshold: float, k: int | None
    ) -> list[tuple[int, float]]:
        with self._lock:  # FAISS indexes are not safe to search while another thread adds
            n, ids, alive, index = self._n, self._ids, self._alive, self._faiss
            if n == 0:
                return []
            assert index is not None  # _reset makes one for the cosine distance
            q = vector.reshape(1, -1)
            if k is None:
                lims, sims, rows = index.range_search(q, float(threshold))
                sims, rows = sims[lims[0] : lims[1]], rows[lims[0] : lims[1]]
            else:
                sims, rows = index.search(q, min(n, k + n - self._live))
                sims, rows = sims[0], rows[0]
        keep = (rows >= 0) & (sims >= threshold)
        rows, sims = rows[keep], sims[keep]
        keep = alive[rows]
        return _ranked(ids[rows[keep]], sims[keep], k, descending=True)

    def _checked(self, codes: np.ndarray) -> np.ndarray:
        return fitted_codes(codes, self._width, self._dtype)

    def _delete_orphans(self) -> None:
        """Shards no log row names: a writer killed between writing one and committing it."""
        known = {
            self._shard_path(s).name
            for (s,) in self._select("SELECT shard FROM log WHERE shard IS NOT NULL")
        }
        for p in (self.path / SHARDS).iterdir():
            if p.name not in known:
                p.unlink(missing_ok=True)


def _ranked(
    ids: np.ndarray, scores: np.ndarray, k: int | None, descending: bool
) -> list[tuple[int, float]]:
    """Best first, ties by id, at most ``k``."""
    order = np.lexsort((ids, -scores if descending else scores))[:k]
    return [(int(i), float(s)) for i, s in zip(ids[order], scores[order])]
