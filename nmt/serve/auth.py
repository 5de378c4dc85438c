"""The API key: with ``nmt serve --api-key KEY`` (or ``NMT_API_KEY``), requests carry it.

A request shows the key as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; on
LibreTranslate's ``POST /translate`` and ``POST /detect`` also as the body's ``api_key`` field,
where LibreTranslate's clients put it. Without it: 403 ``{"error": ...}``.

Exempt, so that they work before anyone has typed a key: ``GET /`` and ``GET /static/...``
(the web page, which asks for the key on a 403 and sends it with its API calls), ``GET
/health`` (liveness probes) and ``GET /languages`` (LibreTranslate asks no key there; it tells
only the direction). Everything else, ``/metrics`` included, needs the key.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from nmt.serve.protocol import ApiError

__all__ = ["EXEMPT_PATHS", "ApiKeyMiddleware", "check_body_key"]

EXEMPT_PATHS = frozenset({"/", "/health", "/languages"})
EXEMPT_PREFIX = "/static/"
_PENDING = "nmt.api_key_pending"  # ASGI scope key: the route reads the key from the body
MISSING = ("an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY' "
           "(or the api_key field of a LibreTranslate request)")
INVALID = "Invalid API key"  # LibreTranslate's message


class ApiKeyMiddleware:
    """Refuses (403) every request without the key, except the exempt ones; on the
    ``body_key_paths`` a request without a key header is let through for the route to
    check the body's ``api_key`` (:func:`check_body_key`)."""

    def __init__(self, app: ASGIApp, key: str, body_key_paths: Collection[str]) -> None:
        self.app = app
        self.key = key.encode("utf-8")
        self.body_key_paths = frozenset(body_key_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        given = _header_key(scope)
        if given is None and scope["path"] in self.body_key_paths:
            scope[_PENDING] = self.key
        elif given is None or not _matches(given, self.key):
            response = JSONResponse({"error": INVALID if given else MISSING}, status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _exempt(scope: Scope) -> bool:
        if scope["method"] not in ("GET", "HEAD"):
            return False
        path: str = scope["path"]
        return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIX)


def check_body_key(request: Request, api_key: object) -> None:
    """On a route that takes the key in its body: refuse (403) a request that showed no key
    header unless its ``api_key`` field is the key. A no-op when no key is set."""
    expected = request.scope.get(_PENDING)
    if expected is None:
        return
    if not isinstance(api_key, str) or not api_key:
        raise ApiError(403, MISSING)
    if not _matches(api_key.encode("utf-8"), expected):
        raise ApiError(403, INVALID)


def _header_key(scope: Scope) -> bytes | None:
    """The key of ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; None when neither."""
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip()
    return None


def _matches(given: bytes, key: bytes) -> bool:
    return hmac.compare_digest(given, key)  # in constant time: no timing oracle on the key
