"""``nmt serve``: the Translator behind an HTTP API, with a batching queue in front.

A thin ASGI app (Starlette under uvicorn) over one :class:`~nmt.translate.Translator`:

- ``app.py``: the routes, the lifespan (start and drain the batcher) and errors as data;
- ``batcher.py``: concurrent requests decoded together (batch by batch, or by continuous
  batching for plain greedy requests), worker threads, one model;
- ``service.py``: the Translator, its batcher and the option rules both APIs share;
- ``settings.py``: the limits and batching knobs (the options of ``nmt serve``);
- ``native.py``: ``POST /v1/translate`` (options, prefixes, n-best, attention);
- ``libretranslate.py``: LibreTranslate's ``/translate``, ``/languages`` and ``/detect``;
- ``auth.py``, ``metrics.py``, ``protocol.py``: the API key, Prometheus metrics, bounded
  request bodies and ``ApiError``;
- ``server.py``: load the model, bind the socket, run uvicorn, drain on SIGTERM;
- ``static/``: the web page at ``/`` (plain HTML, CSS and JavaScript).

Starlette, uvicorn and prometheus_client come with the ``serve`` extra; nothing here imports
them until :func:`require_serve_extra` has said which are missing.
"""

from __future__ import annotations

from nmt.errors import NmtError

__all__ = ["require_serve_extra"]

_EXTRA = ("starlette", "uvicorn", "prometheus_client")


def require_serve_extra() -> None:
    """Import the serve extra's packages, or say in one line how to install them.

    Raises:
        NmtError: one of starlette, uvicorn or prometheus_client cannot be imported.
    """
    import importlib

    missing = []
    for name in _EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise NmtError(f"nmt serve needs {', '.join(missing)}: pip install 'nmt[serve]'")
