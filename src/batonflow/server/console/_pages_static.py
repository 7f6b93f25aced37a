"""The console's CSS and JavaScript, shipped in the package (no build step)."""

from __future__ import annotations

from starlette.responses import Response

from batonflow.server.console import router
from batonflow.server.console._render import HERE

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".svg": "image/svg+xml"}  # fmt: skip
_FILES = {p.name: p for p in (HERE / "static").iterdir() if p.suffix in _TYPES}


@router.get("/static/{name}")
async def static(name: str) -> Response:
    path = _FILES.get(name)
    if path is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(
        path.read_bytes(), media_type=_TYPES[path.suffix],
        headers={"cache-control": "public, max-age=300"},
    )  # fmt: skip
