"""One model for both directions (``data.directions: both``): each training pair is used
zh->en and en->zh, with a target-language tag as the first source token (Johnson et al. 2017).

The token cache keeps each pair once, as the run's ``src_lang``/``tgt_lang`` sides tokenized by
their own tokenizers into the joint vocabulary; :class:`BothDirections` serves it a second time,
sides swapped, at batching time, so each language keeps its tokenizer whichever side it is on.
A run translates in its own direction by default; :func:`reversed_data` and
:meth:`nmt.datautil.pipeline.TextProcessor.reversed` give the other one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from nmt.config import Config, DataConfig, Lang
from nmt.errors import ConfigError

if TYPE_CHECKING:  # batching imports torch; the text path (CTranslate2's too) must not
    from nmt.datautil.batching import PairSource

__all__ = ["TAGS", "BothDirections", "config_toward", "reversed_data", "target_tag"]

# The tags join the joint vocabulary right after the four specials (nmt build-vocab).
TAGS: dict[Lang, str] = {"en": "<2en>", "zh": "<2zh>"}


def target_tag(data: DataConfig) -> str | None:
    """The tag a source sentence of ``data``'s direction starts with; None for a one-direction
    run."""
    return TAGS[data.tgt_lang] if data.directions == "both" else None


def reversed_data(data: DataConfig) -> DataConfig:
    """The same data settings, the other way round (sides, languages and tokenizers swapped)."""
    return replace(data, src_lang=data.tgt_lang, tgt_lang=data.src_lang,
                   src_tokenizer=data.tgt_tokenizer, tgt_tokenizer=data.src_tokenizer)


def config_toward(cfg: Config, to: str | None) -> Config:
    """A run's config translating into ``to`` (None: the run's own direction): the run's
    config, or for the other direction of a both-directions run its data settings reversed.

    Raises:
        ConfigError: ``to`` is not one of the run's languages, or the run has one direction
            and ``to`` is its source language.
    """
    data = cfg.data
    if to is None or to == data.tgt_lang:
        return cfg
    if to != data.src_lang:
        raise ConfigError(f"--to {to}: the model translates between {data.src_lang} and "
                          f"{data.tgt_lang}")
    if data.directions != "both":
        raise ConfigError(f"--to {to}: the model translates {data.src_lang}->{data.tgt_lang} "
                          "only (trained with data.directions: one)")
    return replace(cfg, data=reversed_data(data))


class BothDirections:
    """Pairs ``0..n-1`` of ``corpus`` as they are, then ``n..2n-1`` reversed; each source
    starts with the tag of its target language (``forward_tag``, ``backward_tag`` ids)."""

    def __init__(self, corpus: PairSource, forward_tag: int, backward_tag: int) -> None:
        self.corpus = corpus
        self._tags = (np.array([forward_tag]), np.array([backward_tag]))
        self._n = len(corpus)

    def __len__(self) -> int:
        return 2 * self._n

    def src(self, i: int) -> np.ndarray:
        if i < self._n:
            ids = self.corpus.src(i)
            tag = self._tags[0]
        else:
            ids = self.corpus.tgt(i - self._n)
            tag = self._tags[1]
        return np.concatenate([tag.astype(ids.dtype), ids])

    def tgt(self, i: int) -> np.ndarray:
        return self.corpus.tgt(i) if i < self._n else self.corpus.src(i - self._n)

    def src_lengths(self) -> np.ndarray:
        return np.concatenate([self.corpus.src_lengths(), self.corpus.tgt_lengths()]) + 1

    def tgt_lengths(self) -> np.ndarray:
        return np.concatenate([self.corpus.tgt_lengths(), self.corpus.src_lengths()])
