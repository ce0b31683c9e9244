"""dupbench.Index: batches, edited copies, changes, crashes, concurrency, the CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

import dupbench
from dupbench.cli import main
from dupbench.errors import UsageError
from dupbench.index import Index
from dupbench.methods import registry
from dupbench.methods.base import Method

REPO = Path(__file__).resolve().parents[1]


def edits(img: Image.Image) -> dict[str, Image.Image]:
    """The edited copies each original must be found from."""
    return {
        "resized": img.resize((img.width * 2 // 3, img.height * 2 // 3), Image.Resampling.BILINEAR),
        "jpeg": img,  # saved below at a low JPEG quality
        "brighter": ImageEnhance.Brightness(img).enhance(1.08),
    }


@pytest.fixture()
def originals(tmp_path, photos) -> dict[str, Path]:
    """The bundled photos as PNGs, spread over three folders (added as three batches)."""
    out = {}
    for i, (name, array) in enumerate(sorted(photos.items())):
        folder = tmp_path / "originals" / f"batch{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        out[name] = folder / f"{name}.png"
        Image.fromarray(array).convert("RGB").save(out[name])
    return out


@pytest.fixture()
def edited(tmp_path, originals) -> dict[Path, str]:
    """edited copy's path -> name of its original."""
    folder = tmp_path / "edited"
    folder.mkdir()
    out = {}
    for name, path in originals.items():
        for edit, img in edits(Image.open(path).convert("RGB")).items():
            copy = folder / f"{name}_{edit}.jpg"
            img.save(copy, quality=40 if edit == "jpeg" else 90)
            out[copy] = name
    return out


def test_batches_then_every_edited_copy_finds_its_original(tmp_path, originals, edited):
    index = Index.create(tmp_path / "ix", "phash")
    for batch in sorted({p.parent for p in originals.values()}):
        done = index.add(batch, batch_size=2)
        assert len(done.added) == len(list(batch.iterdir())) and not done.skipped
    assert len(index) == len(originals)
    for copy, name in edited.items():
        matches = index.query(copy, k=1)
        assert matches, f"{copy.name}: nothing within {index.default_threshold} bits"
        assert matches[0].name == str(originals[name].resolve()), copy.name
    # the answers survive closing and reopening
    index.close()
    with Index.open(tmp_path / "ix") as again:
        copy, name = next(iter(edited.items()))
        assert again.query(copy, k=1)[0].name == str(originals[name].resolve())


def test_digest_index_finds_byte_copies_only(tmp_path, originals, edited):
    index = Index.create(tmp_path / "ix", "file_digest")
    index.add([str(p) for p in originals.values()])
    original = originals["coffee"]
    copy = tmp_path / "copy.png"
    copy.write_bytes(original.read_bytes())
    assert [m.name for m in index.query(copy)] == [str(original.resolve())]
    assert all(index.query(p) == [] for p in edited)  # re-encoded pixels: other bytes


def test_only_new_or_changed_files_are_encoded(tmp_path, originals):
    folder = originals["coffee"].parent
    index = Index.create(tmp_path / "ix", "dhash")
    first = index.add(folder)
    ids = {name: i for i, name in first.added}
    again = index.add(folder)
    assert not again.added and sorted(again.unchanged) == sorted(ids)
    coffee = str(originals["coffee"].resolve())
    os.utime(coffee, ns=(1, 1))  # touched, same bytes: the digest says unchanged
    assert index.add(folder).unchanged.count(coffee) == 1
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(coffee)  # really changed
    changed = index.add(folder)
    assert [name for _, name in changed.added] == [coffee]
    new_id = changed.added[0][0]
    assert new_id != ids[coffee] and len(index) == len(ids)
    assert index.lookup(coffee)["id"] == new_id
    assert all(m.id != ids[coffee] for m in index.query(coffee, threshold=64))


def test_unreadable_files_are_skipped_with_reasons(tmp_path, planted_dir):
    index = Index.create(tmp_path / "ix")
    done = index.add(planted_dir["dir"])
    assert {Path(s.path).name for s in done.skipped} == planted_dir["bad"]
    assert all(s.reason for s in done.skipped)
    assert len(index) == len(list(planted_dir["dir"].iterdir())) - len(planted_dir["bad"])


