"""CIFAR-10 / CIFAR-100 (Krizhevsky 2009) with the ciFAIR duplicate lists (Barz & Denzler 2020).

ciFAIR lists every test image with a near-duplicate in the training set (and within the test
set), judged by hand: 0 exact, 1 near-duplicate, 2 very similar. Test images form the "query"
split and training images the "reference" split, so the set measures train/test leakage.
The python pickles are decoded with an unpickler that only admits numpy arrays and builtins,
and the images are written once as PNG files.
"""

from __future__ import annotations

import csv
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from dupbench.datasets.cache import atomic_dir
from dupbench.datasets.download import Resource
from dupbench.datasets.public.base import PUBLIC_SETS, Parsed, PublicSet
from dupbench.datasets.truth import DatasetError, GroundTruth

JUDGMENT_LEVELS = {0: "exact", 1: "near", 2: "similar"}
_CIFAIR = "https://raw.githubusercontent.com/cvjena/cifair/master/meta/"
_TORONTO = "https://www.cs.toronto.edu/~kriz/"
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("builtins", "bytes"),
    ("_codecs", "encode"),
}  # how Python 3 pickles bytes at protocol 2


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise DatasetError(f"CIFAR pickle refers to {module}.{name}; refusing to load it")


def read_batch(fileobj) -> dict:
    """One CIFAR python batch → dict with str keys (the files were pickled by Python 2)."""
    data = _ArraysOnly(fileobj, encoding="latin1").load()
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in data.items()}


def _batches(archive: Path, variant: str) -> tuple[dict, dict, list[str]]:
    """(train batch, test batch, label names) from the downloaded tarball."""
    top = "cifar-10-batches-py" if variant == "cifar10" else "cifar-100-python"
    with tarfile.open(archive) as tf:

        def load(name):
            member = tf.getmember(f"{top}/{name}")
            f = tf.extractfile(member)
            if f is None:
                raise DatasetError(f"{archive.name}: {member.name} is not a file")
            with f:
                return read_batch(f)

        if variant == "cifar10":
            parts = [load(f"data_batch_{k}") for k in range(1, 6)]
            train = {
                "data": np.concatenate([p["data"] for p in parts]),
                "labels": [label for p in parts for label in p["labels"]],
            }
            test = load("test_batch")
            names = load("batches.meta")["label_names"]
        else:
            train, test = load("train"), load("test")
            for batch in (train, test):
                batch["labels"] = batch["fine_labels"]
            names = load("meta")["fine_label_names"]
    return train, test, [n.decode() if isinstance(n, bytes) else n for n in names]


def _write_pngs(batch: dict, folder: Path, progress: bool) -> None:
    with atomic_dir(folder) as tmp:
        pixels = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        for k in tqdm(range(len(pixels)), desc=folder.name, disable=not progress):
            Image.fromarray(pixels[k].transpose(1, 2, 0)).save(
                tmp / f"{k:05d}.png", compress_level=1
            )


def _read_duplicates(path: Path, a_split: str, b_split: str):
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            judgment = int(row["Judgment"])
            if judgment not in JUDGMENT_LEVELS:
                raise DatasetError(f"{path}: unknown Judgment {judgment}")
            yield (
                f"{a_split}/{int(row['TestID']):05d}",
                f"{b_split}/{int(row['TrainID']):05d}",
                JUDGMENT_LEVELS[judgment],
            )


def make_parse(variant: str):
    def parse(raw: Path, files: dict, progress: bool = True, **params) -> Parsed:
        archive = files[f"{'cifar-10' if variant == 'cifar10' else 'cifar-100'}-python.tar.gz"]
        png = raw / "png"
        train, test, names = _batches(archive, variant)
        for split, batch in (("train", train), ("test", test)):
            if not (png / split).is_dir():
                _write_pngs(batch, png / split, progress)
        rows = []
        for split, batch in (("test", test), ("train", train)):
            for k, label in enumerate(batch["labels"]):
                rows.append(
                    {
                        "id": f"{split}/{k:05d}",
                        "path": str(png / split / f"{k:05d}.png"),
                        "category": names[int(label)],
                        "split": "query" if split == "test" else "reference",
                    }
                )
        images = pd.DataFrame(rows)
        a, b, levels = [], [], []
        for filename, b_split in (
            (f"duplicates_{variant}.csv", "train"),
            (f"duplicates_{variant}_test.csv", "test"),
        ):
            for x, y, level in _read_duplicates(files[filename], "test", b_split):
                a.append(x)
                b.append(y)
                levels.append(level)
        truth = GroundTruth.from_id_pairs(list(images["id"]), a, b, levels, source="ciFAIR lists")
        return Parsed(images, truth)

    return parse


def _spec(variant: str, md5: str, nbytes: int, size: str, classes: int) -> PublicSet:
    tarball = f"{'cifar-10' if variant == 'cifar10' else 'cifar-100'}-python.tar.gz"
    return PublicSet(
        name=variant,
        description=f"CIFAR-{classes} (60,000 32x32 images) with the ciFAIR lists of test images "
        "that have duplicates in the training set or the test set.",
        size=size,
        level="exact / near / similar (ciFAIR manual judgments 0 / 1 / 2)",
        licence="CIFAR: free for research (no formal licence); ciFAIR lists: MIT",
        citation="A. Krizhevsky. Learning multiple layers of features from tiny images. 2009. "
        "B. Barz, J. Denzler. Do we train on test data? Purging CIFAR of "
        "near-duplicates. Journal of Imaging 6(6), 2020.",
        homepage="https://cvjena.github.io/cifair/",
        resources=lambda params: (
            Resource(tarball, (_TORONTO + tarball,), md5=md5, size=nbytes),
            Resource(f"duplicates_{variant}.csv", (_CIFAIR + f"duplicates_{variant}.csv",)),
            Resource(
                f"duplicates_{variant}_test.csv", (_CIFAIR + f"duplicates_{variant}_test.csv",)
            ),
        ),
        parse=make_parse(variant),
    )


#: md5 and byte size of the Toronto tarballs (as torchvision and Keras check them)
CIFAR10 = _spec(
    "cifar10",
    "c58f30108f718f92721af3b95e74349a",
    170_498_071,
    "60,000 images (50k train, 10k test), 163 MB",
    10,
)
CIFAR100 = _spec(
    "cifar100",
    "eb9058c3a382ffc7106e4002c42a8d85",
    169_001_437,
    "60,000 images (50k train, 10k test), 161 MB",
    100,
)
PUBLIC_SETS.add(CIFAR10.name, CIFAR10)
PUBLIC_SETS.add(CIFAR100.name, CIFAR100)
