"""The verified method's local features are computed once per image and kept with the encodings:
in a saved .npz and in an encoding store, read back exactly, damaged files refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dupbench import encode_images, find_duplicates
from dupbench.encoding_store import EncodingStore, StoreError, UpdateCounts
from dupbench.errors import UsageError
from dupbench.records import DamagedFile, Encodings

cv2 = pytest.importorskip("cv2")
verified = pytest.importorskip("dupbench.methods.verified")
vsearch = pytest.importorskip("dupbench.search.verified")

from test_method_verified import _crop, _photo

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def _write_versions(folder: Path, name: str) -> None:
    """A photo, its mirror image and its centre crop (60 % of each side)."""
    img = _photo(name)
    img.save(folder / f"{name}.jpg", quality=90)
    img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / f"{name}__mirror.jpg")
    _crop(img, 0.6).save(folder / f"{name}__crop.jpg")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS[:3]:
        _write_versions(folder, name)
    return folder


@pytest.fixture(scope="module")
def encoded(photos) -> Encodings:
    return encode_images(photos, "verified", num_enc_workers=1, progress=False)


def assert_same_features(got: list, want: list) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert (a.width, a.height, a.kind) == (b.width, b.height, b.kind)
        assert a.points.dtype == np.float32 and a.descriptors.dtype == np.uint8
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_array_equal(a.descriptors, b.descriptors)
        assert (a.mirror is None) == (b.mirror is None)
        if a.mirror is not None:
            assert_same_features([a.mirror], [b.mirror])


def assert_same(got: Encodings, want: Encodings) -> None:
    assert isinstance(got, verified.VerifiedEncodings)
    assert got.ids == want.ids
    np.testing.assert_array_equal(got.codes, want.codes)
    assert (got.kind, got.distance, got.size, got.method, got.params, got.skipped) == (
        want.kind,
        want.distance,
        want.size,
        want.method,
        want.params,
        want.skipped,
    )
    assert_same_features(got.features, want.features)


def test_sift_features_are_saved_and_loaded_exactly(photos, encoded, tmp_path):
    assert len(encoded) == 9 and all(len(f.points) > 100 for f in encoded.features)
    back = Encodings.load(encoded.save(tmp_path / "enc.npz"))
    assert_same(back, encoded)
    assert verified.VerifiedEncodings.load(tmp_path / "enc.npz").ids == encoded.ids
    # and the search runs on what was read back, finding what it finds on the encodings made
    found = vsearch.verified_search(back, 0.13, workers=1)
    ref = vsearch.verified_search(encoded, 0.13, workers=1)
    assert list(zip(found.i, found.j)) == list(zip(ref.i, ref.j)) and len(found) >= 6
    from_file = find_duplicates(
        encoding_map=back, method="verified", scores=True, min_similarity_threshold=0.13
    )
    assert dict(from_file) == _find(photos)


def _orb(image: Image.Image, mirror: bool) -> verified.LocalFeatures:
    """ORB keypoints of a real photo (kind "orb", 32-byte descriptors); with ``mirror``, also
    those of its mirror image, as a feature type without a descriptor permutation keeps them."""
    grey = np.asarray(image.convert("L"))
    orb = cv2.ORB_create(nfeatures=200)
    keypoints, descriptors = orb.detectAndCompute(grey, None)
    points = np.array([kp.pt for kp in keypoints], np.float32).reshape(-1, 2)
    if descriptors is None:
        descriptors = np.zeros((0, 32), np.uint8)
    h, w = grey.shape
    flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return verified.LocalFeatures(
        points, descriptors, w, h, "orb", _orb(flipped, False) if mirror else None
    )


def test_orb_like_features_with_their_mirror_features_round_trip(tmp_path):
    """Every field of ``LocalFeatures`` is kept, the ``mirror`` features too, for a blank
    image without keypoints as well (its mirror has none either)."""
    blank = Image.new("RGB", (64, 48), (90, 90, 90))
    features = [_orb(_photo(n), mirror=True) for n in PHOTOS] + [_orb(blank, mirror=True)]
    assert [len(f.points) > 0 for f in features] == [True] * 4 + [False]
    assert all(f.mirror is not None and len(f.mirror.points) == len(f.points) for f in features)
    codes = np.ones((5, verified.THUMB**2), np.float32)
    enc = verified.VerifiedEncodings(
        list("abcde"), codes, "float", "cosine", verified.THUMB**2, "verified", features=features
    )
    assert_same(Encodings.load(enc.save(tmp_path / "orb.npz")), enc)
    # mirror features on some images only (the arrays for mirrors list only those)
    mixed = [features[0], verified.LocalFeatures(*_fields(features[1])), features[2]]
    enc = verified.VerifiedEncodings(list("abc"), codes[:3], "float", "cosine", 256, features=mixed)
    assert_same(Encodings.load(enc.save(tmp_path / "mixed.npz")), enc)


def _fields(f: verified.LocalFeatures) -> tuple:
    return f.points, f.descriptors, f.width, f.height, f.kind


_FRESH = """
import hashlib, json, sys
from dupbench.records import Encodings
assert "dupbench.methods.verified" not in sys.modules
enc = Encodings.load(sys.argv[1])
digest = hashlib.sha256()
for f in enc.features:
    digest.update(f.points.tobytes() + f.descriptors.tobytes() + f"{f.width}{f.height}".encode())
