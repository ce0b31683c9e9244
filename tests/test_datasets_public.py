"""Public-set adapters against tiny archives in each set's real layout; download and extraction."""

from __future__ import annotations

import hashlib
import http.server
import io
import pickle
import shutil
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from dupbench.datasets import DatasetError, load_dataset
from dupbench.datasets.download import (
    DownloadError,
    Resource,
    UnsafeArchiveError,
    download,
    safe_extract,
)
from dupbench.datasets.public import PUBLIC_SETS


def _jpeg(seed: int) -> bytes:
    from skimage import data

    crop = data.astronaut()[seed * 20 : seed * 20 + 64, seed * 10 : seed * 10 + 64]
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _resources(files: list[Path]) -> tuple[Resource, ...]:
    return tuple(
        Resource(f.name, (f.as_uri(),), sha256=hashlib.sha256(f.read_bytes()).hexdigest())
        for f in files
    )


def _load(name, tmp_path, files, **params):
    return load_dataset(
        name, root=tmp_path / name, resources=_resources(files), progress=False, **params
    )


def test_ukbench_groups_of_four(tmp_path):
    members = {f"full/ukbench{k:05d}.jpg": _jpeg(k) for k in range(8)}
    members.update({"thumbnails/ukbench00000.jpg": _jpeg(0), "index.html": b"<html>"})
    ds = _load("ukbench", tmp_path, [_zip(tmp_path / "ukbench.zip", members)])
    assert len(ds) == 8 and ds.truth.counts() == {"exact": 0, "near": 0, "similar": 12}
    assert [0, 3] in ds.truth.pairs.tolist() and [3, 4] not in ds.truth.pairs.tolist()
    again = load_dataset("ukbench", root=tmp_path / "ukbench", download_missing=False)
    assert again.checksum() == ds.checksum()


def test_copydays_attacks_grouped_by_block(tmp_path):
    files = [
        _tar(
            tmp_path / "copydays_original.tar.gz", {"200000.jpg": _jpeg(0), "200100.jpg": _jpeg(1)}
        ),
        _tar(
            tmp_path / "copydays_crop.tar.gz",
            {"crops/10/200000.jpg": _jpeg(2), "crops/50/200100.jpg": _jpeg(3)},
        ),
        _tar(tmp_path / "copydays_jpeg.tar.gz", {"jpegqual/75/200000.jpg": _jpeg(4)}),
        _tar(tmp_path / "copydays_strong.tar.gz", {"200001.jpg": _jpeg(5), "200101.jpg": _jpeg(6)}),
    ]
    ds = _load("copydays", tmp_path, files)
    row = ds.images.set_index("id").loc["crop/10/200000"]
    assert (row["transform"], row["severity"], row["original"]) == ("crop", 10, "original/200000")
    ids = ds.ids
    pairs = {(ids[i], ids[j]) for i, j in ds.truth_pairs()}
    assert ("jpeg/75/200000", "original/200000") in pairs or (
        "original/200000",
        "jpeg/75/200000",
    ) in pairs
    assert len(pairs) == 6 + 3  # block 2000: 4 images → 6 pairs; block 2001: 3 → 3


def test_holidays_scene_groups_and_queries(tmp_path):
    files = [
        _tar(tmp_path / "jpg1.tar.gz", {"jpg/100000.jpg": _jpeg(0), "jpg/100001.jpg": _jpeg(1)}),
        _tar(
            tmp_path / "jpg2.tar.gz",
            {"jpg/100100.jpg": _jpeg(2), "jpg/100101.jpg": _jpeg(3), "jpg/100102.jpg": _jpeg(4)},
        ),
    ]
    ds = _load("holidays", tmp_path, files)
    assert ds.truth.counts()["similar"] == 1 + 3
    query, _ = ds.query_reference()
    assert [ds.ids[q] for q in query] == ["100000", "100100"]


def test_disc21_queries_references_and_partial_shards(tmp_path):
    gt = tmp_path / "public_ground_truth.csv"
    gt.write_text("query_id,reference_id\nQ00000,R000001\nQ00001,\nQ00002,R999999\n")
    files = [
        gt,
        _zip(
            tmp_path / "dev_queries.zip",
            {f"images/dev_queries/Q0000{k}.jpg": _jpeg(k) for k in range(3)},
        ),
        _zip(
            tmp_path / "references_0.zip",
            {f"images/references/R00000{k}.jpg": _jpeg(k + 3) for k in range(2)},
        ),
    ]
    ds = _load("disc21", tmp_path, files, shards=1)
    assert ds.truth.pairs.tolist() == [[0, 4]]
    assert ds.info["pairs_dropped_missing_images"] == 1  # R999999 is in a shard not fetched
    assert ds.cross_pairs().tolist() == [[0, 4]]


