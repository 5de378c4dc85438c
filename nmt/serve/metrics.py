"""Prometheus metrics of one app, in a registry of its own (two apps in a process, as in the
tests, never share counters), and the ASGI middleware that counts every request.

``GET /metrics`` serves them in Prometheus' text format:

- ``nmt_requests_total{endpoint, status}`` and ``nmt_request_seconds{endpoint}`` (a
  histogram of the time from the request to the end of its response);
- ``nmt_sentences_total{endpoint}``: sentences translated;
- ``nmt_batch_sentences`` and ``nmt_batch_seconds``: what each decoded batch held and took;
- ``nmt_queue_sentences``: sentences waiting for the decoder, read when scraped.

``endpoint`` is a route's path (an unknown path counts as ``other``), so a client cannot grow
the label set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE", "MetricsMiddleware", "ServeMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """The metrics of one app; ``queue_length`` is read from the batcher when scraped."""

    def __init__(self, queue_length: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("nmt_requests", "HTTP requests by endpoint and status.",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("nmt_request_seconds", "Time from request to response.",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.sentences = Counter("nmt_sentences", "Sentences translated.", ["endpoint"],
                                 registry=self.registry)
        self.batch_sentences = Histogram(
            "nmt_batch_sentences", "Sentences per decoded batch (continuous batching: per step).",
            buckets=_BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram(
            "nmt_batch_seconds", "Decoding time per batch (continuous batching: per step).",
            buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.queue = Gauge("nmt_queue_sentences", "Sentences waiting for the decoder.",
                           registry=self.registry)
        self.queue.set_function(queue_length)

    def observe_batch(self, sentences: int, seconds: float) -> None:
        self.batch_sentences.observe(sentences)
        self.batch_seconds.observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts each HTTP request by endpoint and status and times it (pure ASGI: no per-request
    task or body copy, unlike Starlette's BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, endpoints: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in self.endpoints else "other"
        started = time.perf_counter()
        status = 500  # an app that fails before it answers: uvicorn sends a 500

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
