"""The HTTP face of an ``Index`` (``dupbench serve``): FastAPI, JSON out, image bytes in.

    POST /query?threshold=T&k=K   body: one image's bytes -> {"matches": [{id, name, score}]}
    POST /add?name=NAME           body: one image's bytes -> {"id", "name", "added"}
    GET  /health                  liveness
    GET  /stats                   the index's ``info()`` and the requests served
    GET  /docs, /openapi.json     FastAPI's interactive docs and schema

Bodies are raw bytes (no multipart parser to install) read with a size cap before anything is
decoded, and decoding refuses images over ``max_pixels`` from their header (``images.load``).
Writes need ``Authorization: Bearer TOKEN`` when a token is set. Requests are served by a
thread pool: queries run concurrently, adds one at a time (the ``Index``'s writer lock).
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, and
# ``Request`` etc. are imported inside ``create_app`` (lazily), where only evaluated ones resolve
import hmac
import threading
from collections import Counter
from typing import Any

from dupbench.errors import DupbenchError, MissingExtraError, UsageError
from dupbench.index.index import Index

#: default cap on a request body: a large phone photo, not a video
MAX_BYTES = 32 << 20
#: default cap on decoded pixels (~ a 50-megapixel camera)
MAX_PIXELS = 50_000_000


def _fastapi():
    try:
        import fastapi
    except ImportError as e:
        raise MissingExtraError(
            "dupbench serve needs FastAPI and uvicorn: pip install 'dupbench[service]'"
        ) from e
    return fastapi


def create_app(
    index: Index,
    *,
    token: str | None = None,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
):
    """A FastAPI app serving ``index`` (which the caller opens and closes)."""
    fastapi = _fastapi()
    from fastapi import Header, HTTPException, Query, Request
    from starlette.concurrency import run_in_threadpool

    app = fastapi.FastAPI(
        title="dupbench index",
        description="Have we seen this image before? Near-duplicate lookup "
        f"with {index.method.name} codes.",
    )
    served: Counter[str] = Counter()
    served_lock = threading.Lock()

    def count(what: str) -> None:
        with served_lock:
            served[what] += 1

    async def body(request: Request) -> bytes:
        """The request body, refused (413) as soon as it exceeds ``max_bytes``."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise HTTPException(413, f"request body over {max_bytes} bytes")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > max_bytes:
                raise HTTPException(413, f"request body over {max_bytes} bytes")
        if not data:
            raise HTTPException(422, "empty body: send the image's bytes")
        return bytes(data)

    def authorise(authorization: str | None) -> None:
        if token is None:
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401,
                "a valid 'Authorization: Bearer TOKEN' is needed to write",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def in_thread(fn, *args, **kwargs) -> Any:
        """Run index work in the thread pool; user-facing errors become 422 with one line."""
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except DupbenchError as e:
            raise HTTPException(422, str(e)) from None

    @app.post("/query", summary="Find the indexed images similar to one image")
    async def query(
        request: Request, threshold: float | None = Query(None), k: int | None = Query(None, ge=1)
    ) -> dict:
        data = await body(request)
        matches = await in_thread(index.query, data, threshold, k, max_pixels=max_pixels)
        count("query")
        return {"matches": [m.__dict__ for m in matches]}

    @app.post("/add", summary="Add one image under a name (replaces that name's other image)")
    async def add(
        request: Request,
        name: str = Query(..., min_length=1, max_length=4096),
        authorization: str | None = Header(None),
    ) -> dict:
        authorise(authorization)
        data = await body(request)
        done = await in_thread(index.add_bytes, data, name, max_pixels=max_pixels)
        if done.skipped:
            raise HTTPException(422, f"cannot use {name}: {done.skipped[0].reason}")
        count("add")
        if done.added:
            return {"id": done.added[0][0], "name": name, "added": True}
        entry = index.lookup(name)
        if entry is None:  # removed by another request meanwhile
            raise HTTPException(409, f"{name} was removed while it was being added")
        return {"id": entry["id"], "name": name, "added": False}

    @app.get("/health", summary="Liveness")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/stats", summary="The index and the requests served")
    def stats() -> dict:
        with served_lock:
            counts = dict(served)
        return {**index.info(), "served": counts}

    return app


def serve(index: Index, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Serve ``index`` with uvicorn until interrupted."""
    app = create_app(index, **options)
    try:
        import uvicorn
    except ImportError as e:
        raise MissingExtraError(
            "dupbench serve needs uvicorn: pip install 'dupbench[service]'"
        ) from e
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {port}")
    uvicorn.run(app, host=host, port=port, log_level="warning")
