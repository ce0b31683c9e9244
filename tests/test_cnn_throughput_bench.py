"""The encode-throughput benchmark's torchvision-decode path, run with CPU decoding (no GPU here):
its batching, decoding and preprocessing must give the same embeddings as the normal path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "encode_throughput.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("encode_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_torchvision_decode_path_matches_the_pillow_path(tmp_path):
    from dupbench.methods.cnn import CNN

    bench = load_benchmark()
    paths = bench.make_jpegs(tmp_path, count=4, size=320)
    method = CNN(device="cpu", batch_size=3)
    ips, codes = bench.nvjpeg_embed(method, paths, batch_size=3, device="cpu")
    reference = method.encode(paths).codes
    assert ips > 0 and codes.shape == reference.shape == (4, 1280)
    assert np.all(np.sum(codes * reference, axis=1) > 0.97)  # same photo, slightly other pixels
