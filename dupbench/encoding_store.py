"""A resumable, out-of-core store of one method's codes for one folder of images.

Encoding millions of files takes hours: a crash, a new file or a second search must not mean
starting over, and the codes must never be held in memory twice. A store is a folder:

    manifest.json        the method configuration (name, params, kind, metric, size)
    files.sqlite         per file: id (path relative to the folder), size, mtime_ns, and either
                         the (shard, slot) of its code or the reason it was skipped; WAL mode, so
                         one writer and any number of readers
    shards/00000000.npy  append-only blocks of codes, one per encoded batch
    shards/00000000.extra.npz  for a method whose encodings keep an object per row beside the
                         code (``Encodings.extra_arrays``: the verified method's local
                         features), those of the same batch, so that they too are made once

Commit order makes a kill at any point recoverable: a shard (and its extra file) is written to a
temporary name, fsync'd and renamed (so it is complete or absent) *before* the SQLite
transaction that points rows at it commits. A crash leaves at worst a shard no row points at,
which the next writer deletes; readers only open shards the table lists. Replaced and removed
files leave dead rows in their shards (the store is append-only); ``encodings()`` copies only the
live ones.

A verified store made before the features were kept (shards without extra files) is refused
with a one-line ``StoreError``, not re-encoded behind the user's back: removing the folder
re-encodes, and hours of encoding are not thrown away unasked.
"""

from __future__ import annotations

import json
import os
import sqlite3
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dupbench import images
from dupbench.cluster import Cluster, batch_encoder
from dupbench.errors import UsageError
from dupbench.files import write_json
from dupbench.methods import Method, get_method
from dupbench.records import DamagedFile, Encodings, Skipped, read_npz

FORMAT = "dupbench-encoding-store"
VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "files.sqlite"
SHARDS = "shards"
LOCK = "writer.lock"
#: files per shard: large enough that the per-batch worker pool start is negligible, small
#: enough that a kill loses little work and a batch's decoded codes stay a few MB
DEFAULT_BATCH = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (
    shard INTEGER PRIMARY KEY, rows INTEGER NOT NULL, dtype TEXT NOT NULL, width INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    shard INTEGER REFERENCES shards(shard), slot INTEGER, reason TEXT,
    CHECK ((shard IS NULL) = (slot IS NULL) AND (shard IS NULL) != (reason IS NULL))
) WITHOUT ROWID;
"""


class StoreError(UsageError):
    """A store that cannot be used as asked; ``str(err)`` is a one-line message for the user."""


@dataclass(frozen=True)
class UpdateCounts:
    """What one ``update`` did. ``new + changed + unchanged`` is the number of files in the
    folder; ``skipped`` counts those of the new and changed files that could not be read."""

    new: int
    changed: int
    unchanged: int
    removed: int
    skipped: int

    @property
    def encoded(self) -> int:
        return self.new + self.changed - self.skipped


def method_config(method: Method) -> dict[str, Any]:
    """What identifies a method's codes: two configurations that differ may not share a store."""
    params = json.loads(json.dumps(method.params, sort_keys=True, default=str))
    return {
        "method": method.name,
        "params": params,
        "kind": method.kind,
        "metric": method.distance,  # the manifest key keeps its old name: old stores open
        "size": method.size,
    }


def describe_config(config: dict[str, Any]) -> str:
    """A method configuration in one line, for messages that refuse a store or an index."""
    args = ", ".join(f"{k}={v!r}" for k, v in config["params"].items())
    return f"{config['method']}({args}) [{config['kind']}, {config['size']}]"


