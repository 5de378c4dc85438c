"""Greedy search, and the token-by-token loop it shares with sampling.

One loop drives both: at every step the model scores the next token for every live sentence and
a *chooser* picks one id per row (arg-max for greedy, a draw for sampling). Sentences that have
ended keep producing ``<pad>`` at no cost until enough of them have ended to make dropping them
from the batch worth a re-index of the decoder state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.config import DecodeConfig
from nmt.decoding.lengths import length_penalty as gnmt_penalty
from nmt.decoding.lengths import max_lengths
from nmt.decoding.processors import Steering, Step
from nmt.decoding.result import SearchResult, collect_hypotheses
from nmt.decoding.scoring import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    attention_of,
    blocked_ids,
    step_log_probs,
)
from nmt.models.interface import Seq2Seq

__all__ = ["Chooser", "decode_token_by_token", "greedy_search"]

_DEFAULTS = DecodeConfig()  # the one place defaults live is nmt.config
# Drop ended sentences from the batch once this fraction of the live rows has ended: re-indexing
# the state (the Transformer's key/value cache) costs about one step, so not after every one.
_COMPACT_FRACTION = 0.25

Chooser = Callable[[Tensor], Tensor]
"""``(rows, vocab)`` float32 log-probabilities (``-inf`` where not allowed) -> ``(rows,)`` ids."""


@dataclass
class _Outputs:
    """Per input sentence (not per live row): what has been produced so far."""

    tokens: Tensor  # (batch, max_len) long, PAD where no token was produced
    scores: Tensor  # (batch,) float32 summed log-probabilities
    steps: Tensor  # (batch,) long, decoder steps scored (</s> included)
    attention: Tensor | None  # (batch, max_len, src_len) float32

    @classmethod
    def empty(cls, src: Tensor, max_len: int, need_attention: bool) -> _Outputs:
        batch, src_len = src.shape
        return cls(
            tokens=src.new_full((batch, max_len), PAD_ID),
            scores=src.new_zeros(batch, dtype=torch.float32),
            steps=src.new_zeros(batch),
            attention=src.new_zeros((batch, max_len, src_len), dtype=torch.float32)
            if need_attention
            else None,
        )

    def record(
        self,
        rows: Tensor,
        t: int,
        tokens: Tensor,
        log_probs: Tensor,
        live: Tensor,
        attn: Tensor | None,
    ) -> None:
        """Write step ``t`` of the live ``rows`` (all ``(rows,)``; attn ``(rows, src_len)``)."""
        # These buffers belong to this search, so writing into them in place is safe.
        self.tokens[rows, t] = tokens
        self.scores.index_add_(0, rows, log_probs)
        self.steps.index_add_(0, rows, live.long())
        if self.attention is not None and attn is not None:
            self.attention[rows, t] = attn.float()

    def to_result(self, src_mask: Tensor, alpha: float) -> SearchResult:
        """One hypothesis per sentence; ``alpha`` is the GNMT length penalty of ``norm_score``."""
        last = self.tokens.gather(1, (self.steps - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        ended = last == EOS_ID
        norm = self.scores / gnmt_penalty(self.steps, alpha)
        attention = None if self.attention is None else self.attention.unsqueeze(1)
        return collect_hypotheses(
            self.tokens.unsqueeze(1),
            (self.steps - ended.long()).unsqueeze(1),
            ended.unsqueeze(1),
            self.scores.unsqueeze(1),
            norm.unsqueeze(1),
            attention,
            src_mask,
        )


@torch.no_grad()
def decode_token_by_token(
    model: Seq2Seq,
    src: Tensor,
    src_mask: Tensor,
    choose: Chooser,
    *,
    max_len_a: float,
    max_len_b: int,
    max_len_cap: int | None,
    length_penalty: float,
    need_attention: bool,
    use_cache: bool,
    steering: Steering | None = None,
) -> SearchResult:
    """The loop of greedy search and sampling; ``choose`` picks each step's tokens from the
    log-probabilities after ``steering``'s processors.

    Args and Returns: as :func:`greedy_search`.
    """
    if src.size(0) == 0:
        return SearchResult([])
    steer = steering if steering is not None and steering.active else None
    limits = max_lengths(src_mask, max_len_a, max_len_b, max_len_cap)  # (batch,)
    if steer is not None:
        limits = steer.limits(limits)
    out = _Outputs.empty(src, int(limits.max()), need_attention)
    state = model.encode(src, src_mask, need_attention=need_attention, use_cache=use_cache)
    blocked = blocked_ids(src.device)
    rows = torch.arange(src.size(0), device=src.device)  # input sentence of each live row
    prev = torch.full_like(rows, BOS_ID)
    ended = torch.zeros_like(rows, dtype=torch.bool)
    for t in range(out.tokens.size(1)):
        logits, state, attn = model.decode_step(prev, state)
        log_probs = step_log_probs(logits, blocked)
        if steer is None:
            tokens = choose(log_probs)
        else:  # on a copy: the score stays the model's log-probability of the token
            step = Step(out.tokens[:, :t].index_select(0, rows), t, rows)
            tokens = choose(steer(step, log_probs.clone()))
        tokens = tokens.masked_fill(ended, PAD_ID)
        token_lp = log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1).masked_fill(ended, 0.0)
        out.record(rows, t, tokens, token_lp, ~ended, attention_of(attn, need_attention, model))
        ended = ended | (tokens == EOS_ID) | (limits.index_select(0, rows) <= t + 1)
        n_ended = int(ended.sum())  # the one host sync of the step
        if n_ended == rows.numel():
            break
        prev = tokens
        if n_ended >= _COMPACT_FRACTION * rows.numel():
            keep = (~ended).nonzero().squeeze(1)
            state, rows, prev, ended = state.select(keep), rows[keep], prev[keep], ended[keep]
    return out.to_result(src_mask, length_penalty)


def greedy_search(
    model: Seq2Seq,
    src: Tensor,
    src_mask: Tensor,
    *,
    max_len_a: float = _DEFAULTS.max_len_a,
    max_len_b: int = _DEFAULTS.max_len_b,
    max_len_cap: int | None = None,
    length_penalty: float = _DEFAULTS.length_penalty,
    need_attention: bool = False,
    use_cache: bool = True,
    steering: Steering | None = None,
) -> SearchResult:
    """Pick the most probable token at every step (``<pad>`` and ``<s>`` are never output).

    Put the model in eval mode first; this runs without gradients and modifies nothing.

    Args:
        model: any :class:`~nmt.models.interface.Seq2Seq`.
        src: ``(batch, src_len)`` source ids; ``src_mask``: ``(batch, src_len)`` bool, True at
            real tokens.
        max_len_a, max_len_b, max_len_cap: sentence ``i`` takes at most
            ``min(floor(a·|src_i| + b), cap)`` decoder steps (see :func:`max_lengths`).
        length_penalty: GNMT alpha, used for ``norm_score`` only (greedy ranks nothing).
        need_attention: return each hypothesis' attention (``Hypothesis.attention``).
        use_cache: passed to ``model.encode`` (False only to benchmark or test the cache).
        steering: logits processors and forced prefixes (:class:`~nmt.decoding.processors.
            Steering`), run on every step's log-probabilities before choosing; a token's score
            is still the model's log-probability of it. None (or nothing active): unsteered.

    Returns:
        One hypothesis per sentence, in input order.
    """
    return decode_token_by_token(
        model,
        src,
        src_mask,
        lambda log_probs: log_probs.argmax(dim=-1),
        max_len_a=max_len_a,
        max_len_b=max_len_b,
        max_len_cap=max_len_cap,
        length_penalty=length_penalty,
        need_attention=need_attention,
        use_cache=use_cache,
        steering=steering,
    )
