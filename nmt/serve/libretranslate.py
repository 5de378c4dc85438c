"""LibreTranslate's API over the same service, so that its clients work unchanged.

``POST /translate`` takes ``q`` (a string or a list of strings), ``source`` (a code or
``auto``), ``target``, ``format`` (``text``; ``html`` is refused), ``alternatives`` (n) and
``api_key``, as JSON or a form (``application/x-www-form-urlencoded``, query parameters too),
and answers ``{"translatedText": ..., "alternatives": ..., "detectedLanguage": ...}`` with
LibreTranslate's shapes: strings for a string ``q``, lists for a list; ``alternatives`` only
when asked for, ``detectedLanguage`` only for ``source: auto``. ``GET /languages`` lists
``[{"code", "name", "targets"}]``; ``POST /detect`` answers ``[{"confidence", "language"}]``.
Errors are ``{"error": message}`` with LibreTranslate's messages where it has one.

Language codes are those of a self-hosted LibreTranslate (``en``, ``zh``, and ``zt`` for
Traditional Chinese); libretranslate.com's BCP 47 codes are accepted as well (``zh-Hans``,
``zh-Hant``, ``zh-CN``, ``zh-TW``, ``zh-HK``, any case). A Chinese target code picks the
output script, as ``nmt translate --zh-script`` does (``zt``/``zh-Hant``: Traditional,
``zh-TW``/``zh-HK``: the regional standards). Each text is translated line by line (a line is
a sentence for the limits) and its lines joined again with ``\\n``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse

from nmt.config import DecodeConfig
from nmt.datautil.zh_script import OutputScript
from nmt.serve.auth import check_body_key
from nmt.serve.protocol import ApiError, parse_json, read_body
from nmt.serve.service import DecodeRequest, TranslationService

__all__ = ["Language", "detect", "detect_route", "direction", "languages_route", "resolve",
           "translate_route"]


@dataclass(frozen=True)
class Language:
    """A LibreTranslate language code as the model reads it."""

    code: str  # as listed by /languages
    lang: str  # the model's language (data.src_lang / data.tgt_lang)
    script: OutputScript | None  # the Chinese output script it asks for; None: as written
    name: str


_LISTED = (Language("en", "en", None, "English"), Language("zh", "zh", None, "Chinese"),
           Language("zt", "zh", "hant", "Chinese (traditional)"))  # fmt: skip
_CODES = {lang.code: lang for lang in _LISTED} | {
    "zh-hans": Language("zh-Hans", "zh", "hans", "Chinese (Simplified)"),
    "zh-cn": Language("zh-CN", "zh", "hans", "Chinese (Simplified)"),
    "zh-sg": Language("zh-SG", "zh", "hans", "Chinese (Simplified)"),
    "zh-hant": Language("zh-Hant", "zh", "hant", "Chinese (Traditional)"),
    "zh-tw": Language("zh-TW", "zh", "tw", "Chinese (Taiwan)"),
    "zh-hk": Language("zh-HK", "zh", "hk", "Chinese (Hong Kong)"),
}
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")
_HAN_WEIGHT = 3  # a Han character carries about what three Latin letters do


def resolve(code: object, parameter: str) -> Language:
    """The language of a code (any case); 400 when it is missing or unknown."""
    if code is None or code == "":
        raise ApiError(400, f"Invalid request: missing {parameter} parameter", parameter)
    language = _CODES.get(code.lower()) if isinstance(code, str) else None
    if language is None:
        raise ApiError(400, f"{code} is not supported", parameter)
    return language


def direction(service: TranslationService, source: Language, target: Language) -> None:
    """Refuse (400, naming both) a direction the model does not translate."""
    if source.lang != service.source_lang or target.lang != service.target_lang:
        raise ApiError(400, f"{target.name} ({target.code}) is not available as a target "
                       f"language from {source.name} ({source.code}); this server translates "
                       f"{service.source_lang} to {service.target_lang}", "target")


def detect(text: str) -> list[dict[str, Any]]:
    """LibreTranslate's ``/detect`` answer for ``text``: Chinese or English by the share of
    Han characters and Latin letters, best first (confidence 0-100); no letters at all:
    English at confidence 0, as LibreTranslate falls back."""
    han = _HAN_WEIGHT * len(_HAN.findall(text))
    latin = len(_LATIN.findall(text))
    if not han and not latin:
        return [{"confidence": 0.0, "language": "en"}]
    shares = {"zh": 100.0 * han / (han + latin), "en": 100.0 * latin / (han + latin)}
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    return [{"confidence": round(share, 1), "language": code} for code, share in ranked if share]


def languages(service: TranslationService) -> list[dict[str, Any]]:
    """``GET /languages``: every listed language, the model's source with its targets."""
    targets = [lang.code for lang in _LISTED if lang.lang == service.target_lang]
    return [{"code": lang.code, "name": lang.name,
             "targets": targets if lang.lang == service.source_lang else []}
            for lang in _LISTED]  # fmt: skip


# --------------------------------------------------------------------------- routes


def _texts(q: Any) -> list[str]:
    """LibreTranslate's ``q``: a string or a list of strings, as a list."""
    if not q:
        raise ApiError(400, "Invalid request: missing q parameter", "q")
    texts = q if isinstance(q, list) else [q]
    if not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "Invalid request: q must be a string or a list of strings", "q")
    return texts