print(json.dumps([type(enc).__name__, len(enc.features), digest.hexdigest()]))
"""


def test_a_fresh_interpreter_loads_the_features(encoded, tmp_path):
    """records.py finds the subclass on its own: nothing has imported the verified method."""
    import hashlib

    path = encoded.save(tmp_path / "enc.npz")
    out = subprocess.run(
        [sys.executable, "-c", _FRESH, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    digest = hashlib.sha256()
    for f in encoded.features:
        digest.update(
            f.points.tobytes() + f.descriptors.tobytes() + f"{f.width}{f.height}".encode()
        )
    assert json.loads(out.stdout) == ["VerifiedEncodings", len(encoded), digest.hexdigest()]


def _rewrite(src: Path, dst: Path, change) -> Path:
    """A copy of the .npz ``src`` with ``change(arrays)`` applied to its arrays."""
    with np.load(src) as z:
        arrays = dict(z)
    change(arrays)
    np.savez_compressed(dst, **arrays)
    return dst


def test_damaged_features_are_refused(encoded, tmp_path):
    path = encoded.save(tmp_path / "enc.npz")
    size = path.stat().st_size
    path.with_name("cut.npz").write_bytes(path.read_bytes()[: size // 2])
    with pytest.raises(DamagedFile, match=r"cut\.npz"):
        Encodings.load(path.with_name("cut.npz"))

    def fewer_descriptors(a):
        a["descriptors"] = a["descriptors"][:-1]

    def negative_count(a):
        a["feature_counts"][0] = -1

    def missing(a):
        del a["points"]

    def unknown_class(a):
        header = json.loads(str(a["header"]))
        a["header"] = np.array(json.dumps({**header, "class": "dupbench.api:anything"}))

    for change, message in [
        (fewer_descriptors, "counts disagree"),
        (negative_count, "counts disagree"),
        (missing, "points"),
        (unknown_class, "cannot read"),
    ]:
        bad = _rewrite(path, tmp_path / f"{change.__name__}.npz", change)
        with pytest.raises(DamagedFile, match=message):
            Encodings.load(bad)


def test_a_truncated_features_member_is_refused(encoded, tmp_path):
    """The descriptors member cut short inside an intact zip: refused before it is read."""
    path = encoded.save(tmp_path / "enc.npz")
    cut = tmp_path / "short.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(cut, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(
                info.filename, data[:-1000] if info.filename == "descriptors.npy" else data
            )
    with pytest.raises(DamagedFile, match="'descriptors' is truncated"):
        Encodings.load(cut)


def test_a_file_saved_before_features_were_kept_loads_as_codes(encoded, tmp_path):
    """What an older ``save`` wrote (codes, no class tag) is plain ``Encodings``, which the
    search refuses in one line."""
    old = Encodings(*(getattr(encoded, k) for k in ("ids", "codes", "kind", "distance", "size")))
    back = Encodings.load(old.save(tmp_path / "old.npz"))
    assert type(back) is Encodings and back.ids == encoded.ids
    with pytest.raises(UsageError, match=r"older dupbench"):
        vsearch.verified_search(back, 0.13)
    with pytest.raises(DamagedFile, match="holds Encodings, not VerifiedEncodings"):
        verified.VerifiedEncodings.load(tmp_path / "old.npz")


def _counting(monkeypatch) -> list[UpdateCounts]:
    calls: list[UpdateCounts] = []
    real = EncodingStore.update

    def counted(self, *a, **k):
        calls.append(real(self, *a, **k))
        return calls[-1]

    monkeypatch.setattr(EncodingStore, "update", counted)
    return calls


def _find(folder: Path, **kw) -> dict:
    found = find_duplicates(
        folder,
        method="verified",
        scores=True,
        min_similarity_threshold=0.13,
        num_enc_workers=1,
        progress=False,
        **kw,
    )
    return dict(found)


def test_a_store_keeps_the_features_and_a_second_search_encodes_nothing(
    photos, tmp_path, monkeypatch
):
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    calls = _counting(monkeypatch)
    store = tmp_path / "store"
    first = _find(folder, store=store)
    assert first == _find(folder)
    assert calls[-1].encoded == 9 and "chelsea__crop.jpg" in _names(first["chelsea.jpg"])
    again = _find(folder, store=store)
    assert calls[-1].encoded == 0 and calls[-1].unchanged == 9
    assert again == first
    # one file removed, one replaced by another photo: only the new one is encoded, and the
    # features of the dead rows are gone from what the store gives
    (folder / "coffee__crop.jpg").unlink()
    _photo("rocket").save(folder / "chelsea__crop.jpg")
    after = _find(folder, store=store)
    assert (calls[-1].changed, calls[-1].removed, calls[-1].encoded) == (1, 1, 1)
    assert after == _find(folder)
    assert "chelsea__crop.jpg" not in _names(after["chelsea.jpg"])
    with EncodingStore.open_or_create(store, "verified") as kept:
        assert_same(kept.encodings(), _one_shot(folder))


def _names(found: list) -> list[str]:
    return [name for name, _ in found]


def _one_shot(folder: Path) -> Encodings:
    ids = sorted(p.name for p in folder.iterdir())
    return verified.RetrieveVerify().encode([str(folder / i) for i in ids], ids)


def test_store_batches_keep_each_rows_features(photos, tmp_path):
    """Shards of two files, files replaced across them: every live row gets its own features."""
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    path = tmp_path / "store"
    with EncodingStore.open_or_create(path, "verified") as store:
        store.update(folder, workers=1, batch_size=2)
        _photo("rocket").resize((300, 200)).save(folder / "astronaut__crop.jpg")
        (folder / "coffee.jpg").unlink()
        _write_versions(folder, "rocket")
        counts = store.update(folder, workers=1, batch_size=2)
        assert (counts.new, counts.changed, counts.removed) == (3, 1, 1)
        assert_same(store.encodings(), _one_shot(folder))
        extras = sorted(p.name for p in (path / "shards").glob("*.extra.npz"))
        assert extras == [f"{k:08d}.extra.npz" for k in range(7)]


def test_a_store_without_features_is_refused_in_one_line(photos, tmp_path):
    """A verified store whose shards have no feature files (made before they were kept) is
    refused, for reading and before any new file is encoded into it; kill leftovers (an extra
    file no row lists) are deleted like orphan shards."""
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    path = tmp_path / "store"
    with EncodingStore.open_or_create(path, "verified") as store:
        store.update(folder, workers=1, batch_size=4)
    (path / "shards" / "00000007.extra.npz").write_bytes(b"PK partial")
    with EncodingStore.open_or_create(path, "verified") as store:
        assert store.update(folder, workers=1).encoded == 0
        assert not (path / "shards" / "00000007.extra.npz").exists()
        assert len(store.encodings()) == 9
    first = path / "shards" / "00000000.extra.npz"
    kept = first.read_bytes()
    first.write_bytes(kept[: len(kept) // 2])
    with (
        EncodingStore.open_or_create(path, "verified") as store,
        pytest.raises(StoreError, match=r"00000000\.extra\.npz.*rebuild"),
    ):
        store.encodings()
    first.write_bytes(kept)
    (path / "shards" / "00000001.extra.npz").unlink()
    _photo("rocket").save(folder / "rocket.jpg")
    with EncodingStore.open_or_create(path, "verified") as store:
        for act in (store.encodings, lambda: store.update(folder, workers=1)):
            with pytest.raises(StoreError, match="without the local features") as err:
                act()
            assert "\n" not in str(err.value)
        assert len(store) == 9  # nothing was added
