"""Encoding on a Dask distributed cluster: the same codes as a local run, from many machines.

A folder of millions of images takes hours on one machine; ``Method.encode`` is embarrassingly
parallel, so batches of file *paths* are shipped to the cluster's workers, each worker reads its
files and encodes them with ``Method.encode`` (in its own process, ``workers=1``), and the rows
come back in input order. Nothing but paths and codes crosses the network, which assumes a
**shared filesystem**: every worker must see the files at the same absolute path as the client
(relative paths are made absolute before they are sent; skip records keep the names as given),
and must run the same dupbench and method packages, or codes would differ silently.

``cluster`` is ``"local:N"`` (start N worker processes on this machine, on 127.0.0.1, closed
again afterwards) or a Dask scheduler address (``tcp://host:8786``). Needs ``dupbench[cluster]``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from dupbench.errors import DupbenchError, MissingExtraError, UsageError
from dupbench.methods import Method
from dupbench.records import Encodings, Skipped

#: most files in one task: small enough to spread a folder over many workers and to lose little
#: on a worker failure, large enough that the scheduler's per-task cost (~1 ms) is negligible
DEFAULT_BATCH = 128
#: seconds to wait for a remote scheduler before giving up with one line
CONNECT_TIMEOUT = 30
_LOCAL = re.compile(r"local:(\d+)")
_SCHEMES = ("tcp://", "tls://", "ws://", "wss://", "ucx://")


class ClusterError(DupbenchError):
    """The cluster could not be reached or started; the message says which and why."""


class Cluster:
    """A connection to a Dask cluster (and the local cluster it started, if any) that encodes.

    Open one with ``connect`` to encode several batches without restarting a local cluster.
    """

    def __init__(self, client: Any, local: Any = None) -> None:
        self.client = client
        self._local = local

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def encode(
        self,
        method: Method,
        sources: Sequence[str | os.PathLike],
        ids: Sequence[str] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH,
        progress: bool = False,
    ) -> Encodings:
        """``method.encode(sources, ids)``, run on the workers in batches; rows and skips come
        back in input order, exactly as a local run returns them."""
        from distributed import as_completed
        from tqdm.auto import tqdm

        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}")
        names = [_path_name(s) for s in sources]
        ids = method._ids_for(names, ids)
        # at least 4 tasks per worker when there are enough files, so none waits on a straggler
        size = max(1, min(batch_size, math.ceil(len(names) / (4 * max(1, self.n_workers)))))
        starts = range(0, len(names), size)
        shipped = self.client.scatter(method, broadcast=True, hash=False)
        futures = {
            self.client.submit(
                _encode_batch,
                shipped,
                [os.path.abspath(p) for p in names[k : k + size]],
                ids[k : k + size],
                pure=False,
            ): n
            for n, k in enumerate(starts)
        }
        parts: dict[int, Encodings] = {}  # by chunk, filled as chunks finish
        with tqdm(
            total=len(names),
            unit="img",
            disable=not progress,
            desc=f"encode {method.name} (cluster)",
        ) as bar:
            for future, enc in as_completed(futures, with_results=True):
                n = futures.pop(future)
                parts[n] = _named_as_given(enc, names[starts[n] : starts[n] + size])
                bar.update(len(enc) + len(enc.skipped))
        return _concat(method, [parts[n] for n in range(len(starts))], list(starts))

    def close(self) -> None:
        self.client.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(cluster: str) -> Cluster:
    """Start (``"local:N"``) or reach (a scheduler address) a Dask cluster; see the module."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingExtraError(
            "encoding on a cluster needs Dask distributed, which is not "
            "installed: pip install 'dupbench[cluster]'"
        ) from None
    local = _LOCAL.fullmatch(cluster)
    if local:
        n = int(local.group(1))
        if n < 1:
            raise UsageError(f"--cluster {cluster}: a local cluster needs at least 1 worker")
        # workers are processes (the encoders hold the GIL), reachable from this machine only;
        # no dashboard, and the scheduler's HTTP routes on a free port, not a fixed 8787
        try:
            started = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
            )
        except RuntimeError as e:  # e.g. a worker that cannot re-import a __main__ read from stdin
            raise ClusterError(
                f"could not start a local Dask cluster of {n} workers: {e} "
                f"({e.__cause__ or 'see the log above'})"
            ) from None
        return Cluster(Client(started), started)
    if cluster.startswith("ray://"):
        raise UsageError(
            f"--cluster {cluster}: Ray clusters are not supported yet; give a Dask "
            "scheduler address (tcp://host:port) or local:N"
        )
    if not cluster.startswith(_SCHEMES):
        raise UsageError(
            f"--cluster {cluster!r}: expected local:N or a Dask scheduler address "
            "such as tcp://host:8786"
        )
    try:
        return Cluster(Client(cluster, timeout=CONNECT_TIMEOUT))
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {cluster}: {e}") from None