async def translate_route(request: Request) -> JSONResponse:
    service: TranslationService = request.app.state.service
    fields = await _fields(request, service)
    check_body_key(request, fields.get("api_key"))
    q = fields.get("q")
    texts = _texts(q)
    source_code = fields.get("source")
    if source_code is None or source_code == "":
        raise ApiError(400, "Invalid request: missing source parameter", "source")
    target = resolve(fields.get("target"), "target")
    detected = None
    if source_code == "auto":
        detected = detect("\n".join(texts))[0]
        if not detected["confidence"]:  # no letters at all (digits, punctuation): any source
            detected = {"confidence": 0.0, "language": service.source_lang}
    source = resolve(detected["language"] if detected else source_code, "source")
    text_format = fields.get("format") or "text"
    if text_format != "text":
        raise ApiError(400, f"{text_format} format is not supported", "format")
    alternatives = _alternatives(fields.get("alternatives", 0), service)
    direction(service, source, target)
    lines = [text.replace("\r\n", "\n").split("\n") for text in texts]
    sentences = [line for text_lines in lines for line in text_lines]
    _check_limits(sentences, service)
    results = await service.translate(
        sentences, DecodeRequest(_options(service, alternatives)), endpoint="/translate",
        script=target.script if target.lang == "zh" else None)
    translated, alternative_texts = [], []
    start = 0
    for text_lines in lines:
        mine = results[start:start + len(text_lines)]
        start += len(text_lines)
        best = "\n".join(r["translation"] for r in mine)
        translated.append(best)
        alternative_texts.append(_alternative_texts(mine, alternatives, best))
    one = not isinstance(q, list)
    out: dict[str, Any] = {"translatedText": translated[0] if one else translated}
    if detected is not None:
        out["detectedLanguage"] = detected if one else [detected] * len(texts)
    if alternatives:
        out["alternatives"] = alternative_texts[0] if one else alternative_texts
    return JSONResponse(out)


async def languages_route(request: Request) -> JSONResponse:
    return JSONResponse(languages(request.app.state.service))


async def detect_route(request: Request) -> JSONResponse:
    service: TranslationService = request.app.state.service
    fields = await _fields(request, service)
    check_body_key(request, fields.get("api_key"))
    texts = _texts(fields.get("q"))
    return JSONResponse(detect("\n".join(texts)))


# --------------------------------------------------------------------------- helpers


async def _fields(request: Request, service: TranslationService) -> dict[str, Any]:
    """A LibreTranslate request's parameters: the JSON object, or the form and query string
    (a repeated ``q`` is a list), as LibreTranslate reads them."""
    body = await read_body(request, service.settings.max_body_bytes)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        data = parse_json(body)
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid JSON format")
        return data
    if media_type == "multipart/form-data":
        raise ApiError(415, "multipart/form-data is not read here: send application/json or "
                       "application/x-www-form-urlencoded")
    try:
        pairs = [*request.query_params.multi_items(),
                 *parse_qsl(body.decode("utf-8"), keep_blank_values=True)]
    except UnicodeDecodeError:
        raise ApiError(400, "Invalid request: the form is not UTF-8") from None
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name == "q" and name in fields:
            before = fields[name]
            fields[name] = [*before, value] if isinstance(before, list) else [before, value]
        else:
            fields.setdefault(name, value)
    return fields


def _alternatives(value: Any, service: TranslationService) -> int:
    """The ``alternatives`` parameter as a count, at most ``--max-beam-size`` - 1."""
    try:
        count = max(0, int(value))
    except (TypeError, ValueError):
        raise ApiError(400, "Invalid request: alternatives parameter is not a number",
                       "alternatives") from None
    limit = service.settings.max_beam_size - 1
    if count > limit:
        raise ApiError(400, f"Invalid request: alternatives parameter must be <= {limit}",
                       "alternatives")
    return count


def _options(service: TranslationService, alternatives: int) -> DecodeConfig:
    """The server's decoding options; for ``alternatives`` n, beam search keeping n + 1."""
    if not alternatives:
        return service.default_options
    beam = max(service.default_options.beam_size, alternatives + 1)
    return service.options({"strategy": "beam", "beam_size": beam, "n_best": alternatives + 1})


def _check_limits(sentences: list[str], service: TranslationService) -> None:
    settings = service.settings
    if len(sentences) > settings.max_sentences:
        raise ApiError(413, f"Invalid request: request ({len(sentences)}) exceeds text limit "
                       f"({settings.max_sentences} lines)", "q")
    for line in sentences:
        if len(line) > settings.max_chars:
            raise ApiError(413, f"Invalid request: request ({len(line)}) exceeds text limit "
                           f"({settings.max_chars} characters per line)", "q")


def _alternative_texts(lines: list[dict[str, Any]], count: int, best: str) -> list[str]:
    """Up to ``count`` other translations of a text: its lines' i-th hypotheses joined (a
    line with fewer keeps its best), without repeats or the best itself, as LibreTranslate
    drops them."""
    seen = {best, ""}
    texts = []
    for i in range(1, count + 1):
        text = "\n".join((r["nbest"][i] if i < len(r["nbest"]) else r)["translation"]
                         for r in lines)  # fmt: skip
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts
