"""SIGINT/SIGTERM during training: finish the current step, save, then stop.

The handler only records the signal; the training loop looks at it between steps (and between
validation batches), so a checkpoint is never written from inside a signal handler. A second
signal means "stop now": it raises KeyboardInterrupt, which is still safe because every
checkpoint write is atomic.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager that turns SIGINT/SIGTERM into a flag (``signum``) while active."""

    def __init__(self, repeat_window_s: float = 0.0) -> None:
        """``repeat_window_s``: a repeat within this many seconds of the first signal is taken
        for the same request. Under torchrun a Ctrl-C reaches each worker twice, from the
        terminal and forwarded by torchrun, and must not count as "stop now"."""
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._window = repeat_window_s
        self._first = 0.0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum, self._first = signum, time.monotonic()
        elif time.monotonic() - self._first >= self._window:
            raise KeyboardInterrupt

    def __enter__(self) -> StopSignals:
        # Handlers can only be installed from the main thread (not e.g. in a worker thread).
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def exit_code(signum: int) -> int:
    """The shell convention for a process ended by a signal: 128 + its number (130, 143)."""
    return 128 + signum