@contextmanager
def session(cluster: str | Cluster) -> Iterator[Cluster]:
    """``cluster`` as an open ``Cluster``: connected (and closed afterwards) when given as an
    address, used as it is (and left open) when already connected."""
    if isinstance(cluster, Cluster):
        yield cluster
        return
    with connect(cluster) as opened:
        yield opened


def cluster_map(
    method: Method,
    sources: Sequence[str | os.PathLike],
    ids: Sequence[str] | None,
    cluster: str | Cluster,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> Encodings:
    """Encode ``sources`` (file paths the workers can read) on ``cluster``; see the module."""
    with session(cluster) as opened:
        return opened.encode(method, sources, ids, batch_size=batch_size, progress=progress)


@contextmanager
def batch_encoder(
    method: Method,
    workers: int,
    cluster: str | Cluster | None,
    progress: bool = False,
) -> Iterator[Callable[[list[str], list[str]], Encodings]]:
    """``encode(sources, ids) -> Encodings`` for the many batches of one job (an encoding
    store's update, an index's add): ``method.encode`` over ``workers`` processes here, or on
    one cluster session for all the batches, opened by the first (a job with nothing to
    encode starts no local cluster) and closed at the end."""
    if cluster is None:
        yield functools.partial(method.encode, workers=workers, progress=progress)
        return
    with ExitStack() as stack:
        opened: list[Cluster] = []

        def encode(sources: list[str], ids: list[str]) -> Encodings:
            if not opened:
                opened.append(stack.enter_context(session(cluster)))
            return opened[0].encode(method, sources, ids, progress=progress)

        yield encode


def _path_name(source: Any) -> str:
    """Workers read files themselves: only paths can be shipped, not decoded images or bytes."""
    if not isinstance(source, (str, os.PathLike)):
        raise UsageError(f"encoding on a cluster takes file paths, not {type(source).__name__}")
    return os.fspath(source)


def _encode_batch(method: Method, paths: list[str], ids: list[str]) -> Encodings:
    """The task each worker runs: one batch, in the worker's own process."""
    return method.encode(paths, ids, workers=1)


def _named_as_given(enc: Encodings, names: list[str]) -> Encodings:
    """Skip records name the files as the caller gave them, not by their absolute paths."""
    given = {os.path.abspath(n): n for n in names}
    enc.skipped = [Skipped(given.get(s.path, s.path), s.reason) for s in enc.skipped]
    return enc


def _concat(method: Method, parts: list[Encodings], starts: list[int]) -> Encodings:
    """One ``Encodings`` from the batches, in order (the method's empty layout when none), of
    the method's own class (``VerifiedEncodings`` keeps its features); ``starts``: each batch's
    first position among the sources."""
    empty = method.encode([], [])
    codes = [p.codes for p in parts if len(p)]
    shifted = [p.rows + s for p, s in zip(parts, starts) if p.rows is not None]
    rows = np.concatenate([np.zeros(0, np.int64), *shifted]) if len(shifted) == len(parts) else None
    whole = Encodings(
        ids=[i for p in parts for i in p.ids],
        codes=np.concatenate(codes) if codes else empty.codes,
        kind=empty.kind,
        distance=empty.distance,
        size=empty.size,
        method=empty.method,
        params=empty.params,
        skipped=[s for p in parts for s in p.skipped],
        rows=rows,
    )
    return type(empty).with_extra(whole, [x for p in parts for x in p.extra()])
