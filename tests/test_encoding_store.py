"""The encoding store: reuse, incremental updates, skips, and recovery from a kill at any point."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dupbench.encoding_store import SHARDS, EncodingStore, StoreError
from dupbench.methods import get_method
from dupbench.records import Encodings


def write_images(folder: Path, count: int, start: int = 0, size: int = 32) -> list[str]:
    """Distinct small PNGs (smoothed noise, so their pHashes differ); returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(start, start + count):
        rng = np.random.default_rng(k)
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)
        names.append(f"img{k:05d}.png")
        img.save(folder / names[-1])
    return names


def one_shot(folder: Path, method: str = "phash") -> Encodings:
    """The reference: ``Method.encode`` over every file of the folder at once, ordered by id."""
    ids = sorted(p.name for p in folder.iterdir())
    return get_method(method).encode([str(folder / i) for i in ids], ids)


def assert_same(enc: Encodings, ref: Encodings) -> None:
    assert enc.ids == ref.ids
    np.testing.assert_array_equal(enc.codes, ref.codes)
    assert (enc.kind, enc.distance, enc.size, enc.method, enc.params) == (
        ref.kind,
        ref.distance,
        ref.size,
        ref.method,
        ref.params,
    )
    assert enc.codes.flags.c_contiguous
    assert sorted((Path(s.path).name, s.reason) for s in enc.skipped) == sorted(
        (Path(s.path).name, s.reason) for s in ref.skipped
    )


def spy_encoded(store: EncodingStore) -> list[str]:
    """Record the ids every ``Method.encode`` call of this store receives."""
    seen: list[str] = []
    encode = store.method.encode

    def spy(sources, ids, **kw):
        seen.extend(ids)
        return encode(sources, ids, **kw)

    store.method.encode = spy
    return seen


def shard_files(store_path: Path) -> list[str]:
    return sorted(p.name for p in (store_path / SHARDS).iterdir())


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    write_images(tmp_path / "images", 40)
    return tmp_path / "images"


def test_create_reopen_and_refuse_another_configuration(tmp_path, folder):
    path = tmp_path / "store"
    with EncodingStore.open_or_create(path, "phash") as store:
        store.update(folder, workers=1)
    with EncodingStore.open_or_create(path, get_method("phash", hash_size=8)) as store:
        assert len(store) == 40
    for method, params in (("dhash", {}), ("phash", {"hash_size": 16})):
        with pytest.raises(StoreError, match=r"holds phash\(.*use another store path") as err:
            EncodingStore.open_or_create(path, method, **params)
        assert "\n" not in str(err.value)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty and is not an encoding store"):
        EncodingStore.open_or_create(tmp_path / "other", "phash")


def test_update_twice_encodes_once_and_equals_one_shot(tmp_path, folder):
    path = tmp_path / "store"
    with EncodingStore.open_or_create(path, "phash") as store:
        counts = store.update(folder, workers=2, batch_size=16)
        assert (counts.new, counts.changed, counts.unchanged, counts.removed) == (40, 0, 0, 0)
        assert len(shard_files(path)) == 3  # 16 + 16 + 8
        assert_same(store.encodings(), one_shot(folder))
    with EncodingStore.open_or_create(path, "phash") as store:
        encoded = spy_encoded(store)
        counts = store.update(folder, workers=1, batch_size=16, progress=True)
        assert (counts.new, counts.changed, counts.unchanged, counts.removed) == (0, 0, 40, 0)
        assert encoded == [] and len(shard_files(path)) == 3
        assert_same(store.encodings(), one_shot(folder))


