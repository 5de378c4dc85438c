"""What every route shares: :class:`ApiError` (an HTTP status and a JSON error), bounded bodies.

Nothing a client sends reaches a traceback: every refusal is an ``ApiError`` that the app
turns into ``{"error": message, "field": name}`` with its status (LibreTranslate's routes
answer ``{"error": message}`` alone, as LibreTranslate does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

__all__ = ["ApiError", "parse_json", "read_body"]


class ApiError(Exception):
    """A request the server refuses or could not answer: status, one-line message, the field.

    Attributes:
        status: the HTTP status (400 bad request, 403 key, 413 too large, 503 full, ...).
        message: what is wrong and, where it can, what to do.
        field: the request field at fault (``sentences[2]``, ``options.beam_size``), if any.
        headers: extra response headers (``Retry-After``).
    """

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def content(self, with_field: bool = True) -> dict[str, Any]:
        """The JSON body of the error response."""
        if with_field and self.field is not None:
            return {"error": self.message, "field": self.field}
        return {"error": self.message}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes:
    from ``Content-Length`` before reading, or while a chunked body streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"invalid Content-Length {declared!r}") from None
        if size > limit:
            raise ApiError(413, f"request body of {size} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise ApiError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The JSON value of a body (UTF-8), or a 400 saying where it is malformed."""
    if not body.strip():
        raise ApiError(400, "empty request body: expected a JSON object")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise ApiError(400, "invalid JSON: the body is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise ApiError(400, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
