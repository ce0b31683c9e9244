"""The Milvus index backend: an Index's codes kept and searched in Milvus, a server or a cluster.

Hashes and digests are Milvus ``BINARY_VECTOR``s compared by ``HAMMING`` (codes are sent as the
big-endian bytes of their uint64 words, as their hex form reads; any fixed byte and bit order
gives the same popcount of the XOR, and the zero padding of the last word adds nothing).
Embeddings are ``FLOAT_VECTOR``s of unit length compared by inner product, i.e. cosine, exactly
as the local backend does. Both use Milvus's brute-force indexes (``BIN_FLAT``, ``FLAT``), so
answers are exact, the same as the local backend's.

Milvus answers a similarity threshold with a *range search* (``radius``; HAMMING keeps
``distance < radius``, IP keeps ``similarity > radius``) but returns at most 16,384 rows per
search (``MAX_TOPK``). A query that hits that cap is split on the id axis (``id`` ranges cut at
the median id found) until every part is complete, so a threshold query returns every match
however many there are. A ``k`` query takes the ``k`` best, then fetches every row as good as
the ``k``-th so that ties are broken by id, as the local backend does.

Without ``uri`` the collection lives in an embedded ``milvus-lite`` database file inside the
index folder; with ``uri="http://host:19530"`` (and ``token=...`` or ``$MILVUS_TOKEN`` for a
server with authentication) the same code talks to a Milvus server or cluster. The collection's
name is ``collection`` if given, else chosen once and recorded in the index folder. milvus-lite
serves one process at a time; several processes need a Milvus server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dupbench.distance import DistanceKind
from dupbench.errors import DupbenchError, MissingExtraError, UsageError, check_parameters
from dupbench.files import write_json
from dupbench.index.backend import check_k, fitted_codes
from dupbench.records import Kind
from dupbench.search.cosine import unit_rows

FOLDER = "milvus"
DATABASE = "milvus.db"
STATE = "collection.json"
#: Milvus's cap on the rows one search or query returns (``limit + offset``)
MAX_TOPK = 16384
#: rows per insert, upsert or delete request (well below gRPC's 64 MB message limit)
WRITE_BATCH = 4096
_OPTIONS = ("uri", "collection", "token")
_ID, _CODE = "id", "code"

if importlib.util.find_spec("pymilvus") is None:  # Index.create asks before making any file
    raise MissingExtraError(
        "the milvus index backend needs pymilvus, which is not installed: "
        "pip install 'dupbench[milvus]'"
    )

_lite_users: dict[str, int] = {}  # milvus-lite database file -> backends open on it here
_lite_lock = threading.Lock()


class MilvusError(DupbenchError):
    """Milvus could not be reached or holds something else; the message says what."""


class MilvusBackend:
    """``IndexBackend`` kept in a Milvus collection; see the module docstring."""

    def __init__(
        self,
        folder: str | os.PathLike,
        kind: Kind,
        distance: DistanceKind,
        size: int,
        **options: Any,
    ) -> None:
        check_parameters(options, _OPTIONS, "milvus index backend")
        self.kind, self.distance, self.size = kind, DistanceKind(distance), int(size)
        if self.distance is DistanceKind.EUCLIDEAN:  # its range radius semantics are untested here
            raise UsageError("the milvus backend does not search L2 codes; use backend 'local'")
        self._binary = kind != "float"
        self._width = max(1, -(-self.size // 64)) if self._binary else self.size
        self._dim = self._width * 64 if self._binary else self.size
        self._metric_type = "HAMMING" if self._binary else "IP"
        self.path = Path(folder) / FOLDER
        uri = options.get("uri")
        self._lite: str | None = None
        if not uri:  # a milvus-lite file in the index folder (a server made nothing here yet)
            self.path.mkdir(parents=True, exist_ok=True)
            uri = self._lite = str((self.path / DATABASE).resolve())
        self._client = _connect(uri, options.get("token") or os.environ.get("MILVUS_TOKEN", ""))
        if self._lite:
            with _lite_lock:
                _lite_users[self._lite] = _lite_users.get(self._lite, 0) + 1
        try:
            self.collection = self._collection_name(options.get("collection"), remote=bool(uri))
            self._ensure_collection()
        except BaseException:
            self.close()
            raise

    # -- the collection ---------------------------------------------------------------------------
    def _collection_name(self, given: str | None, remote: bool) -> str:
        """As given; else the one this folder recorded; else a new one, recorded (a server holds
        many indexes' collections, so a remote one gets a unique name)."""
        state = self.path / STATE
        recorded = json.loads(state.read_text(encoding="utf-8")) if state.exists() else {}
        name = given or recorded.get("collection")
        if name is None:
            name = f"dupbench_{uuid.uuid4().hex}" if remote else "dupbench"
        if recorded.get("collection") != name:
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(state, {"collection": name})
        return name

    def _ensure_collection(self) -> None:
        """Create the collection, or check that the existing one holds codes of this layout."""
        from pymilvus import DataType, MilvusException

        vector = DataType.BINARY_VECTOR if self._binary else DataType.FLOAT_VECTOR
        c = self._client
        if not c.has_collection(self.collection):
            schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field(_ID, DataType.INT64, is_primary=True)
            schema.add_field(_CODE, vector, dim=self._dim)
            params = c.prepare_index_params()
            params.add_index(
                _CODE,
                index_type="BIN_FLAT" if self._binary else "FLAT",
                metric_type=self._metric_type,
            )
            try:
                c.create_collection(
                    self.collection, schema=schema, index_params=params, consistency_level="Strong"
                )
            except MilvusException as e:  # e.g. milvus-lite 3.x, which has no binary vectors
                raise MilvusError(
                    f"Milvus cannot make collection {self.collection!r} of "
                    f"{vector.name} {self._metric_type}: {e.message}"
                    + (" (milvus-lite 2.4-2.5 can)" if self._lite else "")
                ) from None
            return
        fields = {f["name"]: f for f in c.describe_collection(self.collection)["fields"]}
        code = fields.get(_CODE, {})
        found = (
            code.get("type"),
            int(code.get("params", {}).get("dim", -1)),
            c.describe_index(self.collection, _CODE).get("metric_type") if code else None,
        )
        if found != (vector, self._dim, self._metric_type):
            raise MilvusError(
                f"Milvus collection {self.collection!r} holds {found[0]} codes of "
                f"{found[1]} dimensions ({found[2]}), not {vector} of {self._dim} "
                f"({self._metric_type}); give another collection="
            )
        c.load_collection(self.collection)

    # -- the IndexBackend contract ----------------------------------------------------------------
    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64).reshape(-1)
        codes = self._checked(codes)
        if len(ids) != len(codes):
            raise ValueError(f"{len(ids)} ids but {len(codes)} codes")
        # an id given twice keeps its last code, as successive adds would
        _, last = np.unique(ids[::-1], return_index=True)
        keep = np.sort(len(ids) - 1 - last)
        ids, codes = ids[keep], codes[keep]
        if not self._binary:
            codes = unit_rows(codes)
        for k in range(0, len(ids), WRITE_BATCH):
            vectors = self._vectors(codes[k : k + WRITE_BATCH])
            self._client.upsert(
                self.collection,
                [{_ID: int(i), _CODE: v} for i, v in zip(ids[k : k + WRITE_BATCH], vectors)],
            )

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64).reshape(-1)
        for k in range(0, len(ids), WRITE_BATCH):
            self._client.delete(self.collection, ids=[int(i) for i in ids[k : k + WRITE_BATCH]])

    def query(
        self, codes: np.ndarray, threshold: float, k: int | None
    ) -> list[list[tuple[int, float]]]:
        codes = self._checked(codes)
        check_k(k)
        if not self.distance.graded:
            threshold = 0
        if not self._binary:
            codes = unit_rows(codes)
        return [self._query_one(vector, float(threshold), k) for vector in self._vectors(codes)]

    def __len__(self) -> int:
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def close(self) -> None:
        """Close the connection; the last backend on a milvus-lite file also stops its server."""
        client, self._client = getattr(self, "_client", None), None
        if client is None:
            return
        client.close()
        if self._lite:
            with _lite_lock:
                _lite_users[self._lite] -= 1
                if _lite_users[self._lite] == 0:
                    del _lite_users[self._lite]
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(self._lite)

    # -- extras the Index uses when present -------------------------------------------------------
    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, codes) of every row, in id order (for all-pairs searches)."""
        rows = sorted(
            _complete(
                lambda where: [
                    (int(r[_ID]), r[_CODE])
                    for r in self._client.query(
                        self.collection, filter=where, output_fields=[_ID, _CODE], limit=MAX_TOPK
                    )
                ]
            )
        )
        return np.array([i for i, _ in rows], np.int64), self._codes([c for _, c in rows])

    # -- searching --------------------------------------------------------------------------------
    def _query_one(self, vector: Any, threshold: float, k: int | None) -> list[tuple[int, float]]:
        """Every row within ``threshold`` (or the ``k`` best of them), best first, ties by id."""
        if self._binary and threshold < 0:
            return []
        if k is not None and k <= MAX_TOPK:
            hits = self._search(vector, threshold, k, "")
            if len(hits) == k:
                # the k-th best may tie with rows Milvus left out: fetch all as good, rank here
                best_first = [h[1] for h in hits]
                threshold = max(best_first) if self._binary else min(best_first)
                hits = self._search_all(vector, threshold)
        else:
            hits = self._search_all(vector, threshold)
        ids = np.array([h[0] for h in hits], np.int64)
        scores = np.array([h[1] for h in hits], np.float64)
        order = np.lexsort((ids, scores if self._binary else -scores))[:k]
        return [(int(ids[i]), float(scores[i])) for i in order]

    def _search_all(self, vector: Any, threshold: float) -> list[tuple[int, float]]:
        """(id, score) of every row within ``threshold``, however many."""
        return _complete(lambda where: self._search(vector, threshold, MAX_TOPK, where))

    def _search(
        self, vector: Any, threshold: float, limit: int, where: str
    ) -> list[tuple[int, float]]:
        """One range search: (id, score) of at most ``limit`` rows within ``threshold``."""
        params: dict[str, float]
        if self._binary:  # integer distances; Milvus keeps distance < radius
            params = {"radius": int(np.floor(threshold)) + 1, "range_filter": 0}
        else:  # Milvus keeps similarity > radius: ask a little lower, then keep >= threshold
            params = {"radius": float(np.nextafter(np.float32(threshold), np.float32(-2)))}
        found = self._client.search(
            self.collection,
            data=[vector],
            anns_field=_CODE,
            limit=limit,
            filter=where,
            search_params={"metric_type": self._metric_type, "params": params},
            output_fields=[_ID],
        )[0]
        hits = [(int(h[_ID]), float(h["distance"])) for h in found]
        return hits if self._binary else [h for h in hits if h[1] >= threshold]

    # -- conversions ------------------------------------------------------------------------------
    def _checked(self, codes: np.ndarray) -> np.ndarray:
        return fitted_codes(codes, self._width, np.uint64 if self._binary else np.float32)

    def _vectors(self, codes: np.ndarray) -> list:
        """Rows as Milvus takes them: bytes (big-endian words) or lists of floats."""
        if self._binary:
            raw = np.ascontiguousarray(codes.astype(">u8")).view(np.uint8)
            return [row.tobytes() for row in raw]
        return codes.tolist()

    def _codes(self, vectors: list) -> np.ndarray:
        """Inverse of ``_vectors`` for what Milvus returns (a binary vector comes as [bytes])."""
        if not self._binary:
            return np.array(vectors, np.float32).reshape(len(vectors), self._width)
        raw = b"".join(v[0] if isinstance(v, list) else v for v in vectors)
        return np.frombuffer(raw, ">u8").astype(np.uint64).reshape(len(vectors), self._width)


def _complete(
    fetch: Callable[[str], list[tuple]], lo: int | None = None, hi: int | None = None
) -> list[tuple]:
    """Every ``(id, ...)`` row ``fetch(filter)`` finds, though one call returns at most
    ``MAX_TOPK``: a part that hits the cap is cut at the median id it returned, and each half
    fetched again (ids are unique, so both halves hold found rows and shrink; the recursion
    ends). ``fetch`` returns plain tuples: pymilvus's result rows are filled in lazily by
    their list, and come out empty once copied into another list."""
    bounds = [
        f"{_ID} >= {lo}" if lo is not None else "",
        f"{_ID} <= {hi}" if hi is not None else "",
    ]
    rows = fetch(" and ".join(b for b in bounds if b))
    if len(rows) < MAX_TOPK:
        return rows
    middle = sorted(r[0] for r in rows)[len(rows) // 2]
    return _complete(fetch, lo, middle - 1) + _complete(fetch, middle, hi)


def _connect(uri: str, token: str) -> Any:
    """A ``MilvusClient`` for ``uri`` (a server, or a milvus-lite file it starts)."""
    lite = uri.endswith(".db")
    if lite and importlib.util.find_spec("milvus_lite") is None:
        raise MissingExtraError(
            "an index kept in a milvus-lite file needs milvus-lite, which is "
            "not installed: pip install 'dupbench[milvus]' (or give uri= of "
            "a Milvus server)"
        )
    with warnings.catch_warnings():  # milvus-lite 2.x imports the deprecated pkg_resources
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        from pymilvus import MilvusClient, MilvusException

        try:
            return MilvusClient(uri, token=token)
        except MilvusException as e:
            hint = (
                " (milvus-lite serves one process at a time: is another one using this "
                "index? Several processes need a Milvus server, uri=...)"
                if lite
                else ""
            )
            raise MilvusError(f"cannot open Milvus at {uri}: {e.message}{hint}") from None
