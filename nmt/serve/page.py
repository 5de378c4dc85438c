"""The web page at ``/``: ``static/`` (package data), read once and served from memory.

Plain HTML, CSS and JavaScript with no build step; the Content-Security-Policy lets the page
load and call nothing but this server.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from nmt.serve.protocol import ApiError

__all__ = ["PageFiles"]

_MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}  # fmt: skip
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class PageFiles:
    """The files of ``nmt/serve/static``, by name."""

    def __init__(self) -> None:
        folder = resources.files("nmt.serve") / "static"
        self._files = {
            entry.name: entry.read_bytes() for entry in folder.iterdir()
            if entry.is_file() and any(entry.name.endswith(s) for s in _MEDIA_TYPES)
        }

    def response(self, name: str) -> Response:
        content = self._files.get(name)
        if content is None:
            raise ApiError(404, f"no such file: /static/{name}")
        media_type = next(t for s, t in _MEDIA_TYPES.items() if name.endswith(s))
        return Response(content, media_type=media_type, headers=_HEADERS)

    async def index(self, request: Request) -> Response:
        return self.response("index.html")

    async def static(self, request: Request) -> Response:
        return self.response(request.path_params["name"])
