"""One entry point that runs the strategy a :class:`~nmt.config.DecodeConfig` names."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from nmt.config import DecodeConfig
from nmt.decoding.beam import beam_search
from nmt.decoding.greedy import greedy_search
from nmt.decoding.result import SearchResult
from nmt.decoding.sampling import sample_search
from nmt.models.interface import Seq2Seq

__all__ = ["search"]


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
) -> SearchResult:
    """Decode a batch with ``cfg.strategy`` and the options ``cfg`` gives it.

    ``beam_size``/``n_best`` apply to beam search; greedy and sampling return one hypothesis per
    sentence. ``generator`` is used by sampling only (see
    :func:`~nmt.decoding.sampling.sample_search`). Shapes and the result: as
    :func:`~nmt.decoding.greedy.greedy_search`.
    """
    common: dict[str, Any] = dict(
        max_len_a=cfg.max_len_a,
        max_len_b=cfg.max_len_b,
        max_len_cap=max_len_cap,
        length_penalty=cfg.length_penalty,
        need_attention=need_attention,
        use_cache=use_cache,
    )
    if cfg.strategy == "beam":
        return beam_search(
            model, src, src_mask, beam_size=cfg.beam_size, n_best=cfg.n_best, **common
        )
    if cfg.strategy == "sample":
        return sample_search(
            model,
            src,
            src_mask,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            generator=generator,
            **common,
        )
    if cfg.strategy == "greedy":
        return greedy_search(model, src, src_mask, **common)
    raise ValueError(f"unknown decoding strategy {cfg.strategy!r}")
