"""The server's limits and batching knobs: the options of ``nmt serve``, with their defaults.

Every bound is on something a client controls (body size, sentences, characters, beam width)
or on what the server holds for them (queued sentences, time), so that no request can make
the server spend unbounded memory or time. The defaults are the documented ones
(README, "Serving"); :meth:`ServeSettings.check` holds them to their rules.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, fields

from nmt.errors import ConfigError

__all__ = ["LOOPBACK", "ServeSettings"]

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ServeSettings:
    """What ``nmt serve`` is told; each field is the option ``--field-with-dashes``.

    Attributes:
        host, port: where to listen (loopback by default: nothing else can reach it).
        api_key: when set, every request but the exempt ones (see :mod:`nmt.serve.auth`)
            must carry it.
        max_body_bytes: a larger request body is refused (413) before it is read whole.
        max_sentences: sentences (lines of LibreTranslate texts) per request (413).
        max_chars: characters per sentence (413).
        max_batch: sentences decoded together in one batch.
        workers: batches decoded at once (see :class:`nmt.serve.batcher.Batcher`); 0: as
            ``nmt translate`` decodes a long input, one per intra-op thread on a CPU (each on
            one thread), one on a GPU.
        max_wait_ms: how long a batch may wait for more requests after the previous batch,
            when that batch was larger (see :class:`nmt.serve.batcher.Batcher`).
        continuous: plain greedy requests to a Transformer join and leave a batch that keeps
            decoding (continuous batching, :mod:`nmt.decoding.continuous`); off (the default:
            slower under load on a 2-core CPU, see the README): batch by batch, as every
            other request.
        max_queue: sentences waiting for the decoder; beyond it a request gets 503 with
            Retry-After.
        timeout: a request not answered in this many seconds (queue and decoding) gets 504.
        max_beam_size: the largest beam (and n-best list, LibreTranslate alternatives + 1) a
            request may ask for.
    """

    host: str = LOOPBACK
    port: int = 5000
    api_key: str | None = None
    max_body_bytes: int = 1 << 20
    max_sentences: int = 128
    max_chars: int = 1000
    max_batch: int = 64
    workers: int = 0
    max_wait_ms: float = 5.0
    continuous: bool = False
    max_queue: int = 1024
    timeout: float = 30.0
    max_beam_size: int = 16

    def check(self) -> ServeSettings:
        """The settings themselves, once every value can work.

        Raises:
            ConfigError: naming the option (``--max-batch``) whose value cannot work.
        """
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{_flag(field.name)}: must be a finite number, got {value}")
        rules = [
            (0 <= self.port <= 65535, "port", "must be between 0 and 65535"),
            (self.api_key is None or bool(self.api_key.strip()), "api_key",
             "must not be empty (leave it out to serve without a key)"),
            (self.max_body_bytes >= 1024, "max_body_bytes", "must be >= 1024"),
            (self.max_sentences >= 1, "max_sentences", "must be >= 1"),
            (self.max_chars >= 1, "max_chars", "must be >= 1"),
            (self.max_batch >= 1, "max_batch", "must be >= 1"),
            (self.workers >= 0, "workers", "must be >= 0 (0 = one per core on a CPU)"),
            (self.max_wait_ms >= 0, "max_wait_ms", "must be >= 0 (0 = never wait)"),
            (self.max_queue >= self.max_sentences, "max_queue",
             f"must be >= --max-sentences ({self.max_sentences}), or no request fits"),
            (self.timeout > 0, "timeout", "must be > 0"),
            (self.max_beam_size >= 1, "max_beam_size", "must be >= 1"),
        ]  # fmt: skip
        for ok, name, why in rules:
            if not ok:
                raise ConfigError(f"{_flag(name)}: {why}")
        return self

    @property
    def loopback(self) -> bool:
        """Whether only this machine can connect (a loopback address or ``localhost``)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may resolve anywhere
            return False


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