def _cifar_batch(n: int, seed: int, labels_key: str) -> bytes:
    rng = np.random.default_rng(seed)
    batch = {
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        labels_key: list(rng.integers(0, 3, n)),
        "batch_label": "fixture",
    }
    return pickle.dumps(batch, protocol=2)


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
def test_cifar_with_cifair_lists(tmp_path, variant):
    if variant == "cifar10":
        top, members = (
            "cifar-10-batches-py",
            {
                **{f"data_batch_{k}": _cifar_batch(2, k, "labels") for k in range(1, 6)},
                "test_batch": _cifar_batch(3, 9, "labels"),
                "batches.meta": pickle.dumps({"label_names": ["cat", "dog", "frog"]}, protocol=2),
            },
        )
        tarball = "cifar-10-python.tar.gz"
    else:
        top, members = (
            "cifar-100-python",
            {
                "train": _cifar_batch(10, 1, "fine_labels"),
                "test": _cifar_batch(3, 2, "fine_labels"),
                "meta": pickle.dumps({"fine_label_names": ["a", "b", "c"]}, protocol=2),
            },
        )
        for name in ("train", "test"):
            batch = pickle.loads(members[name])
            batch["coarse_labels"] = batch["fine_labels"]
            members[name] = pickle.dumps(batch, protocol=2)
        tarball = "cifar-100-python.tar.gz"
    archive = _tar(tmp_path / tarball, {f"{top}/{k}": v for k, v in members.items()})
    train_dups = tmp_path / f"duplicates_{variant}.csv"
    train_dups.write_text("TestID,TrainID,Distance,Judgment\n0,7,0.1,0\n2,9,0.2,2\n")
    test_dups = tmp_path / f"duplicates_{variant}_test.csv"
    test_dups.write_text("TestID,TrainID,Distance,Judgment\n0,1,0.1,1\n")
    ds = _load(variant, tmp_path, [archive, train_dups, test_dups])
    assert len(ds) == 13 and ds.truth.counts() == {"exact": 1, "near": 1, "similar": 1}
    k = ds.ids.index("train/00007")
    stored = np.asarray(Image.open(ds.paths[k]))
    raw = pickle.loads(members["data_batch_4" if variant == "cifar10" else "train"])["data"]
    row = raw[1] if variant == "cifar10" else raw[7]
    assert np.array_equal(stored, row.reshape(3, 32, 32).transpose(1, 2, 0))
    leaks = {(ds.ids[q], ds.ids[r]) for q, r in ds.cross_pairs()}
    assert leaks == {("test/00000", "train/00007")}


def test_cifar_refuses_pickles_with_code(tmp_path):
    from dupbench.datasets.public.cifar import read_batch

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(DatasetError, match="refusing"):
        read_batch(io.BytesIO(pickle.dumps({"data": Evil()})))


