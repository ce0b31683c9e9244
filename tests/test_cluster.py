"""Encoding on a local Dask cluster of worker processes gives exactly a local run's codes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

from dupbench import cluster as cluster_module
from dupbench.api import encode_images
from dupbench.cli import main
from dupbench.cluster import ClusterError, cluster_map, connect
from dupbench.encoding_store import EncodingStore
from dupbench.errors import UsageError
from dupbench.methods import get_method
from dupbench.records import Encodings


@pytest.fixture(scope="module")
def dask_cluster():
    """Two worker processes, one thread each, on 127.0.0.1 without a dashboard; closed after."""
    with connect("local:2") as opened:
        assert opened.n_workers == 2
        yield opened


def assert_same(enc: Encodings, ref: Encodings) -> None:
    assert enc.ids == ref.ids
    np.testing.assert_array_equal(enc.codes, ref.codes)
    assert enc.codes.dtype == ref.codes.dtype
    assert (enc.kind, enc.distance, enc.size, enc.method, enc.params) == (
        ref.kind,
        ref.distance,
        ref.size,
        ref.method,
        ref.params,
    )
    assert enc.skipped == ref.skipped
    if enc.rows is not None:  # None: read back from a file, which stores no source positions
        np.testing.assert_array_equal(enc.rows, ref.rows)


def test_the_cluster_encodes_exactly_what_a_local_run_encodes(planted_dir, dask_cluster):
    ref = encode_images(planted_dir["dir"], "phash", num_enc_workers=1, progress=False)
    assert len(ref) == 9 and len(ref.skipped) == 3
    # the shared cluster object is used as is; the API normally takes an address string
    enc = encode_images(planted_dir["dir"], "phash", cluster=dask_cluster, progress=False)
    assert_same(enc, ref)
    assert enc.rows is not None
    # batches of one file: every row comes back from its own task, in order
    files = sorted(str(p) for p in planted_dir["dir"].iterdir())
    method = get_method("dhash", hash_size=16)
    assert_same(cluster_map(method, files, None, dask_cluster, batch_size=1), method.encode(files))


def test_the_cluster_keeps_the_verified_methods_local_features(planted_dir, tmp_path, dask_cluster):
    """Batches from the workers join into ``VerifiedEncodings`` with every row's features, and a
    store updated on the cluster keeps them beside its shards."""
    pytest.importorskip("cv2")
    ref = encode_images(planted_dir["dir"], "verified", num_enc_workers=1, progress=False)
    files = sorted(str(p) for p in planted_dir["dir"].iterdir())
    enc = cluster_map(get_method("verified"), files, None, dask_cluster, batch_size=3)
    with EncodingStore.open_or_create(tmp_path / "store", "verified") as store:
        store.update(planted_dir["dir"], batch_size=4, cluster=dask_cluster)
        stored = store.encodings()
    for got in (enc, stored):
        assert type(got) is type(ref) and [Path(i).name for i in got.ids] == ref.ids
        for a, b in zip(got.features, ref.features, strict=True):
            np.testing.assert_array_equal(a.descriptors, b.descriptors)
            np.testing.assert_array_equal(a.points, b.points)


def test_a_local_cluster_listens_on_the_loopback_address_only(dask_cluster):
    me = psutil.Process()
    listening = [
        c.laddr
        for p in [me, *me.children(recursive=True)]
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert len(listening) >= 3  # scheduler, two workers
    assert {a.ip for a in listening} == {"127.0.0.1"}
    assert 8787 not in {a.port for a in listening}  # no fixed port to collide on


def test_relative_paths_are_read_by_the_workers_and_reported_as_given(
    planted_dir, dask_cluster, monkeypatch
):
    monkeypatch.chdir(planted_dir["dir"].parent)
    files = sorted(f"{planted_dir['dir'].name}/{p.name}" for p in planted_dir["dir"].iterdir())
    method = get_method("phash")
    enc = cluster_map(method, files, None, dask_cluster, batch_size=4)
    assert_same(enc, method.encode(files))
    assert {Path(s.path).name for s in enc.skipped} == planted_dir["bad"]
    assert all(not os.path.isabs(s.path) for s in enc.skipped)


def test_a_store_updated_on_the_cluster_equals_one_updated_here(
    planted_dir, tmp_path, dask_cluster
):
    here, there = tmp_path / "here", tmp_path / "there"
    with EncodingStore.open_or_create(here, "phash") as store:
        store.update(planted_dir["dir"], workers=1, batch_size=4)
        ref = store.encodings()
    with EncodingStore.open_or_create(there, "phash") as store:
        counts = store.update(planted_dir["dir"], batch_size=4, cluster=dask_cluster)
        assert (counts.new, counts.skipped) == (12, 3)
        assert_same(store.encodings(), ref)
        assert len(list((there / "shards").iterdir())) == 3  # one shard per batch of 4
        assert store.update(planted_dir["dir"], cluster=dask_cluster).unchanged == 12


def test_a_store_update_with_nothing_to_encode_reaches_no_cluster(
    planted_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT", 1)
    with EncodingStore.open_or_create(tmp_path / "store", "phash") as store:
        store.update(planted_dir["dir"], workers=1)
        # nothing is new: the unreachable scheduler is never contacted
        counts = store.update(planted_dir["dir"], cluster="tcp://127.0.0.1:9")
        assert (counts.new, counts.changed, counts.unchanged) == (0, 0, 12)
        (planted_dir["dir"] / "new.png").write_bytes(
            (planted_dir["dir"] / "rocket.png").read_bytes()
        )
        with pytest.raises(ClusterError, match="cannot reach"):
            store.update(planted_dir["dir"], cluster="tcp://127.0.0.1:9")


@pytest.mark.slow
def test_the_cli_starts_a_local_cluster_and_closes_it(planted_dir, tmp_path, capsys):
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    out = tmp_path / "codes.npz"
    assert (
        main(["encode", str(planted_dir["dir"]), "--cluster", "local:2", "-o", str(out), "-q"]) == 0
    )
    assert "encoded 9 images (3 skipped)" in capsys.readouterr().err
    ref = encode_images(planted_dir["dir"], "phash", num_enc_workers=1, progress=False)
    assert_same(Encodings.load(out), ref)
    left = {
        p.pid
        for p in me.children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    } - before
    assert not left, f"cluster processes still running: {left}"


@pytest.mark.parametrize("address", ["ray://head:10001", "head:8786", "local:0", "local:x"])
def test_unusable_cluster_addresses_are_refused_in_one_line(address):
    with pytest.raises(UsageError, match="--cluster"):
        connect(address)


def test_an_unreachable_scheduler_is_one_line_error(monkeypatch, planted_dir, tmp_path, capsys):
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT", 1)
    with pytest.raises(ClusterError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        connect("tcp://127.0.0.1:9")
    assert (
        main(
            [
                "encode",
                str(planted_dir["dir"]),
                "--cluster",
                "tcp://127.0.0.1:9",
                "-o",
                str(tmp_path / "x.npz"),
                "-q",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in err and "Traceback" not in err


def test_only_file_paths_can_be_sent_to_the_workers(dask_cluster):
    with pytest.raises(UsageError, match="file paths"):
        cluster_map(get_method("phash"), [np.zeros((8, 8), np.uint8)], None, dask_cluster)


@pytest.mark.slow
def test_index_add_on_a_local_cluster_equals_a_local_add(planted_dir, tmp_path, capsys):
    from dupbench.index import Index

    listed = {}
    for name, extra in (("here", ["--workers", "1"]), ("there", ["--cluster", "local:2"])):
        assert main(["index", "create", str(tmp_path / name), "-m", "phash"]) == 0
        assert (
            main(["index", "add", str(tmp_path / name), str(planted_dir["dir"]), "-q", *extra]) == 0
        )
        assert "added 9, unchanged 0, skipped 3" in capsys.readouterr().err
        with Index.open(tmp_path / name) as index:
            ids, codes = index.backend.items()
            listed[name] = (
                ids.tolist(),
                codes.tolist(),
                [(e["id"], e["name"], e["digest"]) for e in index.entries()],
            )
    assert listed["there"] == listed["here"]