def test_remove(tmp_path, originals):
    index = Index.create(tmp_path / "ix")
    added = dict(index.add([str(p) for p in originals.values()]).added)
    gone = next(iter(added))
    assert index.remove([gone, 10**9]) == [gone]
    assert len(index) == len(added) - 1
    assert all(m.id != gone for m in index.query(added[gone], threshold=64))
    index.close()
    assert len(Index.open(tmp_path / "ix")) == len(added) - 1


def test_find_duplicates_matches_the_api(tmp_path, planted_dir):
    index = Index.create(tmp_path / "ix", "phash")
    index.add(planted_dir["dir"])
    ours = {
        Path(k).name: sorted(Path(v).name for v in vs) for k, vs in index.find_duplicates().items()
    }
    api = {
        k: sorted(vs)
        for k, vs in dupbench.find_duplicates(
            planted_dir["dir"], method="phash", progress=False
        ).items()
    }
    assert ours == api
    assert any(ours.values())  # the planted copies are there


def test_wrong_method_and_bad_folders_are_refused(tmp_path):
    Index.create(tmp_path / "ix", "phash").close()
    with pytest.raises(UsageError, match="holds phash"):
        Index.open(tmp_path / "ix", "phash", hash_size=16)
    with pytest.raises(UsageError, match="not an empty folder"):
        Index.create(tmp_path / "ix", "phash")
    with pytest.raises(UsageError, match="no index here"):
        Index.open(tmp_path / "nothing")
    with pytest.raises(UsageError, match="unknown index backend"):
        Index.create(tmp_path / "other", backend="locale")
    with pytest.raises(UsageError, match="k must be"):
        Index.open(tmp_path / "ix").query_codes(np.zeros((1, 1), np.uint64), k=0)


class ColourHistogram(Method):
    """A tiny float method for the cosine path: a 4x4x4 RGB histogram (64 floats)."""

    name = "test_colour_histogram"
    kind = "float"
    distance = "cosine"
    default_threshold = 0.95

    @property
    def size(self) -> int:
        return 64

    def encode_image(self, image: Image.Image) -> np.ndarray:
        rgb = np.asarray(image.convert("RGB").resize((64, 64))) // 64
        cells = rgb[..., 0] * 16 + rgb[..., 1] * 4 + rgb[..., 2]
        return np.bincount(cells.ravel(), minlength=64).astype(np.float32)


def test_cosine_index_with_a_float_method(tmp_path, monkeypatch, originals, edited):
    monkeypatch.setitem(registry.METHODS._entries, ColourHistogram.name, ColourHistogram)
    index = Index.create(tmp_path / "ix", ColourHistogram.name)
    index.add([str(p) for p in originals.values()])
    hits = 0
    for copy, name in edited.items():
        best = index.query(copy, threshold=-1, k=3)
        assert len(best) == 3 and best[0].score >= best[1].score >= best[2].score
        hits += best[0].name == str(originals[name].resolve())
    assert hits >= len(edited) * 2 // 3  # a colour histogram is a weak but real signal
    vectors = np.random.default_rng(0).normal(size=(5, 64)).astype(np.float32)
    ids = index.add_codes([f"v{i}" for i in range(5)], vectors)
    found = index.query_codes(vectors * 3, threshold=0.999)  # scale does not change cosine
    assert [[m.id for m in row] for row in found] == [[i] for i in ids]
    index.remove(ids[:1])
    assert index.query_codes(vectors[:1], threshold=0.999) == [[]]


