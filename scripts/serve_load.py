"""Load generator for ``nmt serve``: N clients, each on its own keep-alive HTTP/1.1 connection,
sending one-sentence requests back to back until the total is reached.

For ``scripts/benchmark.py``::

    from serve_load import measure
    result = measure("http://127.0.0.1:5000", sentences, clients=64, requests=2000)
    result["sentences_per_s"], result["p50_ms"], result["p99_ms"]

Raw asyncio streams rather than an HTTP client library keep the client's own cost per request
small: on a 2-core machine the load generator competes with the server for the CPU. Loopback
only, and bounded: at most 1,024 clients and 1,000,000 requests, and it stops at
``time_limit`` seconds whatever is left. ``python scripts/serve_load.py --help`` runs it from
the shell and prints the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_CLIENTS = 1024
MAX_REQUESTS = 1_000_000


def measure(url: str, sentences: Sequence[str], clients: int, requests: int, *,
            options: dict[str, Any] | None = None, api_key: str | None = None,
            time_limit: float = 60.0, warmup: int = 0) -> dict[str, Any]:  # fmt: skip
    """Send ``requests`` one-sentence ``POST /v1/translate`` requests from ``clients``
    concurrent connections (sentence ``i % len(sentences)`` for request ``i``).

    Args:
        options: the requests' decoding options (e.g. ``{"strategy": "greedy"}``).
        api_key: sent as ``X-API-Key`` when given.
        time_limit: seconds after which the clients stop, answered or not.
        warmup: requests sent first (same clients) and left out of the figures.

    Returns:
        ``clients``, ``requests`` (answered within the time), ``errors`` (answers other than
        200, or connections lost), ``unfinished`` (in flight at the time limit), ``seconds``,
        ``sentences_per_s`` (answered with 200), ``requests_per_s`` and the latencies
        ``mean_ms``, ``p50_ms``, ``p90_ms``, ``p99_ms``.
    """
    host, port, path = _loopback_target(url)
    if not sentences:
        raise ValueError("no sentences to send")
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients: expected 1 to {MAX_CLIENTS}, got {clients}")
    if not 1 <= requests + warmup <= MAX_REQUESTS:
        raise ValueError(f"requests: expected 1 to {MAX_REQUESTS} in all, got {requests + warmup}")
    bodies = [json.dumps({"sentences": [s], **({"options": options} if options else {})},
                         ensure_ascii=False).encode("utf-8") for s in sentences]  # fmt: skip
    headers = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "Content-Type: application/json\r\n"
               + (f"X-API-Key: {api_key}\r\n" if api_key else ""))
    if warmup:
        asyncio.run(_run(host, port, headers, bodies, clients, warmup, time_limit))
    return asyncio.run(_run(host, port, headers, bodies, clients, requests, time_limit))


async def _run(host: str, port: int, headers: str, bodies: list[bytes], clients: int,
               requests: int, time_limit: float) -> dict[str, Any]:  # fmt: skip
    latencies: list[float] = []
    errors = [0]
    unfinished = [0]  # still in flight at the time limit
    next_request = [0]
    started = time.perf_counter()
    deadline = started + time_limit

    async def client() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while next_request[0] < requests and time.perf_counter() < deadline:
            index = next_request[0]
            next_request[0] += 1
            body = bodies[index % len(bodies)]
            message = f"{headers}Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body
            sent = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                reader, writer = connection
                writer.write(message)
                await writer.drain()
                remaining = max(0.001, deadline - time.perf_counter())
                status, keep_alive = await asyncio.wait_for(_read_response(reader), remaining)
            except TimeoutError:  # the time limit: in flight, not failed
                unfinished[0] += 1
                break
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors[0] += 1
                connection = _close(connection)
                continue
            latencies.append(time.perf_counter() - sent)
            if status != 200:
                errors[0] += 1
            if not keep_alive:
                connection = _close(connection)
        _close(connection)

    await asyncio.gather(*(client() for _ in range(min(clients, requests))))
    seconds = time.perf_counter() - started
    answered = len(latencies)
    ordered = sorted(latencies)
    return {
        "clients": clients, "requests": answered, "errors": errors[0],
        "unfinished": unfinished[0],
        "seconds": round(seconds, 3),
        "sentences_per_s": round((answered - errors[0]) / seconds, 2) if seconds else 0.0,
        "requests_per_s": round(answered / seconds, 2) if seconds else 0.0,
        "mean_ms": round(1000 * sum(ordered) / answered, 2) if answered else None,
        "p50_ms": percentile_ms(ordered, 50), "p90_ms": percentile_ms(ordered, 90),
        "p99_ms": percentile_ms(ordered, 99),
    }  # fmt: skip


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status of one response and whether the connection stays open (its body is read
    and dropped)."""
    status_line = await reader.readuntil(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP response: {status_line[:40]!r}")
    status = int(parts[1])
    length, keep_alive = 0, True
    while True:
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
        elif name == b"transfer-encoding":
            raise ValueError("chunked responses are not read here")
    await reader.readexactly(length)
    return status, keep_alive


def _close(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if connection is not None:
        connection[1].close()
    return None


def percentile_ms(ordered: list[float], percent: float) -> float | None:
    """The nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return round(1000 * ordered[rank - 1], 2)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _loopback_target(url: str) -> tuple[str, int, str]:
    """Host, port and the /v1/translate path of ``url``, which must name this machine."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url}: expected http://HOST:PORT")
    host = parts.hostname
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"{url}: the load generator only sends to this machine "
                             "(127.0.0.1, ::1 or localhost)")
    return host, parts.port or 80, parts.path.rstrip("/") + "/v1/translate"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--sentences", type=Path, help="one sentence per line (default: a few "
                        "built-in Chinese sentences)")
    parser.add_argument("--strategy", help="decoding strategy of the requests")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--warmup", type=int, default=0)
    args = parser.parse_args(argv)
    sentences = (args.sentences.read_text(encoding="utf-8").splitlines() if args.sentences
                 else ["我喜欢茶。", "汤姆在哪里？", "他很高兴。", "我们明天去北京。"])
    options = {"strategy": args.strategy} if args.strategy else None
    result = measure(args.url, [s for s in sentences if s.strip()], args.clients,
                     args.requests, options=options, time_limit=args.time_limit,
                     warmup=args.warmup)  # fmt: skip
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
