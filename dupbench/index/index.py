"""``Index``: a folder that remembers every image added to it and answers "seen it before?".

    manifest.json     the method configuration and the backend (name and options)
    entries.sqlite    per entry: int64 id, name (a file's absolute path, or an upload's name),
                      size, mtime_ns, content digest and state; WAL mode: one writer, any readers
    local/            the local backend's codes (see ``dupbench.index.local``), or nothing when
                      the codes live in a remote engine (Milvus)

An entry's codes and its row live in two stores (the backend and SQLite), so each change is
three steps: the rows are committed as ``pending`` (their ids are now reserved), the backend
stores the codes, then the rows become ``live`` in one transaction that also marks the entries
they replace ``removing``; removals go ``removing`` -> backend -> deleted. A kill between steps
leaves rows that say what to undo or finish, and the next writer (or ``open``, when no writer is
busy) does it; queries only ever report ``live`` rows, so a reader never sees half a change.
Ids are AUTOINCREMENT: never reused, so a stale backend row can never alias a new entry.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from dupbench import images, locks
from dupbench.cluster import Cluster, batch_encoder
from dupbench.distance import DistanceKind
from dupbench.encoding_store import describe_config, method_config
from dupbench.errors import DupbenchError, UsageError
from dupbench.filebytes import content_digest, digest
from dupbench.files import write_json
from dupbench.index.backend import IndexBackend, backend_class, check_k, open_backend
from dupbench.methods import Method, get_method
from dupbench.records import Encodings, Skipped

FORMAT = "dupbench-index"
VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "entries.sqlite"
LOCK = "writer.lock"
#: what a ``create`` killed before writing the manifest may have left (and may reuse)
_OWN_FILES = {DATABASE, DATABASE + "-wal", DATABASE + "-shm", LOCK, "local", "milvus"}
#: files encoded and committed together: a kill loses at most one batch of work
DEFAULT_BATCH = 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, digest TEXT, added REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'live', 'removing'))
);
CREATE UNIQUE INDEX IF NOT EXISTS live_names ON entries(name) WHERE state = 'live';
CREATE INDEX IF NOT EXISTS states ON entries(state);
"""


class IndexFolderError(UsageError):
    """An index folder that cannot be used as asked (one line for the user)."""


@dataclass(frozen=True)
class Match:
    """One indexed entry similar to a query: Hamming distance, cosine similarity or 0 (equal)."""

    id: int
    name: str
    score: float


@dataclass
class AddResult:
    """What one ``add`` did: entries added (id, name), files already there, files unreadable."""

    added: list[tuple[int, str]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "unchanged": len(self.unchanged),
            "skipped": len(self.skipped),
        }


@dataclass(frozen=True)
class _Candidate:
    source: str | os.PathLike | bytes  # a path, or an upload's bytes
    name: str
    size: int
    mtime_ns: int