# -- crashes -------------------------------------------------------------------------------------
def _child(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _consistent(path: Path, files: list[Path]) -> Index:
    """Reopen after a crash: no half-done rows, backend and table agree, every entry findable."""
    index = Index.open(path)
    with sqlite3.connect(path / "entries.sqlite") as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM entries GROUP BY state").fetchall())
    assert set(states) <= {"live"}
    assert len(index) == len(index.backend)
    for entry in index.entries():
        assert entry["id"] in [m.id for m in index.query(entry["name"], threshold=0)]
    return index


@pytest.fixture()
def many_files(tmp_path, photos) -> list[Path]:
    """40 distinct small images (crops of the photos)."""
    folder = tmp_path / "many"
    folder.mkdir()
    out = []
    for name, array in sorted(photos.items()):
        for j in range(6):
            if len(out) < 40:
                crop = array[j * 40 : j * 40 + 96, j * 50 : j * 50 + 96]
                out.append(folder / f"{name}_{j}.png")
                Image.fromarray(crop).convert("RGB").save(out[-1])
    return out


@pytest.mark.parametrize("where", ["after_backend_add", "after_shard_write"])
def test_killed_writer_leaves_a_consistent_index(tmp_path, many_files, where):
    """SIGKILL at the two points where the backend and the table disagree, on the third batch."""
    path = tmp_path / "ix"
    Index.create(path, "phash").close()
    result = _child(
        """
        import os, signal, sys
        import dupbench.index.local as local
        from dupbench.index import Index
        where, calls = sys.argv[2], []
        def killing(original):
            def wrapper(*args, **kwargs):
                original(*args, **kwargs)
                calls.append(1)
                if len(calls) == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
            return wrapper
        if where == "after_backend_add":
            local.LocalBackend.add = killing(local.LocalBackend.add)
        else:
            local.write_durably = killing(local.write_durably)
        Index.open(sys.argv[1]).add(sys.argv[3], batch_size=8)
        """,
        str(path),
        where,
        str(many_files[0].parent),
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    index = _consistent(path, many_files)
    assert len(index) == 16  # two batches of 8 committed, the third undone
    again = index.add(many_files[0].parent, batch_size=8)
    assert len(again.added) == len(many_files) - 16 and len(again.unchanged) == 16
    assert len(index) == len(many_files)
    _consistent(path, many_files)


def test_killed_at_a_random_moment_recovers(tmp_path, many_files):
    """A real kill from outside, while a slow writer is somewhere in a batch."""
    path = tmp_path / "ix"
    Index.create(path, "phash").close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = textwrap.dedent("""
        import sys, time
        from dupbench.index import Index
        from dupbench.methods import get_method
        cls = type(get_method("phash"))
        slow = cls.encode_image
        cls.encode_image = lambda self, img: (time.sleep(0.05), slow(self, img))[1]
        Index.open(sys.argv[1]).add(sys.argv[2], batch_size=4, workers=1)
        """)
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(path), str(many_files[0].parent)], env=env
    )
    try:
        db = sqlite3.connect(path / "entries.sqlite", timeout=30)
        deadline = 60 / 0.05
        while db.execute("SELECT COUNT(*) FROM entries WHERE state = 'live'").fetchone()[0] < 10:
            assert child.poll() is None and deadline > 0, "writer ended before the kill"
            threading.Event().wait(0.05)
            deadline -= 1
        db.close()
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    index = _consistent(path, many_files)
    assert 10 <= len(index) < len(many_files)
    index.add(many_files[0].parent)
    assert len(index) == len(many_files)


