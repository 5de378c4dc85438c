"""`nmt serve`: the model behind an HTTP API (native and LibreTranslate) and a web page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nmt.cli.common import app, reports_errors
from nmt.cli.decoding import decoding_options
from nmt.serve.settings import ServeSettings  # a leaf: dataclasses and nmt.errors only

_DECODING = "Decoding defaults for every request (default: the run's config.yaml)"
_LIMITS = "Limits and batching"
_DEFAULT = ServeSettings()


@app.command()
@reports_errors
@decoding_options(_DECODING)
def serve(
    model: Annotated[
        Path,
        typer.Option("--model", "-m", help="Run directory of 'nmt train' (config.yaml, vocab/, "
                     "checkpoints/)."),
    ],
    host: Annotated[
        str, typer.Option(help="Address to listen on; the loopback default lets only this "
                          "machine connect (0.0.0.0: every interface; set --api-key then).")
    ] = _DEFAULT.host,
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = _DEFAULT.port,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="NMT_API_KEY", show_envvar=True,
                     help="Require this key on every request (Authorization: Bearer KEY, "
                     "X-API-Key, or LibreTranslate's api_key); the environment variable keeps "
                     "it out of the process list."),
    ] = None,
    checkpoint: Annotated[
        str,
        typer.Option(help="best (falls back to latest), latest, averaged, a checkpoint name in "
                     "RUN_DIR/checkpoints, or a checkpoint directory; a,b[,c]: an ensemble."),
    ] = "best",
    device: Annotated[
        str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
    ] = "auto",
    precision: Annotated[
        str | None,
        typer.Option(help="auto, fp32, bf16, fp16 (GPU) or int8 (x86 CPU) arithmetic "
                     "(default: the run's train.precision)."),
    ] = None,
    max_batch: Annotated[
        int, typer.Option(help="Sentences decoded together in one batch.",
                          rich_help_panel=_LIMITS)
    ] = _DEFAULT.max_batch,
    workers: Annotated[
        int, typer.Option(help="Batches decoded at once, each on its own thread (0: one per "
                          "core on a CPU, one on a GPU).", rich_help_panel=_LIMITS)
    ] = _DEFAULT.workers,
    max_wait_ms: Annotated[
        float, typer.Option(help="After a batch, wait at most this long for its clients' next "
                            "requests (never when the decoder is idle).",
                            rich_help_panel=_LIMITS)
    ] = _DEFAULT.max_wait_ms,
    continuous: Annotated[
        bool, typer.Option(help="Plain greedy requests to a Transformer join and leave a "
                           "batch that keeps decoding (continuous batching; off: batch by "
                           "batch, faster under load on a small CPU).",
                           rich_help_panel=_LIMITS)
    ] = _DEFAULT.continuous,
    max_queue: Annotated[
        int, typer.Option(help="Sentences that may wait; beyond, 503 with Retry-After.",
                          rich_help_panel=_LIMITS)
    ] = _DEFAULT.max_queue,
    timeout: Annotated[
        float, typer.Option(help="Seconds a request may take, queue included (else 504).",
                            rich_help_panel=_LIMITS)
    ] = _DEFAULT.timeout,
    max_sentences: Annotated[
        int, typer.Option(help="Sentences (lines) per request (else 413).",
                          rich_help_panel=_LIMITS)
    ] = _DEFAULT.max_sentences,
    max_chars: Annotated[
        int, typer.Option(help="Characters per sentence (else 413).", rich_help_panel=_LIMITS)
    ] = _DEFAULT.max_chars,
    max_body_bytes: Annotated[
        int, typer.Option(help="Bytes per request body (else 413).", rich_help_panel=_LIMITS)
    ] = _DEFAULT.max_body_bytes,
    max_beam_size: Annotated[
        int, typer.Option(help="Widest beam (and n-best list) a request may ask for.",
                          rich_help_panel=_LIMITS)
    ] = _DEFAULT.max_beam_size,
    *,
    decode: dict[str, Any],
) -> None:
    """Serve a trained model over HTTP until SIGTERM (drains the queue, exit 0) or Ctrl-C.

    Endpoints: POST /v1/translate (options, prefixes, n-best, attention), LibreTranslate's
    POST /translate, GET /languages and POST /detect, GET /health, GET /metrics (Prometheus),
    and a web page at /. Concurrent requests are decoded together in batches.
    """
    from nmt.serve.server import run_server

    settings = ServeSettings(
        host=host, port=port, api_key=api_key, max_body_bytes=max_body_bytes,
        max_sentences=max_sentences, max_chars=max_chars, max_batch=max_batch,
        workers=workers, max_wait_ms=max_wait_ms, continuous=continuous, max_queue=max_queue,
        timeout=timeout, max_beam_size=max_beam_size)
    run_server(model, settings, device=device, checkpoint=checkpoint, precision=precision,
               defaults=decode)