class Index:
    """A persistent similarity index of images for one method; see the module docstring.

    Thread-safe: adds and removes are serialised (and, across processes, take the folder's
    writer lock); queries run concurrently with them and with each other.
    """

    def __init__(self, path: Path, method: Method, manifest: dict[str, Any]) -> None:
        self.path = path
        self.method = method
        self.manifest = manifest
        self.backend: IndexBackend = open_backend(
            manifest["backend"],
            path,
            method.kind,
            method.distance,
            method.size,
            **manifest["backend_options"],
        )
        self._db = sqlite3.connect(path / DATABASE, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        self._db_lock = threading.Lock()  # one connection, many threads: one statement at a time
        self._write_lock = threading.Lock()

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        method: str | Method = "phash",
        *,
        backend: str = "local",
        uri: str | None = None,
        backend_options: dict[str, Any] | None = None,
        **params: Any,
    ) -> Index:
        """A new, empty index at ``path`` (absent or an empty folder) for ``method(**params)``.

        ``backend``: "local" (in process) or "milvus"; ``uri`` (a Milvus server) and
        ``backend_options`` go to the backend and are recorded with the index.
        """
        path = Path(path)
        m = get_method(method, **params)
        backend_class(backend)  # an unknown name (or a missing extra) fails before any file
        options = dict(backend_options or {})
        if uri is not None:
            options["uri"] = uri
        if path.exists() and (
            not path.is_dir()
            or (path / MANIFEST).exists()
            or {p.name for p in path.iterdir()} - _OWN_FILES
        ):
            raise IndexFolderError(f"{path}: exists and is not an empty folder")
        path.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "config": method_config(m),
            "backend": backend,
            "backend_options": options,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        index = cls(path, m, manifest)
        write_json(path / MANIFEST, manifest)  # last: an index exists once its manifest does
        return index

    @classmethod
    def open(
        cls, path: str | os.PathLike, method: str | Method | None = None, **params: Any
    ) -> Index:
        """Open the index at ``path``. With ``method``, refuse an index made with another
        configuration (its codes would not be comparable with the query's)."""
        path = Path(path)
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexFolderError(
                f"{path}: no index here (create one with `dupbench index create`)"
            ) from None
        except (OSError, ValueError) as e:
            raise IndexFolderError(f"{path}: unreadable index manifest ({e})") from None
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise IndexFolderError(f"{path}: not a version-{VERSION} dupbench index")
        stored = manifest["config"]
        m = get_method(stored["method"], **stored["params"])
        if method_config(m) != stored:
            raise IndexFolderError(
                f"{path}: made with {describe_config(stored)}, which this version of "
                f"dupbench encodes as {describe_config(method_config(m))}"
            )
        if method is not None:
            asked = method_config(get_method(method, **params))
            if asked != stored:
                raise IndexFolderError(
                    f"{path} holds {describe_config(stored)} codes, not {describe_config(asked)}"
                )
        index = cls(path, m, manifest)
        index._recover_if_idle()
        return index

    def close(self) -> None:
        self.backend.close()
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._all("SELECT COUNT(*) FROM entries WHERE state = 'live'")[0][0]

    @property
    def default_threshold(self) -> float:
        return float(self.method.default_threshold)

    def query(
        self,
        image: images.Source,
        threshold: float | None = None,
        k: int | None = None,
        *,
        max_pixels: int | None = None,
    ) -> list[Match]:
        """Entries similar to one image (a path, bytes, PIL image or pixel array), best first:
        Hamming distance <= ``threshold``, cosine similarity >= ``threshold``, or identical
        digests (default threshold: the method's); at most ``k``. Unreadable input raises a
        one-line ``DupbenchError``; ``max_pixels`` refuses larger images before decoding."""
        return self.query_codes(self.encode(image, max_pixels=max_pixels), threshold, k)[0]

    def query_codes(
        self, codes: np.ndarray, threshold: float | None = None, k: int | None = None
    ) -> list[list[Match]]:
        """``query`` for precomputed codes (rows as ``method.encode`` gives them), per row."""
        t = self.default_threshold if threshold is None else float(threshold)
        if self.method.distance is DistanceKind.COSINE and not -1.0 <= t <= 1.0:
            raise UsageError(f"a cosine threshold is a similarity in [-1, 1], got {t}")
        check_k(k)
        found = self.backend.query(codes, t, k)
        names = self._names({i for row in found for i, _ in row})
        score = int if self.method.distance.discrete else float  # distances are whole bits
        return [[Match(i, names[i], score(s)) for i, s in row if i in names] for row in found]

    def encode(self, image: images.Source, *, max_pixels: int | None = None) -> np.ndarray:
        """One image's code row, (1, width); a one-line ``DupbenchError`` if it is unusable."""
        if max_pixels is not None:
            images.load(image, max_pixels=max_pixels).close()  # header check, then a decode
        enc = self.method.encode([image])
        if enc.skipped:
            raise DupbenchError(f"cannot use {enc.skipped[0].path}: {enc.skipped[0].reason}")
        return enc.codes

    def entries(self, ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """Live entries (all, or these ids) as dicts: id, name, size, mtime_ns, digest, added."""
        sql = "SELECT id, name, size, mtime_ns, digest, added FROM entries WHERE state = 'live'"
        keys = ("id", "name", "size", "mtime_ns", "digest", "added")
        if ids is None:
            rows = self._all(sql + " ORDER BY id")
        else:
            rows = [
                r
                for chunk in _chunks(sorted({int(i) for i in ids}), 900)
                for r in self._all(sql + f" AND id IN ({','.join('?' * len(chunk))})", chunk)
            ]
        return [dict(zip(keys, r)) for r in rows]

    def lookup(self, name: str) -> dict[str, Any] | None:
        """The live entry named ``name`` (a file's absolute path, or an upload's name)."""
        row = self._one("SELECT id FROM entries WHERE state = 'live' AND name = ?", (name,))
        return self.entries([row[0]])[0] if row else None

    def info(self) -> dict[str, Any]:
        """What ``dupbench index info`` and ``GET /stats`` show."""
        config = self.manifest["config"]
        on_disk = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return {
            "path": str(self.path),
            "method": config["method"],
            "params": config["params"],
            "kind": config["kind"],
            "metric": config["metric"],
            "size": config["size"],
            "default_threshold": self.default_threshold,
            "backend": self.manifest["backend"],
            "entries": len(self),
            "bytes_on_disk": on_disk,
            "created": self.manifest.get("created"),
        }

    def find_duplicates(self, threshold: float | None = None, scores: bool = False):
        """``{name: [duplicates]}`` among the indexed entries, as ``dupbench.find_duplicates``
        returns it (every entry a key; with ``scores``, ``(name, score)`` pairs best first)."""
        from dupbench.duplicates import DuplicateResult
        from dupbench.search import range_groups

        items = getattr(self.backend, "items", None)
        if items is None:
            raise UsageError(
                f"the {self.manifest['backend']} backend cannot list its codes; "
                "find_duplicates needs one that can"
            )
        ids, codes = items()
        names = self._names(set(ids.tolist()))
        keep = np.array([int(i) in names for i in ids], bool)
        ids, codes = ids[keep], codes[keep]
        t = self.default_threshold if threshold is None else float(threshold)
        pairs = range_groups(codes, t, self.method.distance)
        labels = [names[int(i)] for i in ids]
        return DuplicateResult(labels, pairs, [], labels).to_map(scores=scores)

    # -- writing ----------------------------------------------------------------------------------
    def add(
        self,
        files: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        recursive: bool = False,
        workers: int = 1,
        batch_size: int = DEFAULT_BATCH,
        progress: bool = False,
        cluster: str | Cluster | None = None,
    ) -> AddResult:
        """Add a folder's images (``recursive``: and its subfolders') or a list of files.

        Only new and changed files are encoded: a file whose size and mtime, or else whose
        content digest, match its entry is left as it is; a changed file's entry is replaced
        (new id). Unreadable files are skipped with their reason. Safe to kill and run again.
        ``cluster``: encode on a Dask cluster (``dupbench.cluster``: an address, ``"local:N"``
        or an open ``Cluster``) instead of ``workers`` local processes.
        """
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}")
        result = AddResult()
        candidates = self._candidates(files, recursive, result)
        with self._writer(), batch_encoder(self.method, workers, cluster, progress) as encode:
            for batch in _chunks(candidates, batch_size):
                self._add_batch(batch, encode, result)
        return result

    def add_bytes(self, data: bytes, name: str, *, max_pixels: int | None = None) -> AddResult:
        """Add one uploaded image under ``name`` (the service's ``POST /add``). The same name
        with the same bytes is left as it is; with other bytes its entry is replaced."""
        if max_pixels is not None:
            images.load(data, max_pixels=max_pixels).close()
        result = AddResult()
        with self._writer():
            self._add_batch([_Candidate(data, name, len(data), 0)], self.method.encode, result)
        return result

    def add_codes(self, names: Sequence[str], codes: np.ndarray) -> list[int]:
        """Add precomputed codes under ``names`` (no files; for benchmarks and codes encoded
        elsewhere); returns their ids. Names already present are replaced."""
        codes = np.asarray(codes)
        if len(names) != len(codes):
            raise UsageError(f"{len(names)} names but {len(codes)} codes")
        with self._writer():
            return self._commit_codes([(n, 0, 0, None) for n in names], codes)

    def remove(self, ids: Iterable[int]) -> list[int]:
        """Remove these entries; returns the ids that were present (others are ignored)."""
        wanted = sorted({int(i) for i in ids})
        with self._writer():
            present = [e["id"] for e in self.entries(wanted)]
            if present:
                with self._transaction() as db:
                    db.executemany(
                        "UPDATE entries SET state = 'removing' WHERE id = ?",
                        [(i,) for i in present],
                    )
                self._finish_removals()
        return present

    # -- the steps of a change ------------------------------------------------------------------
    def _candidates(self, files, recursive: bool, result: AddResult) -> list[_Candidate]:
        """The files asked for, with their size and mtime; unusable paths become skips."""
        if isinstance(files, (str, os.PathLike)) and Path(files).is_dir():
            scan = images.scan_files(files, recursive=recursive)
            result.skipped.extend(scan.skipped)
            return [
                _Candidate(str(f.path.resolve()), str(f.path.resolve()), f.size, f.mtime_ns)
                for f in scan.files
            ]
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        out = []
        for f in files:
            p = Path(f).resolve()
            try:
                st = p.stat()
            except OSError as e:
                result.skipped.append(Skipped(str(f), e.strerror or str(e)))
                continue
            if not p.is_file():
                result.skipped.append(Skipped(str(f), "not a regular file"))
                continue
            out.append(_Candidate(str(p), str(p), st.st_size, st.st_mtime_ns))
        return out

    def _add_batch(
        self,
        batch: list[_Candidate],
        encode: Callable[[list, list[str]], Encodings],
        result: AddResult,
    ) -> None:
        """Sort a batch into unchanged and to-encode, encode, and commit the codes."""
        todo, digests = [], {}
        for c in batch:
            row = self._one(
                "SELECT size, mtime_ns, digest FROM entries WHERE state = 'live' AND name = ?",
                (c.name,),
            )
            same_stat = row is not None and tuple(row[:2]) == (c.size, c.mtime_ns)
            if same_stat and not isinstance(c.source, bytes):  # uploads have no mtime
                result.unchanged.append(c.name)
                continue
            try:
                digest = _digest(c.source)
            except OSError as e:
                result.skipped.append(Skipped(c.name, e.strerror or str(e)))
                continue
            if row is not None and row[2] == digest:  # touched, not changed
                with self._transaction() as db:
                    db.execute(
                        "UPDATE entries SET size = ?, mtime_ns = ? WHERE state = 'live' "
                        "AND name = ?",
                        (c.size, c.mtime_ns, c.name),
                    )
                result.unchanged.append(c.name)
                continue
            todo.append(c)
            digests[c.name] = digest
        if not todo:
            return
        enc = encode([c.source for c in todo], [c.name for c in todo])
        result.skipped.extend(enc.skipped)
        by_name = {c.name: c for c in todo}
        rows = [(n, by_name[n].size, by_name[n].mtime_ns, digests[n]) for n in enc.ids]
        ids = self._commit_codes(rows, enc.codes)
        result.added.extend(zip(ids, enc.ids))

    def _commit_codes(self, rows: list[tuple], codes: np.ndarray) -> list[int]:
        """Rows (name, size, mtime_ns, digest) and their codes: pending -> backend -> live."""
        if not rows:
            return []
        now = time.time()
        with self._transaction() as db:
            ids = [
                cast(  # an INSERT sets lastrowid
                    int,
                    db.execute(
                        "INSERT INTO entries (name, size, mtime_ns, digest, added, state) "
                        "VALUES (?, ?, ?, ?, ?, 'pending')",
                        (*r, now),
                    ).lastrowid,
                )
                for r in rows
            ]
        self.backend.add(np.array(ids, np.int64), codes)
        names = [(r[0],) for r in rows]
        with self._transaction() as db:
            db.executemany(
                "UPDATE entries SET state = 'removing' WHERE state = 'live' AND name = ?", names
            )
            db.executemany("UPDATE entries SET state = 'live' WHERE id = ?", [(i,) for i in ids])
        self._finish_removals()
        return ids

    def _finish_removals(self) -> None:
        """Take ``removing`` rows out of the backend, then delete them."""
        gone = [i for (i,) in self._all("SELECT id FROM entries WHERE state = 'removing'")]
        if gone:
            self.backend.remove(np.array(gone, np.int64))
            with self._transaction() as db:
                db.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in gone])

    def _recover(self) -> None:
        """Finish what a killed writer left: undo pending adds, complete removals."""
        pending = [i for (i,) in self._all("SELECT id FROM entries WHERE state = 'pending'")]
        if pending:
            self.backend.remove(np.array(pending, np.int64))
            with self._transaction() as db:
                db.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in pending])
        self._finish_removals()

    def _recover_if_idle(self) -> None:
        try:
            with self._writer(timeout=0):
                pass
        except locks.LockTimeout:
            pass  # a writer is at work; it recovers when it takes the lock

    # -- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _writer(self, timeout: float | None = locks.DEFAULT_TIMEOUT) -> Iterator[None]:
        """The one writer: this process's threads one at a time, then other processes."""
        if not self._write_lock.acquire(blocking=timeout != 0):
            raise locks.LockTimeout(f"{self.path} is being written by another thread")
        try:
            with locks.hold(self.path / LOCK, f"write index {self.path}", timeout=timeout):
                self._recover()
                yield
        finally:
            self._write_lock.release()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: Sequence = ()) -> tuple | None:
        with self._db_lock:
            return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, args).fetchall()

    def _names(self, ids: set[int]) -> dict[int, str]:
        """Names of the live entries among ``ids`` (a backend may still hold a dead id)."""
        out: dict[int, str] = {}
        for chunk in _chunks(sorted(ids), 900):
            out.update(
                self._all(
                    "SELECT id, name FROM entries WHERE state = 'live' AND id IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                )
            )
        return out


def _digest(source: str | os.PathLike | bytes) -> str:
    """Hex BLAKE2b-128 of a file's or an upload's bytes (the same digest ``file_digest`` uses)."""
    if isinstance(source, bytes):
        return digest(source).hex()
    return content_digest(source)[0].hex()


def _chunks(items: Sequence, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


__all__ = ["AddResult", "Index", "IndexFolderError", "Match"]