# -- concurrency ---------------------------------------------------------------------------------
def test_two_readers_and_a_writer_at_once(tmp_path):
    """A writer process adds batches while two reader threads query the same index."""
    rng = np.random.default_rng(1)
    path = tmp_path / "ix"
    index = Index.create(path, "phash")
    known = rng.integers(0, 2**63, (50, 1), dtype=np.int64).astype(np.uint64)
    known_ids = index.add_codes([f"known{i}" for i in range(50)], known)
    later = rng.integers(0, 2**63, (20 * 200, 1), dtype=np.int64).astype(np.uint64)
    np.save(tmp_path / "later.npy", later)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
        import sys, numpy as np
        from dupbench.index import Index
        index = Index.open(sys.argv[1])
        later = np.load(sys.argv[2])
        for b in range(20):
            index.add_codes([f"later{b}-{i}" for i in range(200)], later[b * 200:(b + 1) * 200])
        """),
            str(path),
            str(tmp_path / "later.npy"),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    errors, seen = [], [[], []]

    def read(slot: int) -> None:
        try:
            while writer.poll() is None or len(seen[slot]) < 3:
                found = index.query_codes(known, threshold=0)
                assert [[m.id for m in row] for row in found] == [[i] for i in known_ids]
                seen[slot].append(len(index))
        except Exception as e:
            errors.append(e)

    readers = [threading.Thread(target=read, args=(s,)) for s in range(2)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(120)
    assert writer.wait(120) == 0
    assert not errors, errors[0]
    for counts in seen:
        assert counts == sorted(counts)  # a reader never sees an add undone
    assert len(index) == 50 + len(later)
    found = index.query_codes(later[-3:], threshold=0)
    assert [[m.name for m in row] for row in found] == [[f"later19-{i}"] for i in (197, 198, 199)]


# -- the CLI -------------------------------------------------------------------------------------
def test_cli_round_trip(tmp_path, originals, edited, capsys):
    ix = str(tmp_path / "ix")
    assert main(["index", "create", ix, "--method", "phash", "-p", "hash_size=8"]) == 0
    folder = str(originals["coffee"].parent.parent)
    assert main(["index", "add", ix, folder, "-r", "-q"]) == 0
    assert f"added {len(originals)}" in capsys.readouterr().err
    copy = next(p for p, name in edited.items() if name == "coffee")
    assert main(["index", "query", ix, str(copy), "-k", "1", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer[0]["matches"][0]["name"] == str(originals["coffee"].resolve())
    assert main(["index", "info", ix]) == 0
    assert f"entries: {len(originals)}" in capsys.readouterr().out
    first = answer[0]["matches"][0]["id"]
    assert main(["index", "remove", ix, str(first)]) == 0
    assert main(["index", "remove", ix, str(first)]) == 1  # not there any more
    assert main(["index", "query", ix, str(copy), "-m", "dhash"]) == 2
    err = capsys.readouterr().err
    assert "holds phash" in err and "Traceback" not in err
    assert main(["index", "query", ix, str(tmp_path / "missing.jpg")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_many_small_adds_are_merged_into_checkpoints(tmp_path, monkeypatch):
    """One shard per add would grow without bound: every MAX_SHARDS they become one, and a
    reader opened before (another connection, as another process would be) follows along."""
    from dupbench.index import local

    monkeypatch.setattr(local, "MAX_SHARDS", 4)
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 2**63, (30, 1), dtype=np.int64).astype(np.uint64)
    writer = Index.create(tmp_path / "ix", "phash")
    reader = Index.open(tmp_path / "ix")
    ids = []
    for i in range(30):
        ids += writer.add_codes([f"c{i}"], codes[i : i + 1])
        if i % 7 == 6:
            writer.remove([ids[i - 3]])
    removed = {ids[i - 3] for i in range(30) if i % 7 == 6}
    shards = list((tmp_path / "ix" / "local" / "shards").iterdir())
    assert len(shards) <= local.MAX_SHARDS + 1
    for index in (writer, reader, Index.open(tmp_path / "ix")):
        found = index.query_codes(codes, threshold=0)
        assert [[m.id for m in row] for row in found] == [[] if i in removed else [i] for i in ids]
        assert len(index) == len(index.backend) == 30 - len(removed)


@pytest.mark.slow
def test_cnn_index_finds_recompressed_copies(tmp_path, originals, edited):
    """The real embedding path: CNN codes, cosine through FAISS, at imagededup's 0.9 (the CNN's
    default, calibrated to 99 % pair precision against hard negatives, keeps few such copies)."""
    pytest.importorskip("torch")
    pytest.importorskip("faiss")
    names = ("astronaut", "chelsea", "coffee", "rocket")
    index = Index.create(tmp_path / "ix", "cnn")
    index.add([str(originals[n]) for n in names])
    for copy, name in edited.items():
        if name in names and copy.stem.endswith("jpeg"):
            best = index.query(copy, threshold=0.9, k=2)
            assert best and best[0].name == str(originals[name].resolve()), copy.name
            assert best[0].score >= 0.9
