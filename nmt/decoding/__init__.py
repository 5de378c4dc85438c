"""The decoder module: every search strategy, for any model that meets the step contract.

The searches drive :class:`~nmt.models.interface.Seq2Seq` only through ``encode``,
``decode_step`` and ``state.select``, so one code path serves the GRU and the Transformer:

- :func:`greedy_search`, :func:`sample_search` (temperature, top-k, top-p via
  :func:`warp_logits`), :func:`beam_search` (GNMT length penalty, n-best);
- :func:`search` runs the one a :class:`~nmt.config.DecodeConfig` names (its registry,
  :data:`~nmt.decoding.search.STRATEGIES`);
- every search runs the same logits processors (:mod:`nmt.decoding.processors`: no repeated
  n-grams, repetition penalty, minimum length, banned words, a forced prefix) before it chooses;
- all return a :class:`SearchResult`: per sentence a best-first list of :class:`Hypothesis`.
"""

from __future__ import annotations

from nmt.decoding.beam import beam_search
from nmt.decoding.greedy import greedy_search
from nmt.decoding.lengths import length_penalty, max_lengths
from nmt.decoding.processors import LogitsProcessor, Steering, build_processors
from nmt.decoding.result import Hypothesis, SearchResult
from nmt.decoding.sampling import sample_search
from nmt.decoding.search import search
from nmt.decoding.transforms import warp_logits

__all__ = [
    "Hypothesis",
    "LogitsProcessor",
    "SearchResult",
    "Steering",
    "beam_search",
    "build_processors",
    "greedy_search",
    "length_penalty",
    "max_lengths",
    "sample_search",
    "search",
    "warp_logits",
]
