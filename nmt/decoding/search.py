"""One entry point that runs the strategy a :class:`~nmt.config.DecodeConfig` names.

Strategies are registered in :data:`STRATEGIES`: a function from the model, the batch, the
decode config and what every strategy shares (:class:`SearchInputs`) to a
:class:`~nmt.decoding.result.SearchResult`. Adding one is its module, an entry here and its
name in ``DecodeConfig.strategy`` (the config schema).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from nmt.config import DecodeConfig
from nmt.decoding.beam import beam_search
from nmt.decoding.constrained import constrained_beam_search
from nmt.decoding.greedy import greedy_search
from nmt.decoding.processors import Steering
from nmt.decoding.result import SearchResult
from nmt.decoding.sampling import sample_search
from nmt.models.interface import Seq2Seq

__all__ = ["STRATEGIES", "SearchInputs", "search"]


@dataclass(frozen=True)
class SearchInputs:
    """What every strategy takes besides the model, the batch and the decode config."""

    generator: torch.Generator | None = None  # sampling's random stream
    max_len_cap: int | None = None  # the model's position limit
    need_attention: bool = False
    use_cache: bool = True
    steering: Steering | None = None
    # Per sentence, target phrases its output must contain (beam search only).
    constraints: Sequence[Sequence[Sequence[int]]] | None = None


Strategy = Callable[[Seq2Seq, Tensor, Tensor, DecodeConfig, SearchInputs], SearchResult]


def _greedy(model: Seq2Seq, src: Tensor, src_mask: Tensor, cfg: DecodeConfig,
            inputs: SearchInputs) -> SearchResult:  # fmt: skip
    return greedy_search(model, src, src_mask, **_common(cfg, inputs))


def _beam(model: Seq2Seq, src: Tensor, src_mask: Tensor, cfg: DecodeConfig,
          inputs: SearchInputs) -> SearchResult:  # fmt: skip
    if inputs.constraints is not None and any(inputs.constraints):
        return constrained_beam_search(model, src, src_mask, inputs.constraints,
                                       beam_size=cfg.beam_size, n_best=cfg.n_best,
                                       **_common(cfg, inputs))  # fmt: skip
    return beam_search(model, src, src_mask, beam_size=cfg.beam_size, n_best=cfg.n_best,
                       **_common(cfg, inputs))  # fmt: skip


def _sample(model: Seq2Seq, src: Tensor, src_mask: Tensor, cfg: DecodeConfig,
            inputs: SearchInputs) -> SearchResult:  # fmt: skip
    return sample_search(model, src, src_mask, temperature=cfg.temperature, top_k=cfg.top_k,
                         top_p=cfg.top_p, generator=inputs.generator,
                         **_common(cfg, inputs))  # fmt: skip


def _common(cfg: DecodeConfig, inputs: SearchInputs) -> dict[str, Any]:
    return dict(max_len_a=cfg.max_len_a, max_len_b=cfg.max_len_b,
                max_len_cap=inputs.max_len_cap, length_penalty=cfg.length_penalty,
                need_attention=inputs.need_attention, use_cache=inputs.use_cache,
                steering=inputs.steering)  # fmt: skip


STRATEGIES: dict[str, Strategy] = {"greedy": _greedy, "beam": _beam, "sample": _sample}


def search(
    model: Seq2Seq,
    src: Tensor,
    src_mask: Tensor,
    cfg: DecodeConfig,
    *,
    generator: torch.Generator | None = None,
    max_len_cap: int | None = None,
    need_attention: bool = False,
    use_cache: bool = True,
    steering: Steering | None = None,
    constraints: Sequence[Sequence[Sequence[int]]] | None = None,
) -> SearchResult:
    """Decode a batch with ``cfg.strategy`` and the options ``cfg`` gives it.

    ``beam_size``/``n_best`` apply to beam search; greedy and sampling return one hypothesis per
    sentence. ``generator`` is used by sampling only (see
    :func:`~nmt.decoding.sampling.sample_search`). Shapes and the result: as
    :func:`~nmt.decoding.greedy.greedy_search`.

    Raises:
        ValueError: no strategy of that name (the config schema normally catches it first).
    """
    strategy = STRATEGIES.get(cfg.strategy)
    if strategy is None:
        raise ValueError(f"unknown decoding strategy {cfg.strategy!r}")
    if constraints is not None and any(constraints) and cfg.strategy != "beam":
        raise ValueError("lexical constraints need beam search")
    inputs = SearchInputs(generator, max_len_cap, need_attention, use_cache, steering,
                          constraints)  # fmt: skip
    return strategy(model, src, src_mask, cfg, inputs)
