"""The ASGI app: routes, middleware and lifespan assembled over one translation service.

::

    GET  /              the web page (static/)            POST /v1/translate  native API
    GET  /health        {"status": "ok"}                  POST /translate     LibreTranslate
    GET  /metrics       Prometheus text format            GET  /languages     LibreTranslate
                                                          POST /detect        LibreTranslate

The lifespan starts the batcher and, at shutdown (after uvicorn has stopped accepting and the
requests in flight are answered), drains what is still queued. Every error is JSON
(:class:`~nmt.serve.protocol.ApiError`; LibreTranslate's routes answer ``{"error": ...}``
alone), never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nmt import perf
from nmt.serve import libretranslate, native
from nmt.serve.auth import ApiKeyMiddleware
from nmt.serve.metrics import CONTENT_TYPE, MetricsMiddleware
from nmt.serve.page import PageFiles
from nmt.serve.protocol import ApiError
from nmt.serve.service import TranslationService
from nmt.serve.settings import ServeSettings
from nmt.translate import Translator

__all__ = ["create_app"]

log = logging.getLogger(__name__)

LIBRETRANSLATE_PATHS = ("/translate", "/languages", "/detect")
BODY_KEY_PATHS = ("/translate", "/detect")  # where LibreTranslate's api_key field counts


def create_app(translator: Translator, settings: ServeSettings | None = None,
               defaults: Mapping[str, Any] | None = None) -> Starlette:  # fmt: skip
    """The app serving ``translator`` (its model in memory once).

    Args:
        settings: limits, batching and the API key (checked here); default ServeSettings().
        defaults: ``decode.*`` options replacing the run's for every request.

    Raises:
        ConfigError: a setting or a default option cannot work.
    """
    settings = (settings or ServeSettings()).check()
    service = TranslationService(translator, settings, defaults)
    page = PageFiles()
    routes = [
        Route("/", page.index, methods=["GET"]),
        Route("/static/{name}", page.static, methods=["GET"]),
        Route("/health", _health, methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
        Route("/v1/translate", native.translate_route, methods=["POST"]),
        Route("/translate", libretranslate.translate_route, methods=["POST"]),
        Route("/languages", libretranslate.languages_route, methods=["GET"]),
        Route("/detect", libretranslate.detect_route, methods=["POST"]),
    ]
    endpoints = [route.path for route in routes if "{" not in route.path]
    endpoints += [f"/static/{name}" for name in ("index.html", "app.js", "style.css")]
    middleware = [Middleware(MetricsMiddleware, metrics=service.metrics, endpoints=endpoints)]
    if settings.api_key is not None:
        middleware.append(Middleware(ApiKeyMiddleware, key=settings.api_key,
                                     body_key_paths=BODY_KEY_PATHS))  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with perf.torch_threads(service.threads):  # restored when the app stops
            await service.batcher.start()
            try:
                yield
            finally:
                queued = service.batcher.queued
                if queued:
                    log.info("draining: %d queued sentences", queued)
                await service.batcher.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                                        Exception: _internal_error})  # fmt: skip
    app.state.service = service
    return app


async def _health(request: Request) -> JSONResponse:
    # During shutdown uvicorn no longer accepts connections: a probe sees that, not a body.
    return JSONResponse({"status": "ok"})


async def _metrics(request: Request) -> Response:
    service: TranslationService = request.app.state.service
    return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    with_field = request.url.path not in LIBRETRANSLATE_PATHS
    return JSONResponse(exc.content(with_field), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing's own refusals (404, 405) as JSON."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                        headers=exc.headers)  # fmt: skip


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug's answer: JSON, no traceback (Starlette re-raises, and uvicorn logs it)."""
    return JSONResponse({"error": "internal server error; see the server's log"},
                        status_code=500)  # fmt: skip
