"""What a translate call reads before any search, the same for both engines: its decoding
options (validated by the config's rules), its arguments, and each source sentence normalized,
tokenized, truncated to what the model takes and given its forced prefix."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from nmt.config import DecodeConfig, decode_with
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.vocab import UNK_ID
from nmt.errors import ConfigError
from nmt.translate.postprocess import PreparedSource

__all__ = ["call_options", "check_call", "prepare_source", "target_word_ids"]

log = logging.getLogger(__name__)


def call_options(run_decode: DecodeConfig, options: DecodeConfig | Mapping[str, Any] | None,
                 overrides: Mapping[str, Any]) -> DecodeConfig:  # fmt: skip
    """The decoding options of a call: ``options`` (a DecodeConfig, or ``decode.*`` keys over
    the run's ``run_decode``), then the non-None ``overrides``, validated by the config's rules.

    Raises:
        ConfigError: an invalid option (the message names it).
        TypeError: ``options`` is neither a DecodeConfig nor a mapping.
    """
    base = run_decode
    given: dict[str, Any] = {}
    if isinstance(options, DecodeConfig):
        base = options
    elif isinstance(options, Mapping):
        given.update(options)
    elif options is not None:
        raise TypeError(f"options: expected a DecodeConfig or a mapping of decode.* keys, "
                        f"got {type(options).__name__} (pass strategy=... by keyword)")
    given.update(overrides)
    given = {k: v for k, v in given.items() if v is not None}
    try:  # the rules of the config's decode section (nmt.config), nowhere else
        return decode_with(base, given) if given or base is not run_decode else base
    except ConfigError as e:
        raise ConfigError(f"invalid decoding option: {e}") from None


def check_call(sentences: Sequence[str], seed: int | None,
               prefixes: Sequence[str | None] | None) -> None:  # fmt: skip
    """Refuse the arguments of a translate call that no engine can use.

    Raises:
        TypeError: one string instead of a list of sentences.
        ConfigError: a seed that is not an integer, or not one prefix per sentence.
    """
    if isinstance(sentences, str):
        raise TypeError("translate() takes a list of sentences, not one string")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"seed: expected an integer, got {seed!r}")
    if prefixes is not None and len(prefixes) != len(sentences):
        raise ConfigError(f"prefixes: {len(prefixes)} given for {len(sentences)} sentences")


def prepare_source(
    processor: TextProcessor, line_no: int, text: str, prefix: str | None,
    max_src_tokens: int, max_len_cap: int | None,
) -> PreparedSource:
    """Source ``text`` (input line ``line_no``) as the model reads it: tokens beyond
    ``max_src_tokens`` cut (with a warning naming the line), and the target tokens of
    ``prefix``.

    Raises:
        ConfigError: the prefix leaves no room for ``</s>`` within ``max_len_cap`` positions.
    """
    tokens = processor.tokenize_src(text)
    truncated = len(tokens) > max_src_tokens
    if truncated:
        log.warning("line %d: %d source tokens, more than the model takes (%d); "
                    "truncated to the first %d", line_no, len(tokens), max_src_tokens,
                    max_src_tokens)  # fmt: skip
        tokens = tokens[:max_src_tokens]
    prefix_tokens = processor.tokenize_tgt(prefix) if prefix else []
    # The prefix and at least </s> must fit the model's positions.
    if max_len_cap is not None and len(prefix_tokens) >= max_len_cap:
        raise ConfigError(f"line {line_no}: the prefix has {len(prefix_tokens)} target "
                          f"tokens; the model outputs at most {max_len_cap}")
    return PreparedSource(text, tokens, processor.src_vocab.encode(tokens), truncated,
                          prefix_tokens, processor.tgt_vocab.encode(prefix_tokens))


def target_word_ids(processor: TextProcessor, text: str) -> list[int]:
    """Target ids of a word option (``decode.banned_words``); ``[]``, with a warning, for a
    word the target vocabulary cannot spell (banning ``<unk>`` would ban every unknown
    word)."""
    ids = processor.encode_tgt(text)
    if not ids or UNK_ID in ids:
        log.warning("decode.banned_words: %r is not in the target vocabulary; ignored", text)
        return []
    return ids
