"""What the server's tests share: a tiny run, a live server in a thread, a free port.

Importing this needs the serve extra: a test module importing it is skipped without it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytest.importorskip("uvicorn", reason="nmt serve's tests need the serve extra: "
                    "pip install 'nmt[serve]'")

import uvicorn  # noqa: E402
from conftest import load_script  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from test_translate import build_run  # noqa: E402

__all__ = ["build_run", "free_port", "live_server"]


free_port = load_script("serve_load").free_port  # the benchmark's load generator has it


@contextmanager
def live_server(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None,
                            access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)

