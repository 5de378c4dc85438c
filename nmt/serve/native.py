"""The native API, ``POST /v1/translate``: everything ``nmt translate`` does, as JSON.

Request (only ``sentences`` is required)::

    {"sentences": ["我喜欢茶。", "汤姆在哪里？"],
     "options": {"strategy": "beam", "beam_size": 5, "n_best": 3},   # decode.* keys
     "prefixes": ["I", null],        # per sentence: the translation starts with it
     "attention": true,              # the attention matrix and its token labels
     "seed": 7,                      # sampling: decoded alone, so the seed reproduces
     "source": "zh", "target": "en"} # checked against the model (LibreTranslate's codes)

``options`` are the decoding options of ``nmt translate`` (``strategy``, ``beam_size``,
``n_best``, ``length_penalty``, ``temperature``, ``top_k``, ``top_p``, ``no_repeat_ngram_size``,
``repetition_penalty``, ``min_length``, ``banned_words``, ``replace_unk``), checked with its
messages; ``batch_size``, ``max_len_a`` and ``max_len_b`` belong to the server.

Response: ``{"translations": [...]}``, one object per sentence in order: the fields of
``nmt translate --format jsonl`` (``source``, ``translation``, ``score``, ``norm_score``,
``nbest``, ``src_tokens``, ``tokens``, ``truncated`` when cut) and, with ``attention``,
``"attention": {"source_tokens", "target_tokens", "weights"}`` where ``weights`` has one row
per target token and one column per source token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from nmt.datautil.zh_script import OutputScript
from nmt.serve.libretranslate import direction, resolve
from nmt.serve.protocol import ApiError, parse_json, read_body
from nmt.serve.service import DecodeRequest, TranslationService

__all__ = ["FIELDS", "TranslateRequest", "parse_request", "translate_route"]

FIELDS = ("sentences", "options", "prefixes", "attention", "seed", "source", "target")


@dataclass(frozen=True)
class TranslateRequest:
    """A checked ``/v1/translate`` request."""

    sentences: list[str]
    prefixes: list[str | None] | None
    decode: DecodeRequest
    script: OutputScript | None  # the output script a Chinese ``target`` code asks for


def parse_request(data: Any, service: TranslationService) -> TranslateRequest:
    """Check a request's JSON against the schema and the limits.

    Raises:
        ApiError: 400 naming the field (a wrong type, an unknown field, a bad option), 413
            for more sentences or longer ones than the server takes.
    """
    if not isinstance(data, dict):
        raise ApiError(400, 'expected a JSON object such as {"sentences": ["..."]}')
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r}; expected {', '.join(FIELDS)}",
                       unknown[0])
    sentences = _texts(data.get("sentences"), "sentences", service, required=True)
    prefixes = _texts(data.get("prefixes"), "prefixes", service, nullable=True)
    if prefixes is not None and len(prefixes) != len(sentences):
        raise ApiError(400, f"prefixes: {len(prefixes)} given for {len(sentences)} sentences",
                       "prefixes")
    attention = data.get("attention", False)
    if not isinstance(attention, bool):
        raise ApiError(400, f"attention: expected true or false, got {_json_type(attention)}",
                       "attention")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ApiError(400, f"seed: expected an integer, got {_json_type(seed)}", "seed")
    options = data.get("options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "options: expected an object of decoding options", "options")
    script = None
    if data.get("source") is not None or data.get("target") is not None:
        source = resolve(data.get("source", service.source_lang), "source")
        target = resolve(data.get("target", service.target_lang), "target")
        direction(service, source, target)
        script = target.script if target.lang == "zh" else None
    decode = DecodeRequest(service.options(options), attention, seed)
    return TranslateRequest(sentences, prefixes, decode, script)


async def translate_route(request: Request) -> JSONResponse:
    service: TranslationService = request.app.state.service
    data = parse_json(await read_body(request, service.settings.max_body_bytes))
    parsed = parse_request(data, service)
    results = await service.translate(parsed.sentences, parsed.decode, endpoint="/v1/translate",
                                      prefixes=parsed.prefixes, script=parsed.script)
    return JSONResponse({"translations": results})


def _texts(value: Any, name: str, service: TranslationService, *, required: bool = False,
           nullable: bool = False) -> Any:  # fmt: skip
    """A list of strings (``null`` entries allowed if ``nullable``) within the limits."""
    if value is None and not required:
        return None
    if not isinstance(value, list):
        raise ApiError(400, f"{name}: expected a list of strings", name)
    limit = service.settings.max_sentences
    if len(value) > limit:
        raise ApiError(413, f"{name}: {len(value)} sentences; the limit is {limit} per request "
                       f"(split the request)", name)
    for i, text in enumerate(value):
        if text is None and nullable:
            continue
        if not isinstance(text, str):
            raise ApiError(400, f"{name}[{i}]: expected a string, got {_json_type(text)}",
                           f"{name}[{i}]")
        if len(text) > service.settings.max_chars:
            raise ApiError(413, f"{name}[{i}]: {len(text)} characters; the limit is "
                           f"{service.settings.max_chars} per sentence", f"{name}[{i}]")
    return value


def _json_type(value: Any) -> str:
    """What a JSON value is, for a message (never the value: it may be large)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else "null"