def test_only_changed_added_files_are_encoded_and_removed_ones_drop_out(tmp_path, folder):
    with EncodingStore.open_or_create(tmp_path / "store", "phash") as store:
        store.update(folder, workers=1, batch_size=16)
        before = dict(zip(store.encodings().ids, store.encodings().codes[:, 0]))
        encoded = spy_encoded(store)
        # img00003 gets the pixels of a new image (and a new mtime); img00007 is deleted
        write_images(folder / "tmp", 1, start=1000)
        os.replace(folder / "tmp" / "img01000.png", folder / "img00003.png")
        (folder / "tmp").rmdir()
        st = (folder / "img00003.png").stat()
        os.utime(folder / "img00003.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        (folder / "img00007.png").unlink()
        added = write_images(folder, 3, start=40)
        counts = store.update(folder, workers=1, batch_size=16)
        assert (counts.new, counts.changed, counts.unchanged, counts.removed) == (3, 1, 38, 1)
        assert encoded == ["img00003.png", *added]
        enc = store.encodings()
        assert_same(enc, one_shot(folder))
        assert "img00007.png" not in enc.ids
        after = dict(zip(enc.ids, enc.codes[:, 0]))
        assert after["img00003.png"] != before["img00003.png"]


def test_unreadable_file_is_recorded_and_retried_only_when_it_changes(tmp_path, folder):
    (folder / "broken.png").write_bytes((folder / "img00001.png").read_bytes()[:50])
    with EncodingStore.open_or_create(tmp_path / "store", "phash") as store:
        counts = store.update(folder, workers=1)
        assert counts.skipped == 1 and counts.encoded == 40
        enc = store.encodings()
        assert [Path(s.path).name for s in enc.skipped] == ["broken.png"]
        assert "broken.png" not in enc.ids
        encoded = spy_encoded(store)
        assert store.update(folder, workers=1).skipped == 0 and encoded == []
        assert [Path(s.path).name for s in store.encodings().skipped] == ["broken.png"]
        (folder / "broken.png").write_bytes((folder / "img00001.png").read_bytes())
        counts = store.update(folder, workers=1)
        assert (counts.changed, counts.skipped) == (1, 0) and encoded == ["broken.png"]
        assert_same(store.encodings(), one_shot(folder))
        assert store.encodings().skipped == []


def test_interrupted_update_resumes_and_ignores_uncommitted_shards(tmp_path, folder):
    path = tmp_path / "store"
    with EncodingStore.open_or_create(path, "phash") as store:
        encode = store.method.encode
        calls = []

        def interrupted(sources, ids, **kw):
            calls.append(ids)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return encode(sources, ids, **kw)

        store.method.encode = interrupted
        with pytest.raises(KeyboardInterrupt):
            store.update(folder, workers=1, batch_size=8)
        assert len(store) == 16
    # what a kill between a shard's rename and its commit leaves: a shard no row points at,
    # with the wrong codes in it, and a temporary file
    np.save(path / SHARDS / "00000002.npy", np.full((8, 1), 7, np.uint64))
    (path / SHARDS / ".00000003.npy.123.abcd.tmp").write_bytes(b"\x93NUMPY partial")
    with EncodingStore.open_or_create(path, "phash") as store:
        assert len(store.encodings()) == 16  # readers never open uncommitted shards
        encoded = spy_encoded(store)
        counts = store.update(folder, workers=1, batch_size=8)
        assert (counts.new, counts.unchanged) == (24, 16)
        assert encoded == sorted(os.listdir(folder))[16:]
        assert_same(store.encodings(), one_shot(folder))
        assert shard_files(path) == [f"{k:08d}.npy" for k in range(5)]


def test_one_writer_at_a_time_and_one_folder_per_store(tmp_path, folder):
    import fcntl

    path = tmp_path / "store"
    with EncodingStore.open_or_create(path, "phash") as store:
        store.update(folder, workers=1)
        with open(path / "writer.lock", "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            with pytest.raises(StoreError, match="being updated by another process"):
                store.update(folder, workers=1)
        write_images(tmp_path / "elsewhere", 2)
        with pytest.raises(StoreError, match=r"mirrors .*use another store path"):
            store.update(tmp_path / "elsewhere", workers=1)
        with pytest.raises(StoreError, match="not a directory"):
            store.update(tmp_path / "missing", workers=1)
        assert len(store) == 40
        (path / SHARDS / "00000000.npy").unlink()
        with pytest.raises(StoreError, match=r"shard 0 is unreadable.*rebuild"):
            store.encodings()


_UPDATE_SCRIPT = """
import sys, time
from dupbench.encoding_store import EncodingStore
import tqdm.auto  # imported and warmed up before "start", so kills land in the encoding
store = EncodingStore.open_or_create(sys.argv[1], sys.argv[3] if len(sys.argv) > 3 else "phash")
store.method.encode([sys.argv[2] + "/img00000.png"])
print("start", flush=True)
t = time.perf_counter()
store.update(sys.argv[2], workers=1, batch_size=16)
print("done", time.perf_counter() - t, flush=True)
"""


def run_update(
    store: Path, folder: Path, kill_after: float | None = None, method: str = "phash"
) -> float | None:
    """Run ``update`` in a new process group; SIGKILL the group ``kill_after`` seconds after it
    starts. Returns the encoding time of a run that finished, None for one that was killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _UPDATE_SCRIPT, str(store), str(folder), method],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout.readline().strip() == "start"
    if kill_after is not None:
        time.sleep(kill_after)
        os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    if proc.returncode == -signal.SIGKILL:
        return None
    assert proc.returncode == 0, out
    return float(out.split()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, seed, count, size",
    [("phash", 1, 600, 32), ("phash", 2, 600, 32), ("phash", 3, 600, 32), ("verified", 4, 240, 96)],
)
def test_sigkill_at_random_points_then_resume_equals_one_uninterrupted_run(
    tmp_path, method, seed, count, size
):
    """Three kills, each at a random moment of what is left to encode (shards of 16 files);
    for the verified method, its local features (written beside each shard) too."""
    folder = tmp_path / "images"
    names = write_images(folder, count, size=size)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    duration = run_update(tmp_path / "reference", folder, method=method)
    with EncodingStore.open_or_create(tmp_path / "reference", method) as store:
        reference = store.encodings()
    codes = dict(zip(reference.ids, reference.codes.tolist()))
    features = dict(zip(reference.ids, map(_feature_bytes, reference.extra())))
    rng = random.Random(seed)
    path = tmp_path / "store"
    kills, left = 0, 1.0
    for _ in range(3):
        kill_after = rng.uniform(0, duration * left)
        kills += run_update(path, folder, kill_after, method) is None
        with EncodingStore.open_or_create(path, method) as store:
            partial = store.encodings()  # readable after any kill, and only committed codes
        assert set(partial.ids) <= set(codes)
        assert all(codes[i] == c for i, c in zip(partial.ids, partial.codes.tolist()))
        assert all(features[i] == _feature_bytes(f) for i, f in zip(partial.ids, partial.extra()))
        left = 1 - len(partial) / len(names)
    assert kills >= 1
    run_update(path, folder, method=method)
    with EncodingStore.open_or_create(path, method) as store:
        done = store.encodings()
        listed = {s for (s,) in store._db.execute("SELECT shard FROM shards")}
    assert_same(done, reference)
    assert list(map(_feature_bytes, done.extra())) == list(features.values())
    assert (len(features) == len(reference)) == (method == "verified")
    extra = {f"{s:08d}.extra.npz" for s in listed} if method == "verified" else set()
    assert set(shard_files(path)) == {f"{s:08d}.npy" for s in listed} | extra
    assert json.loads((path / "manifest.json").read_text())["config"]["method"] == method


def _feature_bytes(f) -> bytes:
    """One image's local features as bytes, to compare them whole."""
    return b"".join((f.points.tobytes(), f.descriptors.tobytes(), f"{f.width}x{f.height}".encode()))


@pytest.mark.slow
def test_readers_see_consistent_committed_codes_while_a_writer_runs(tmp_path):
    folder = tmp_path / "images"
    write_images(folder, 600)
    path = tmp_path / "store"
    EncodingStore.open_or_create(path, "phash").close()
    proc = subprocess.Popen(
        [sys.executable, "-c", _UPDATE_SCRIPT, str(path), str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    reference = one_shot(folder)
    codes = dict(zip(reference.ids, reference.codes.tolist()))
    seen = []
    while proc.poll() is None:
        with EncodingStore.open_or_create(path, "phash") as store:
            enc = store.encodings()
        assert all(codes[i] == c for i, c in zip(enc.ids, enc.codes.tolist()))
        seen.append(len(enc))
    assert proc.wait() == 0
    assert seen == sorted(seen) and any(0 < k < 600 for k in seen)  # a mid-update snapshot
    with EncodingStore.open_or_create(path, "phash") as store:
        assert_same(store.encodings(), reference)


def test_the_api_and_the_cli_keep_and_reuse_a_store(tmp_path, capsys, monkeypatch):
    from dupbench import encode_images, find_duplicates
    from dupbench.cli import main

    folder, store = tmp_path / "imgs", tmp_path / "store"
    write_images(folder, 12)
    Image.open(folder / "img00003.png").save(folder / "copy.png")
    assert main(["encode", str(folder), "--store", str(store), "-q", "--workers", "1"]) == 0
    assert "-> " + str(store) in capsys.readouterr().err
    # a second encode through the API reads the store and encodes nothing
    calls = []
    real = EncodingStore.update

    def counted_update(self, *a, **k):
        calls.append(real(self, *a, **k))
        return calls[-1]

    monkeypatch.setattr(EncodingStore, "update", counted_update)
    kept = encode_images(folder, "phash", store=store, num_enc_workers=1, progress=False)
    assert calls[-1].encoded == 0 and calls[-1].unchanged == 13
    assert_same(kept, encode_images(folder, "phash", num_enc_workers=1, progress=False))
    with_store = find_duplicates(
        folder, method="phash", store=store, num_enc_workers=1, progress=False
    )
    assert dict(with_store) == dict(
        find_duplicates(folder, method="phash", num_enc_workers=1, progress=False)
    )
    assert with_store["copy.png"] == ["img00003.png"]
    # another method's codes never mix with these
    assert main(["encode", str(folder), "--store", str(store), "-m", "dhash", "-q"]) == 2
    assert main(["encode", str(folder), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("dupbench encode: error:") for line in err)
