"""dupbench serve: the HTTP API in process (ASGI) and one real uvicorn on 127.0.0.1."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import jpeg_bytes
from PIL import Image

from dupbench.index import Index

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

REPO = Path(__file__).resolve().parents[1]


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def client(tmp_path):
    from fastapi.testclient import TestClient

    from dupbench.index.service import create_app

    index = Index.create(tmp_path / "ix", "phash")
    app = create_app(index, token="s3cret", max_bytes=2_000_000, max_pixels=1_000_000)
    with TestClient(app) as c:
        yield c
    index.close()


AUTH = {"Authorization": "Bearer s3cret"}


def test_add_then_query_edited_copies(client, photos):
    ids = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        r = client.post(
            "/add", params={"name": name}, content=jpeg_bytes(photos[name]), headers=AUTH
        )
        assert r.status_code == 200 and r.json()["added"], r.text
        ids[name] = r.json()["id"]
    for name, ident in ids.items():
        small = Image.fromarray(photos[name]).resize((200, 150))
        r = client.post("/query", content=jpeg_bytes(np.asarray(small), 50), params={"k": 1})
        assert r.status_code == 200, r.text
        assert [m["id"] for m in r.json()["matches"]] == [ident]
    again = client.post(
        "/add", params={"name": "coffee"}, content=jpeg_bytes(photos["coffee"]), headers=AUTH
    )
    assert again.json() == {"id": ids["coffee"], "name": "coffee", "added": False}
    stats = client.get("/stats").json()
    assert stats["entries"] == 4 and stats["served"] == {"add": 5, "query": 4}
    assert client.get("/health").json() == {"status": "ok"}
    assert "/query" in client.get("/openapi.json").json()["paths"]


def test_writes_need_the_token(client, photos):
    body = jpeg_bytes(photos["coffee"])
    assert client.post("/add", params={"name": "x"}, content=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/add", params={"name": "x"}, content=body, headers=wrong).status_code == 401
    assert client.post("/query", content=body).status_code == 200  # reads stay open
    assert client.get("/stats").json()["entries"] == 0


def test_limits_and_bad_input_get_one_line_errors(client, photos):
    noise = np.random.default_rng(0).integers(0, 256, (900, 900, 3), dtype=np.uint8)
    big = png_bytes(Image.fromarray(noise))  # incompressible: > 2 MB
    assert len(big) > 2_000_000
    assert client.post("/query", content=big).status_code == 413
    many_pixels = png_bytes(Image.new("RGB", (1200, 1000)))  # small file, 1.2 M pixels
    r = client.post("/query", content=many_pixels)
    assert r.status_code == 422 and "pixels" in r.json()["detail"]
    r = client.post("/query", content=b"not an image at all")
    assert r.status_code == 422 and "\n" not in r.json()["detail"]
    assert client.post("/query", content=b"").status_code == 422
    assert (
        client.post("/query", content=jpeg_bytes(photos["coffee"]), params={"k": 0}).status_code
        == 422
    )
    r = client.post("/add", params={"name": "bad"}, content=b"GIF89a broken", headers=AUTH)
    assert r.status_code == 422
    assert client.get("/stats").json()["entries"] == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_real_server_smoke(tmp_path, photos):
    """``dupbench serve`` as a process: add over HTTP, query, and see it on disk afterwards."""
    path = tmp_path / "ix"
    Index.create(path, "phash").close()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [sys.executable, "-m", "dupbench", "serve", str(path), "--port", str(port), "--token", "t"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.1)
        r = httpx.post(
            f"{base}/add",
            params={"name": "rocket"},
            content=jpeg_bytes(photos["rocket"]),
            headers={"Authorization": "Bearer t"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        r = httpx.post(f"{base}/query", content=jpeg_bytes(photos["rocket"], 40), timeout=30)
        assert [m["name"] for m in r.json()["matches"]] == ["rocket"]
    finally:
        server.terminate()
        server.wait(30)
    with Index.open(path) as index:
        assert [e["name"] for e in index.entries()] == ["rocket"]