def test_california_nd_encrypted_zip_and_observer_matrices(tmp_path):
    pytest.importorskip("scipy")
    from scipy.io import savemat

    photos = {f"California-ND/Photos/IMG_{k:04d}.jpg": _jpeg(k) for k in range(4)}
    votes = [np.eye(4), np.eye(4), np.eye(4)]
    for m in votes[:2]:
        m[0, 1] = m[1, 0] = 1  # 2 of 3 observers: 0~1
    votes[0][2, 3] = 1  # 1 of 3 observers: 2~3
    members = dict(photos)
    for k, m in enumerate(votes):
        buf = io.BytesIO()
        savemat(buf, {"S": m})
        members[f"California-ND/Correlation/observer{k}.mat"] = buf.getvalue()
    archive = _zip(tmp_path / "californiaND.zip", members)
    ds = _load("californiand", tmp_path, [archive])
    assert ds.truth.pairs.tolist() == [[0, 1]]
    strict = _load("californiand", tmp_path, [archive], agreement=0.3)
    assert strict.truth.pairs.tolist() == [[0, 1], [2, 3]]
    # a password is used but never written down, and does not change the build's stamp
    with_password = _load("californiand", tmp_path, [archive], agreement=0.3, password="s3cret")
    info = (tmp_path / "californiand" / "info.json").read_text()
    assert "s3cret" not in info and '"password"' not in info
    assert with_password.info["params"] == strict.info["params"]
    shutil.rmtree(tmp_path / "californiand" / "downloads")  # a rebuild would need them
    again = load_dataset(
        "californiand", root=tmp_path / "californiand", download_missing=False, agreement=0.3
    )
    assert again.checksum() == strict.checksum()


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    cut_first = 0  # the first full response stops after this many bytes
    ranges: ClassVar[list] = []

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = self.payload[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not rng and type(self).cut_first:
            self.wfile.write(body[: type(self).cut_first])
            type(self).cut_first = 0
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _RangeHandler.payload = bytes(range(256)) * 4000
    _RangeHandler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.bin"
    httpd.shutdown()
    thread.join(timeout=5)


def test_download_resumes_with_range_and_checks_sha256(tmp_path, server):
    payload = _RangeHandler.payload
    _RangeHandler.cut_first = 300_000
    resource = Resource("file.bin", (server,), sha256=hashlib.sha256(payload).hexdigest())
    path = download(resource, tmp_path, progress=False, timeout=10)
    assert path.read_bytes() == payload
    assert _RangeHandler.ranges == [None, "bytes=300000-"]
    assert not (tmp_path / "file.bin.part").exists()


def test_download_rejects_a_wrong_checksum_and_keeps_nothing(tmp_path, server):
    resource = Resource("file.bin", (server,), sha256="0" * 64)
    with pytest.raises(DownloadError, match="sha256 does not match"):
        download(resource, tmp_path, progress=False, retries=0, timeout=10)
    assert list(tmp_path.iterdir()) == []


def test_download_replaces_a_damaged_copy(tmp_path, server):
    payload = _RangeHandler.payload
    (tmp_path / "file.bin").write_bytes(payload[:1000])  # truncated by an earlier tool
    resource = Resource("file.bin", (server,), sha256=hashlib.sha256(payload).hexdigest())
    path = download(resource, tmp_path, progress=False, timeout=10)
    assert path.read_bytes() == payload
    sized = Resource("file.bin", (server,), size=len(payload))
    path.write_bytes(b"<html>error</html>")
    assert download(sized, tmp_path, progress=False, timeout=10).read_bytes() == payload


def test_a_download_that_is_not_an_archive_is_deleted_with_a_clear_error(tmp_path):
    page = tmp_path / "ukbench.zip"
    page.write_bytes(b"<html>404 Not Found</html>")  # what a broken mirror serves
    resource = Resource("ukbench.zip", (page.as_uri(),))  # no size or checksum to catch it
    with pytest.raises(DatasetError, match=r"not a zip or tar archive.*deleted"):
        load_dataset("ukbench", root=tmp_path / "ukbench", resources=(resource,), progress=False)
    assert not (tmp_path / "ukbench" / "downloads" / "ukbench.zip").exists()
    assert not (tmp_path / "ukbench" / "raw" / "ukbench").exists()  # nothing half-extracted


def test_a_damaged_saved_dataset_is_rebuilt(tmp_path):
    members = {f"full/ukbench{k:05d}.jpg": _jpeg(k) for k in range(4)}
    ds = _load("ukbench", tmp_path, [_zip(tmp_path / "ukbench.zip", members)])
    truth = tmp_path / "ukbench" / "truth.csv"
    truth.write_text(truth.read_text().splitlines()[0] + "\n")  # as if a save was cut short
    again = load_dataset(
        "ukbench", root=tmp_path / "ukbench", download_missing=False, progress=False
    )
    assert again.checksum() == ds.checksum() and len(again.truth) == 6


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_extraction_rejects_path_traversal(tmp_path, name):
    for archive in (
        _tar(tmp_path / "x.tar.gz", {name: b"x"}),
        _zip(tmp_path / "x.zip", {name: b"x"}),
    ):
        with pytest.raises(UnsafeArchiveError, match="escape"):
            safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_extraction_rejects_links(tmp_path):
    path = tmp_path / "link.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("innocent")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(UnsafeArchiveError, match="link"):
        safe_extract(path, tmp_path / "out")


def test_every_public_set_is_documented():
    docs = (Path(__file__).parents[1] / "docs" / "datasets.md").read_text()
    for name, spec in PUBLIC_SETS.items():
        assert spec.citation and spec.licence and spec.level and spec.resources({})
        assert f"`{name}`" in docs


@pytest.mark.network
@pytest.mark.parametrize("filename,url_name", [("duplicates_cifar10_test.csv", "cifar10")])
def test_real_download_of_a_small_published_file(tmp_path, filename, url_name):
    resource = next(r for r in PUBLIC_SETS.get(url_name).resources({}) if r.filename == filename)
    path = download(resource, tmp_path, progress=False)
    assert path.read_text().startswith("TestID,TrainID,Distance,Judgment")
