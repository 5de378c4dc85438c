"""Run the app: load the model, bind the socket, serve with uvicorn, exit 0 after SIGTERM.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections and waits for the requests in
flight, then the app's lifespan drains what is still queued; every request already received
is answered. uvicorn then raises the signal again with the handler it found, to end the
process "as the signal would"; ``nmt serve`` installs a handler for SIGTERM that does nothing
at that point, so a drained server ends with exit 0 (Ctrl-C still ends as an interrupt, 130).
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from nmt.errors import NmtError
from nmt.serve import require_serve_extra
from nmt.serve.settings import ServeSettings

__all__ = ["run_server"]

log = logging.getLogger(__name__)

_WARM_UP = {"zh": "你好。", "en": "Hello."}  # one sentence decoded before the port opens


def run_server(run_dir: str | Path, settings: ServeSettings, *, device: str = "auto",
               checkpoint: str | Path = "best", precision: str | None = None,
               defaults: Mapping[str, Any] | None = None) -> None:  # fmt: skip
    """Serve the run in ``run_dir`` until SIGTERM or Ctrl-C (see the module).

    Args:
        device, checkpoint, precision: as for :meth:`Translator.load`.
        defaults: ``decode.*`` options replacing the run's for every request.

    Raises:
        NmtError: the serve extra is missing, the port cannot be bound, or the run
            directory, a setting or a default option is invalid.
    """
    require_serve_extra()
    settings = settings.check()
    import uvicorn

    from nmt.serve.app import create_app
    from nmt.translate import Translator

    listener = _listen(settings.host, settings.port)  # a taken port fails before the model loads
    host, port = listener.getsockname()[:2]
    with contextlib.closing(listener):
        translator = Translator.load(run_dir, device=device, checkpoint=checkpoint,
                                     precision=precision)  # fmt: skip
        app = create_app(translator, settings, defaults)
        # The first call loads jieba's dictionary and builds the kernels: not the first client's.
        translator.translate([_WARM_UP.get(translator.config.data.src_lang, "Hello.")],
                             app.state.service.default_options)
        if not settings.loopback and settings.api_key is None:
            log.warning("listening on %s without --api-key: anyone who can reach port %d can use "
                        "this server", host, port)
        config = uvicorn.Config(
            app, host=str(host), port=int(port), lifespan="on", access_log=False, log_config=None,
            # long enough for a queued request to finish (each has its --timeout)
            timeout_graceful_shutdown=math.ceil(settings.timeout) + 5,
            server_header=False)
        server = uvicorn.Server(config)
        log.info("serving %s (%s -> %s) on http://%s:%d/", run_dir, translator.config.data.src_lang,
                 translator.config.data.tgt_lang, host, port)
        with _sigterm_ends_normally():
            server.run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket (uvicorn listens on it); one line when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on connections whose
    # socket says TCP, and they inherit the listener's. Without it a response's second write
    # waited for the client's delayed ACK: 40 ms on every keep-alive request after the first
    # (GET /health 44 ms instead of 1-2 ms).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as e:
        listener.close()
        raise NmtError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return listener


@contextlib.contextmanager
def _sigterm_ends_normally() -> Iterator[None]:
    """While uvicorn serves it handles SIGTERM; the handler it restores and calls after the
    drain is this one, which has nothing left to do."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def drained(signum: int, frame: FrameType | None) -> None:
        log.info("drained; exiting")

    previous = signal.signal(signal.SIGTERM, drained)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
