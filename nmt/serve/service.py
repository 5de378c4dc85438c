"""The translation service both APIs share: one Translator, its batcher, the option rules.

Requests decode together only when their :class:`DecodeRequest` is equal (the same decoding
options, attention or not, seed); what the worker thread returns is each sentence's JSON
(``Translation.to_dict``, as ``nmt translate --format jsonl`` writes it, plus the attention
matrix when asked), so the event loop only sends it. Errors leave here as
:class:`~nmt.serve.protocol.ApiError`: a bad option or prefix 400 (the message of
``nmt translate``), a full queue 503 with Retry-After, draining 503, a timeout 504, a failed
batch 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nmt import perf
from nmt.config import DecodeConfig
from nmt.datautil.zh_script import OutputScript
from nmt.errors import ConfigError, NmtError
from nmt.serve.batcher import Batcher, QueueFull, RequestTimeout, ShuttingDown, Stream
from nmt.serve.metrics import ServeMetrics
from nmt.serve.protocol import ApiError
from nmt.serve.settings import ServeSettings
from nmt.translate import Translation, Translator
from nmt.translate.streaming import StreamingGreedy

__all__ = ["SERVER_OPTIONS", "DecodeRequest", "TranslationService"]

log = logging.getLogger(__name__)

# decode.* keys a request may not set: they bound the work a request costs, and `nmt serve`
# sets them for everyone (as --batch-size, --max-len-a, --max-len-b).
SERVER_OPTIONS = ("batch_size", "max_len_a", "max_len_b")
_KEY_IN_MESSAGE = re.compile(r"decode\.(\w+)")
_PREFIX_LINE = re.compile(r"^line (\d+): the prefix")
_CACHED_OPTIONS = 256  # distinct option sets whose validated DecodeConfig is kept


@dataclass(frozen=True)
class DecodeRequest:
    """What a batch shares: requests with equal ones may be decoded together."""

    options: DecodeConfig
    attention: bool = False
    seed: int | None = None  # seeded sampling decodes alone: its samples depend on the batch


class TranslationService:
    """The Translator behind the routes, with its batcher and metrics.

    Attributes:
        threads: intra-op threads the decoders run on, set while the app runs (``0``: as
            they are); see :func:`nmt.perf.serve_decoders`.

    Args:
        defaults: ``decode.*`` options that replace the run's for every request (those
            of ``nmt serve``'s command line); requests set theirs on top.

    Raises:
        ConfigError: a default option is invalid (the message of ``nmt translate``).
    """

    def __init__(self, translator: Translator, settings: ServeSettings,
                 defaults: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        self.translator = translator
        self.settings = settings
        self.source_lang = translator.config.data.src_lang
        self.target_lang = translator.config.data.tgt_lang
        self._defaults = {k: v for k, v in (defaults or {}).items() if v is not None}
        self.default_options = translator.decode_config(self._defaults)
        self._options: dict[Hashable, DecodeConfig] = {}
        workers, self.threads = perf.serve_decoders(translator.device, settings.workers)
        self.batcher: Batcher[DecodeRequest, dict[str, Any]] = Batcher(
            self._decode, max_batch=settings.max_batch, max_wait=settings.max_wait_ms / 1000,
            max_queue=settings.max_queue, on_batch=self._observe_batch,
            workers=workers, stream=self._stream if settings.continuous else None)
        self.metrics = ServeMetrics(lambda: self.batcher.queued)

    # ------------------------------------------------------------------ options

    def options(self, given: Mapping[str, Any] | None, field: str = "options") -> DecodeConfig:
        """The decoding options of a request: the server's defaults with ``given`` on top,
        checked by the config's rules (validated once per distinct option set).

        Raises:
            ApiError: 400 naming ``field.KEY``: an unknown or invalid option, one the server
                sets itself, or a beam wider than ``--max-beam-size``.
        """
        if not given:
            return self.default_options
        for key in SERVER_OPTIONS:
            if key in given:
                raise ApiError(400, f"{field}.{key}: set by the server (nmt serve "
                               f"--{key.replace('_', '-')}), not per request", f"{field}.{key}")
        cache_key = _frozen(given)
        cached = self._options.get(cache_key) if cache_key is not None else None
        if cached is not None:
            return cached
        try:
            decode = self.translator.decode_config({**self._defaults, **given})
        except ConfigError as e:
            match = _KEY_IN_MESSAGE.search(str(e))
            raise ApiError(400, str(e), f"{field}.{match[1]}" if match else field) from None
        limit = self.settings.max_beam_size
        if decode.strategy == "beam" and decode.beam_size > limit:
            raise ApiError(400, f"invalid decoding option: decode.beam_size: at most {limit} on "
                           f"this server (nmt serve --max-beam-size)", f"{field}.beam_size")
        if cache_key is not None:
            if len(self._options) >= _CACHED_OPTIONS:
                self._options.clear()
            self._options[cache_key] = decode
        return decode

    # ------------------------------------------------------------------ translating

    async def translate(self, sentences: list[str], request: DecodeRequest, *, endpoint: str,
                        prefixes: Sequence[str | None] | None = None,
                        script: OutputScript | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Each sentence's JSON (see the module), decoded in a batch with other requests;
        with ``script``, Chinese output in that script (as ``nmt translate --zh-script``)."""
        if not sentences:
            return []
        try:
            results = await self.batcher.submit(
                request, sentences, prefixes, alone=request.seed is not None,
                timeout=self.settings.timeout)
        except QueueFull as e:
            raise ApiError(503, str(e), headers={"Retry-After": str(e.retry_after)}) from None
        except ShuttingDown as e:
            raise ApiError(503, f"{e}; retry on another server",
                           headers={"Retry-After": "1"}) from None
        except RequestTimeout as e:
            raise ApiError(504, str(e)) from None
        except NmtError as e:  # a prefix longer than the model outputs (decoded alone)
            raise ApiError(400, str(e), _prefix_field(str(e))) from None
        except Exception as e:
            log.error("translation failed: %s: %s", type(e).__name__, e, exc_info=e)
            raise ApiError(500, f"translation failed ({type(e).__name__}); see the server's "
                           f"log") from None
        self.metrics.sentences.labels(endpoint).inc(len(sentences))
        if script is not None:
            results = [self._in_script(r, script) for r in results]
        return results

    def _decode(self, request: DecodeRequest, sentences: list[str],
                prefixes: list[str | None] | None) -> list[dict[str, Any]]:  # fmt: skip
        """One batch, in the worker thread: translate, then each sentence as JSON."""
        # The batch is decoded whole, not cut into one batch per thread as the Translator does
        # with a long sorted input: the server's batches already run side by side, one per
        # decoder (perf.serve_decoders), and a cut batch waits for its slower half.
        options = request.options
        results = self.translator.translate(
            sentences, options, prefixes=prefixes, seed=request.seed, return_details=True,
            with_attention=request.attention)
        return [self._json(r, request.attention) for r in results]

    def _stream(self, request: DecodeRequest) -> Stream[dict[str, Any]] | None:
        """Continuous batching for the requests it can serve: plain greedy search of a
        Transformer, without attention (see :meth:`Translator.stream`)."""
        if request.attention or request.seed is not None:
            return None
        session = self.translator.stream(request.options)
        return None if session is None else _JsonStream(session, self._json)

    def _json(self, result: Translation, attention: bool) -> dict[str, Any]:
        out = result.to_dict()
        if attention:
            source, target = self.translator.attention_labels(result)
            weights = [] if result.attention is None else [
                [round(float(w), 4) for w in row] for row in result.attention.tolist()]
            out["attention"] = {"source_tokens": source, "target_tokens": target,
                                "weights": weights}  # fmt: skip
        return out

    def _in_script(self, result: dict[str, Any], script: OutputScript) -> dict[str, Any]:
        convert = self.translator.processor.convert_tgt_script
        nbest = [{**e, "translation": convert(e["translation"], script)} for e in result["nbest"]]
        return {**result, "translation": convert(result["translation"], script), "nbest": nbest}

    def _observe_batch(self, sentences: int, seconds: float) -> None:
        self.metrics.observe_batch(sentences, seconds)