class EncodingStore:
    """One method's codes for the files of one folder, kept on disk; see the module docstring."""

    def __init__(self, path: Path, method: Method, db: sqlite3.Connection) -> None:
        self.path = path
        self.method = method
        self._db = db
        self._extras_checked = False  # every listed shard has its extra file (when one is due)

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open_or_create(
        cls, path: str | os.PathLike, method: str | Method = "phash", **params: Any
    ) -> EncodingStore:
        """Open the store at ``path``, creating it for ``method`` if absent; a store made with
        another method configuration is refused (its codes would not be comparable)."""
        path = Path(path)
        method = get_method(method, **params)
        config = method_config(method)
        manifest = path / MANIFEST
        if manifest.exists():
            try:
                stored = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise StoreError(f"{path}: unreadable store manifest ({e})") from None
            if stored.get("format") != FORMAT or stored.get("version") != VERSION:
                raise StoreError(f"{path}: not a version-{VERSION} dupbench encoding store")
            if stored["config"] != config:
                raise StoreError(
                    f"{path} holds {describe_config(stored['config'])} codes, not "
                    f"{describe_config(config)}; use another store path"
                )
        elif path.exists() and not path.is_dir():
            raise StoreError(f"{path}: exists and is not a folder")
        elif path.exists() and set(os.listdir(path)) - {
            DATABASE,
            SHARDS,
            LOCK,
            DATABASE + "-wal",
            DATABASE + "-shm",
        }:
            raise StoreError(f"{path}: folder is not empty and is not an encoding store")
        (path / SHARDS).mkdir(parents=True, exist_ok=True)
        db = _connect(path / DATABASE)
        if not manifest.exists():  # written last: a store exists once its manifest does
            write_json(manifest, {"format": FORMAT, "version": VERSION, "config": config})
        return cls(path, method, db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Files in the current view with a code (skipped files not counted)."""
        return self._db.execute("SELECT COUNT(*) FROM files WHERE shard IS NOT NULL").fetchone()[0]

    @property
    def root(self) -> Path | None:
        """The folder this store mirrors (set by the first ``update``)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'root'").fetchone()
        return Path(row[0]) if row else None

    def encodings(self) -> Encodings:
        """The codes of the files currently in the folder, ordered by id, in one contiguous array
        filled straight from the memory-mapped shards (no per-shard copies are kept)."""
        with self._read():
            ids, shard_of, slot_of = [], array("i"), array("i")  # int32: 8 bytes a row
            for ident, shard, slot in self._db.execute(
                "SELECT id, shard, slot FROM files WHERE shard IS NOT NULL ORDER BY id"
            ):
                ids.append(ident)
                shard_of.append(shard)
                slot_of.append(slot)
            shards = self._db.execute("SELECT shard, rows, dtype, width FROM shards").fetchall()
            root = self.root
            skipped = [
                Skipped(str(root / ident), reason)
                for ident, reason in self._db.execute(
                    "SELECT id, reason FROM files WHERE reason IS NOT NULL ORDER BY id"
                )
            ]
        empty = self.method.encode([], [])
        shard_of_rows = np.frombuffer(shard_of, np.int32)
        slot_of_rows = np.frombuffer(slot_of, np.int32)
        layout = {s: (rows, np.dtype(dt), w) for s, rows, dt, w in shards}
        codes = self._gather(shard_of_rows, slot_of_rows, layout, empty.codes)
        enc = Encodings(
            ids, codes, empty.kind, empty.distance, empty.size, empty.method, empty.params, skipped
        )
        if not empty.saved_as:
            return enc
        extra = self._gather_extra(type(empty), shard_of_rows, slot_of_rows, layout)
        return type(empty).with_extra(enc, extra)

    def _gather(
        self, shard_of: np.ndarray, slot_of: np.ndarray, shards: dict, empty: np.ndarray
    ) -> np.ndarray:
        """Copy each row's code from its shard into one preallocated array."""
        if len(shard_of) == 0:
            return empty
        layouts = {(dt, w) for _, dt, w in shards.values()}
        if len(layouts) != 1:
            raise StoreError(f"{self.path}: shards disagree on code layout {sorted(layouts)}")
        dtype, width = layouts.pop()
        out = np.empty((len(shard_of), width), dtype)
        for shard, part in _by_shard(shard_of):
            rows, _, _ = shards[shard]
            try:
                codes = np.load(self._shard_path(shard), mmap_mode="r")
            except (OSError, ValueError) as e:
                raise StoreError(
                    f"{self.path}: shard {shard} is unreadable ({e}); remove the "
                    "store folder to rebuild it"
                ) from None
            if codes.shape != (rows, width) or codes.dtype != dtype:
                raise StoreError(
                    f"{self._shard_path(shard)}: damaged shard, {codes.shape} "
                    f"{codes.dtype} instead of {(rows, width)} {dtype}"
                )
            out[part] = codes[slot_of[part]]
            del codes
        return out

    def _gather_extra(
        self, kind: type[Encodings], shard_of: np.ndarray, slot_of: np.ndarray, shards: dict
    ) -> list:
        """Each row's object (``Encodings.extra_rows``) from its shard's extra file, copied
        out so that the shard's arrays, dead rows and all, are freed one shard at a time."""
        self._check_extras()
        out: list = [None] * len(shard_of)
        for shard, part in _by_shard(shard_of):
            path = self._extra_path(shard)
            try:
                arrays = read_npz(path, kind.extra_layout)
                taken = kind.extra_rows(arrays, shards[shard][0], path, slot_of[part])
            except DamagedFile as e:
                raise StoreError(f"{e}; remove the store folder to rebuild it") from None
            for k, item in zip(part.tolist(), taken):
                out[k] = item
            del arrays
        return out

    def _check_extras(self) -> None:
        """Refuse a store whose shards lack the extra files this method's encodings need: one
        made before they were kept (see the module docstring)."""
        if self._extras_checked:
            return
        listed = [s for (s,) in self._db.execute("SELECT shard FROM shards")]
        if any(not self._extra_path(s).exists() for s in listed):
            raise StoreError(
                f"{self.path} holds {self.method.name} codes without the local features kept "
                "with them since (an older store): remove the folder to encode them again"
            )
        self._extras_checked = True

    # -- writing ------------------------------------------------------------------------------
    def update(
        self,
        directory: str | os.PathLike,
        *,
        recursive: bool = False,
        workers: int = 0,
        progress: bool = False,
        batch_size: int = DEFAULT_BATCH,
        cluster: str | Cluster | None = None,
    ) -> UpdateCounts:
        """Make the store mirror ``directory``: encode new and changed files (size or mtime
        differs), drop removed ones, keep the rest. Safe to kill at any point and run again.

        ``workers`` is passed to ``Method.encode`` (``cpus.worker_count``: 0 one per usable
        core). Each batch of ``batch_size`` files is committed as one shard, so memory does not
        grow with the folder.
        ``cluster``: encode each batch on a Dask cluster instead (``dupbench.cluster``: an
        address, ``"local:N"``, or an open ``Cluster``); ``workers`` is then unused.
        """
        from tqdm.auto import tqdm

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        root = Path(directory).resolve()
        if not root.is_dir():
            raise StoreError(f"not a directory: {directory}")
        with self._writer(), batch_encoder(self.method, workers, cluster) as encode:
            self._claim_root(root)
            try:
                in_folder = self._scan(root, recursive)
                removed = self._drop_removed()
                new, changed = self._plan()
                unchanged = in_folder - new - changed
                skipped = 0
                with tqdm(
                    total=in_folder,
                    initial=unchanged,
                    unit="img",
                    disable=not progress,
                    desc=f"encode {self.method.name} (store)",
                ) as bar:
                    bar.set_postfix(reused=unchanged, removed=removed)
                    for batch in self._todo_batches(batch_size):
                        skipped += self._encode_batch(root, batch, encode)
                        bar.update(len(batch))
            finally:
                self._db.execute("DROP TABLE IF EXISTS temp.scan")
                self._db.execute("DROP TABLE IF EXISTS temp.todo")
        return UpdateCounts(new, changed, unchanged, removed, skipped)

    def _claim_root(self, root: Path) -> None:
        """Ids are relative paths, so a store mirrors one folder; another one is refused."""
        current = self.root
        if current is None:
            with self._write():
                self._db.execute("INSERT INTO meta VALUES ('root', ?)", (str(root),))
        elif current != root:
            raise StoreError(f"{self.path} mirrors {current}, not {root}; use another store path")

    def _scan(self, root: Path, recursive: bool) -> int:
        """Stat every file into a temporary table (on disk, so a huge folder costs no memory)."""
        self._db.execute(
            "CREATE TEMP TABLE scan (id TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL) WITHOUT ROWID"
        )

        def stats() -> Iterator[tuple[str, int, int]]:
            for f in images.scan_files(root, recursive=recursive).files:
                yield f.path.relative_to(root).as_posix(), f.size, f.mtime_ns

        with self._write():
            self._db.executemany("INSERT INTO temp.scan VALUES (?, ?, ?)", stats())
        return self._db.execute("SELECT COUNT(*) FROM temp.scan").fetchone()[0]

    def _drop_removed(self) -> int:
        with self._write():
            return self._db.execute(
                "DELETE FROM files WHERE id NOT IN (SELECT id FROM temp.scan)"
            ).rowcount

    def _plan(self) -> tuple[int, int]:
        """List new and changed files, in id order, in a temporary table; count each."""
        with self._write():
            self._db.execute(
                "CREATE TEMP TABLE todo AS SELECT s.id, s.size, s.mtime_ns, f.id IS NULL AS new "
                "FROM temp.scan s LEFT JOIN files f ON f.id = s.id "
                "WHERE f.id IS NULL OR f.size != s.size OR f.mtime_ns != s.mtime_ns "
                "ORDER BY s.id"
            )
        new, total = self._db.execute(
            "SELECT COALESCE(SUM(new), 0), COUNT(*) FROM temp.todo"
        ).fetchone()
        return new, total - new

    def _todo_batches(self, size: int) -> Iterator[list[tuple[str, int, int]]]:
        last = 0
        while True:
            rows = self._db.execute(
                "SELECT rowid, id, size, mtime_ns FROM temp.todo "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, size),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [r[1:] for r in rows]

    def _encode_batch(
        self,
        root: Path,
        batch: list[tuple[str, int, int]],
        encode: Callable[[list[str], list[str]], Encodings],
    ) -> int:
        """Encode one batch, make its shard durable, then commit its rows; returns skips."""
        sources = [str(root / ident) for ident, _, _ in batch]
        enc = encode(sources, [ident for ident, _, _ in batch])
        stat = {ident: (size, mtime) for ident, size, mtime in batch}
        id_of_source = dict(zip(sources, stat))
        reasons = {id_of_source[s.path]: s.reason for s in enc.skipped}
        if len(enc.ids) + len(reasons) != len(batch):
            raise RuntimeError(
                f"{self.method.name}.encode returned {len(enc.ids)} codes and "
                f"{len(reasons)} skips for {len(batch)} files"
            )
        shard = None
        if enc.saved_as:
            self._check_extras()  # before any work is committed to an older store
        if len(enc.ids):
            (shard,) = self._db.execute("SELECT COALESCE(MAX(shard) + 1, 0) FROM shards").fetchone()
            write_durably(self._shard_path(shard), enc.codes)
            if enc.saved_as:
                write_durably(self._extra_path(shard), enc.extra_arrays())
        with self._write():
            if shard is not None:
                self._db.execute(
                    "INSERT INTO shards VALUES (?, ?, ?, ?)",
                    (shard, len(enc.ids), enc.codes.dtype.str, enc.codes.shape[1]),
                )
            self._db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, NULL)",
                [(ident, *stat[ident], shard, slot) for slot, ident in enumerate(enc.ids)],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, NULL, NULL, ?)",
                [(ident, *stat[ident], reason) for ident, reason in reasons.items()],
            )
        return len(reasons)

    # -- plumbing -----------------------------------------------------------------------------
    def _shard_path(self, shard: int) -> Path:
        return self.path / SHARDS / f"{shard:08d}.npy"

    def _extra_path(self, shard: int) -> Path:
        return self.path / SHARDS / f"{shard:08d}.extra.npz"

    @contextmanager
    def _write(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[None]:
        """One snapshot for several SELECTs, while a writer may be committing batches."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """Hold the store's one writer lock, then delete what an interrupted writer left."""
        import fcntl

        with open(self.path / LOCK, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(f"{self.path} is being updated by another process") from None
            try:
                self._delete_orphans()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _delete_orphans(self) -> None:
        """Temporary files, shards and extra files no committed row points at (a kill before
        the commit)."""
        known = {
            p(s).name
            for (s,) in self._db.execute("SELECT shard FROM shards")
            for p in (self._shard_path, self._extra_path)
        }
        for p in (self.path / SHARDS).iterdir():
            if p.name not in known:
                p.unlink(missing_ok=True)


def write_durably(path: Path, data: np.ndarray | dict[str, np.ndarray]) -> None:
    """Save an array (.npy) or named arrays (an uncompressed .npz) as ``path`` so that it is
    complete or absent after a crash or a power cut: written to a temporary name, fsync'd,
    renamed, and the rename fsync'd with its folder.
    (``files.write_text`` renames too but does not fsync: its files need no ordering.)"""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            if isinstance(data, dict):
                named: dict[str, Any] = data  # Any: numpy's stubs read **arrays as allow_pickle
                np.savez(f, **named)
            else:
                np.save(f, np.ascontiguousarray(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _by_shard(shard_of: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(shard, positions of its rows) for every shard ``shard_of`` names, one shard at a time."""
    order = np.argsort(shard_of, kind="stable")
    bounds = np.flatnonzero(np.diff(shard_of[order])) + 1
    for part in np.split(order, bounds) if len(order) else []:
        yield int(shard_of[part[0]]), part


def _connect(path: Path) -> sqlite3.Connection:
    """Autocommit connection (transactions are explicit) in WAL mode with the schema in place."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash never corrupts; commits stay ordered
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=10000")
    db.executescript(_SCHEMA)
    return db
