"""Greedy translation of a stream of sentences: text in, :class:`Translation` out, through one
batch that sentences join and leave as they come and end (:mod:`nmt.decoding.continuous`).

``nmt serve`` decodes plain greedy requests this way (:class:`nmt.serve.batcher.Batcher`);
:meth:`nmt.translate.Translator.stream` says when a model and its options allow it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from nmt.config import DecodeConfig
from nmt.datautil.batching import collate_src
from nmt.datautil.pipeline import TextProcessor
from nmt.decoding.continuous import ContinuousGreedy
from nmt.models.transformer import Transformer
from nmt.runtime import autocast
from nmt.translate.postprocess import PreparedSource, empty_translation, finish
from nmt.translate.result import Translation
from nmt.translate.sources import prepare_source

__all__ = ["StreamingGreedy"]


class StreamingGreedy:
    """One running greedy batch of a Transformer (driven by one thread at a time).

    Each sentence's translation is what ``Translator.translate`` gives it with the same greedy
    options, up to float rounding (the rows of a batch are padded differently).
    """

    def __init__(self, model: Transformer, processor: TextProcessor, decode: DecodeConfig, *,
                 device: torch.device, autocast_dtype: torch.dtype | None,
                 max_src_tokens: int, max_len_cap: int | None) -> None:  # fmt: skip
        self._processor = processor
        self._device, self._dtype = device, autocast_dtype
        self._max_src_tokens, self._cap = max_src_tokens, max_len_cap
        self._search = ContinuousGreedy(model, max_len_a=decode.max_len_a,
                                        max_len_b=decode.max_len_b, max_len_cap=max_len_cap,
                                        length_penalty=decode.length_penalty)  # fmt: skip
        self._sources: dict[Hashable, PreparedSource] = {}

    @property
    def live(self) -> int:
        """Sentences decoding."""
        return self._search.live

    def add(self, sentences: Sequence[str], tickets: Sequence[Hashable]
            ) -> list[tuple[Hashable, Translation]]:  # fmt: skip
        """Start translating ``sentences``; those with nothing to translate (no tokens) are
        returned at once, the others come out of :meth:`step` when they end."""
        done: list[tuple[Hashable, Translation]] = []
        joining: list[tuple[Hashable, PreparedSource]] = []
        for line, (text, ticket) in enumerate(zip(sentences, tickets, strict=True), 1):
            prep = prepare_source(self._processor, line, text, None, self._max_src_tokens,
                                  self._cap)  # fmt: skip
            if prep.ids:
                joining.append((ticket, prep))
            else:
                done.append((ticket, empty_translation(prep)))
        if joining:
            src, src_mask = collate_src([prep.ids for _, prep in joining])
            with torch.inference_mode(), autocast(self._device, self._dtype):
                self._search.add(src.to(self._device), src_mask.to(self._device),
                                 [ticket for ticket, _ in joining])  # fmt: skip
            self._sources.update(joining)
        return done

    def step(self) -> list[tuple[Hashable, Translation]]:
        """One decoder step; the sentences that ended, translated."""
        with torch.inference_mode(), autocast(self._device, self._dtype):
            ended = self._search.step()
        return [(ticket, finish(self._processor, self._sources.pop(ticket), [hyp], False, False))
                for ticket, hyp in ended]  # fmt: skip