class _JsonStream:
    """A :class:`~nmt.translate.streaming.StreamingGreedy` whose results are the JSON of each
    translation (what :meth:`TranslationService._decode` returns for a batch)."""

    def __init__(self, session: StreamingGreedy,
                 to_json: Callable[[Translation, bool], dict[str, Any]]) -> None:  # fmt: skip
        self._session, self._to_json = session, to_json

    @property
    def live(self) -> int:
        return self._session.live

    def add(self, sentences: list[str], tickets: list[Hashable]
            ) -> list[tuple[Hashable, dict[str, Any]]]:  # fmt: skip
        return [(t, self._to_json(r, False)) for t, r in self._session.add(sentences, tickets)]

    def step(self) -> list[tuple[Hashable, dict[str, Any]]]:
        return [(t, self._to_json(r, False)) for t, r in self._session.step()]


def _frozen(options: Mapping[str, Any]) -> Hashable | None:
    """A hashable copy of a request's options (lists as tuples); None if it has none."""
    items = []
    for key, value in options.items():
        if isinstance(value, list):
            value = tuple(value)
        try:
            hash(value)
        except TypeError:
            return None
        items.append((key, type(value).__name__, value))  # 1 and 1.0 and True stay apart
    return tuple(sorted(items, key=lambda item: item[0]))


def _prefix_field(message: str) -> str | None:
    """``prefixes[i]`` for the Translator's "line N: the prefix has ..." (a failed batch is
    decoded again one request at a time, so N counts this request's sentences)."""
    match = _PREFIX_LINE.match(message)
    return f"prefixes[{int(match[1]) - 1}]" if match else None
