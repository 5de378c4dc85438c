"""Batched beam search with the GNMT length penalty and n-best output.

Every sentence and every beam advance together as one ``(sentences × beam)`` batch; there is no
Python loop over either. One step, for N live sentences, K beams and a vocabulary of V:

1. ``cand = scores[:, :, None] + log p(y | prefix)`` ``(N, K, V)``; the top ``2K`` of the
   ``K·V`` continuations ``(N, 2K)``. At most K of them are ``</s>`` (one per beam), so at least
   K others remain to continue (fairseq's trick).
2. A ``</s>`` among the top K finishes a hypothesis; at a sentence's max_len all top K finish.
   Finished hypotheses enter the sentence's pool of its n-best, ranked by normalised score.
3. The K best continuations that are not ``</s>`` become the new beams, and
   ``state.select`` reorders the model's state to follow their parents.
4. A sentence is done once K hypotheses have finished (fairseq's stopping rule), at its max_len,
   or when no beam is alive; done sentences leave the batch, so they cost nothing afterwards.

At the first step only beam 0 is alive (the others score ``-inf``), so the K beams that come out
of it are distinct; the model runs that step on one row per sentence and the state is expanded
to K rows afterwards. Later reorders keep the source side of the state in place
(``select(..., same_source=True)``) unless finished sentences leave the batch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.config import DecodeConfig
from nmt.decoding.beam_layout import (
    flat_rows,
    flatten_beams,
    gather_beams,
    take_rows,
    unflatten_beams,
)
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

__all__ = ["beam_search"]

_DEFAULTS = DecodeConfig()
_NEG_INF = -math.inf
_UNMET_WEIGHT = 1e6  # ranking only: a hypothesis missing a constraint sorts after every other


@dataclass(frozen=True)
class _Hyps:
    """Finished hypotheses: per sentence a best-first pool (``-inf`` norm = empty slot)."""

    norm: Tensor  # (N, k) float32 length-normalised score
    raw: Tensor  # (N, k) float32 summed log-probability
    tokens: Tensor  # (N, k, max_len) long
    n_tokens: Tensor  # (N, k) long, output length without </s>
    ended: Tensor  # (N, k) bool, True when the hypothesis ended with </s>
    attention: Tensor | None  # (N, k, max_len, src_len) float32
    # (N, k) long: constraint tokens missed (constrained search only); ranked after norm
    unmet: Tensor | None = None

    @classmethod
    def empty(
        cls, n: int, k: int, max_len: int, src_len: int, need_attention: bool, device: torch.device,
        with_unmet: bool = False,
    ) -> _Hyps:
        def zeros(*shape: int, dtype: torch.dtype = torch.long) -> Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        return cls(
            norm=torch.full((n, k), _NEG_INF, device=device),
            raw=torch.full((n, k), _NEG_INF, device=device),
            tokens=torch.full((n, k, max_len), PAD_ID, dtype=torch.long, device=device),
            n_tokens=zeros(n, k),
            ended=zeros(n, k, dtype=torch.bool),
            attention=zeros(n, k, max_len, src_len, dtype=torch.float32)
            if need_attention
            else None,
            unmet=zeros(n, k) if with_unmet else None,
        )

    def best_with(self, other: _Hyps) -> _Hyps:
        """The best ``k`` of this pool and ``other`` together, best first (with ``unmet``: fewer
        missed constraint tokens first, then by ``norm``)."""
        k = self.norm.size(1)
        key = torch.cat((self.norm, other.norm), dim=1)
        if self.unmet is not None and other.unmet is not None:  # float64: -1e6 keeps the norm
            key = key.double() - _UNMET_WEIGHT * torch.cat((self.unmet, other.unmet), dim=1)
        best = key.topk(k, dim=1).indices  # (N, k)
        fields = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine is not None:
                fields[f.name] = gather_beams(torch.cat((mine, theirs), dim=1), best)
        return dataclasses.replace(self, **fields)


@dataclass(frozen=True)
class _Beams:
    """The live part of the search, one row per sentence still being searched."""

    sentence: Tensor  # (N,) index of the sentence in the input batch
    limits: Tensor  # (N,) max decoder steps
    scores: Tensor  # (N, K) summed log-probabilities of the alive beams; -inf = dead
    tokens: Tensor  # (N, K, max_len) the beams' prefixes
    attention: Tensor | None  # (N, K, max_len, src_len)
    n_finished: Tensor  # (N,) hypotheses finished so far
    pool: _Hyps  # (N, n_best, ...) the best finished ones

    @classmethod
    def start(
        cls, src: Tensor, limits: Tensor, k: int, n_best: int, need_attention: bool
    ) -> _Beams:
        (n, src_len), max_len = src.shape, int(limits.max())
        empty = _Hyps.empty(n, n_best, max_len, src_len, need_attention, src.device)
        scores = torch.full((n, k), _NEG_INF, device=src.device)
        scores[:, 0] = 0.0  # only beam 0 is alive at t=0: no duplicate beams
        tokens = torch.full((n, k, max_len), PAD_ID, dtype=torch.long, device=src.device)
        attention = (
            src.new_zeros((n, k, max_len, src_len), dtype=torch.float32) if need_attention else None
        )
        return cls(
            torch.arange(n, device=src.device),
            limits,
            scores,
            tokens,
            attention,
            torch.zeros_like(limits),
            empty,
        )


@dataclass(frozen=True)
class _Candidates:
    """The ``2K`` best continuations of each sentence, best first: all ``(N, 2K)``."""

    scores: Tensor  # summed log-probability
    parents: Tensor  # beam extended
    tokens: Tensor  # token appended

    @classmethod
    def top(cls, scores: Tensor, log_probs: Tensor) -> _Candidates:
        """``scores`` ``(N, K)`` and ``log_probs`` ``(N, K, V)`` -> the top ``2K``.

        ``log_probs`` is the search's own step tensor and is overwritten: adding in place saves
        allocating another ``N·K·V`` matrix every step.
        """
        k, vocab = log_probs.shape[1:]
        total = log_probs.add_(scores.unsqueeze(2)).flatten(1)  # (N, K·V)
        best, index = total.topk(2 * k, dim=1)
        return cls(best, index.div(vocab, rounding_mode="floor"), index.remainder(vocab))


def _extend(
    beams: _Beams, parents: Tensor, last: Tensor, step_attn: Tensor | None, t: int
) -> tuple[Tensor, Tensor | None]:
    """Prefixes (and attention) of the ``parents`` ``(N, k)`` extended by ``last`` ``(N, k)``."""
    tokens = gather_beams(beams.tokens, parents)
    tokens[:, :, t] = last  # a fresh tensor: safe to write
    if beams.attention is None or step_attn is None:
        return tokens, None
    attention = gather_beams(beams.attention, parents)
    attention[:, :, t] = gather_beams(step_attn, parents)
    return tokens, attention


def _finished(
    beams: _Beams,
    cand: _Candidates,
    finishing: Tensor,
    step_attn: Tensor | None,
    t: int,
    alpha: float,
) -> _Hyps:
    """The hypotheses that finish at step ``t`` (``finishing`` ``(N, K)`` marks them)."""
    k = finishing.size(1)
    parents, last, raw = cand.parents[:, :k], cand.tokens[:, :k], cand.scores[:, :k]
    tokens, attention = _extend(beams, parents, last, step_attn, t)
    ended = last == EOS_ID
    norm = (raw / gnmt_penalty(t + 1, alpha)).masked_fill(~finishing, _NEG_INF)
    return _Hyps(norm, raw, tokens, (t + 1) - ended.long(), ended, attention)


def _advance(
    beams: _Beams, log_probs: Tensor, step_attn: Tensor | None, t: int, alpha: float
) -> tuple[_Beams, Tensor, Tensor | None]:
    """One search step.

    Args:
        log_probs: ``(N, K, V)``; step_attn: ``(N, K, src_len)`` or None.

    Returns:
        The new beams, their parents' flat rows ``(N, K)`` in the current state, and the
        ``(N,)`` bool mask of sentences now done (None when none is).
    """
    k = beams.scores.size(1)
    cand = _Candidates.top(beams.scores, log_probs)
    is_eos = cand.tokens == EOS_ID
    at_limit = beams.limits <= t + 1
    finishing = (is_eos[:, :k] | at_limit.unsqueeze(1)) & cand.scores[:, :k].isfinite()
    alive, pick = cand.scores.masked_fill(is_eos, _NEG_INF).topk(k, dim=1)
    parents = cand.parents.gather(1, pick)
    n_finished = beams.n_finished + finishing.sum(dim=1)
    done = (n_finished >= k) | at_limit | alive[:, 0].isneginf()
    any_finishing, any_done = torch.stack((finishing.any(), done.any())).tolist()  # one sync
    pool = beams.pool
    if any_finishing:
        pool = pool.best_with(_finished(beams, cand, finishing, step_attn, t, alpha))
    tokens, attention = _extend(beams, parents, cand.tokens.gather(1, pick), step_attn, t)
    new = dataclasses.replace(
        beams, scores=alive, tokens=tokens, attention=attention, n_finished=n_finished, pool=pool
    )
    return new, flat_rows(parents, k), done if any_done else None


def _step_outputs(
    logits: Tensor, attn: Tensor | None, t: int, k: int, blocked: Tensor,
    beams: _Beams, steer: Steering | None,
) -> tuple[Tensor, Tensor | None]:
    """A step's log-probabilities ``(N, K, V)`` (after ``steer``) and attention
    ``(N, K, src_len)``.

    At ``t == 0`` the model ran one row per sentence (``(N, V)``); its output is repeated for
    the K beams (beams 1..K-1 score ``-inf`` then, so only beam 0's copy counts).
    """
    log_probs = step_log_probs(logits, blocked)
    if steer is not None:
        if t == 0:
            step = Step(beams.tokens[:, 0, :0], 0, beams.sentence)
        else:
            step = Step(flatten_beams(beams.tokens[:, :, :t]), t,
                        beams.sentence.repeat_interleave(k))  # fmt: skip
        log_probs = steer(step, log_probs)
    attn = None if attn is None else attn.float()
    if t == 0:
        log_probs = log_probs.unsqueeze(1).repeat(1, k, 1)  # a copy: the step writes into it
        return log_probs, None if attn is None else attn.unsqueeze(1).expand(-1, k, -1)
    return unflatten_beams(log_probs, k), None if attn is None else unflatten_beams(attn, k)


def _check_sizes(beam_size: int, n_best: int) -> None:
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"need 1 <= n_best <= beam_size, got {n_best=} and {beam_size=}")


def _store(out: _Hyps, pool: _Hyps, sentence: Tensor, done: Tensor) -> None:
    """Copy the n-best ``pool`` of the ``done`` live sentences into ``out``
    (``(batch, n_best, ...)``); ``sentence`` ``(N,)`` maps live rows to input sentences."""
    rows = done.nonzero().squeeze(1)
    sentence, n_best = sentence.index_select(0, rows), out.norm.size(1)
    for f in dataclasses.fields(out):
        target, pool_value = getattr(out, f.name), getattr(pool, f.name)
        if target is not None:
            # `out` belongs to this search: filling it in place is safe.
            target[sentence] = pool_value.index_select(0, rows)[:, :n_best]


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_mask: Tensor,
    *,
    beam_size: int = _DEFAULTS.beam_size,
    n_best: int = _DEFAULTS.n_best,
    length_penalty: float = _DEFAULTS.length_penalty,
    max_len_a: float = _DEFAULTS.max_len_a,
    max_len_b: int = _DEFAULTS.max_len_b,
    max_len_cap: int | None = None,
    need_attention: bool = False,
    use_cache: bool = True,
    steering: Steering | None = None,
) -> SearchResult:
    """Beam search over a batch; hypotheses ranked by ``score / ((5 + |y|) / 6) ** alpha``.

    Put the model in eval mode first; this runs without gradients and modifies nothing.

    Args:
        model, src, src_mask, max_len_*, need_attention, use_cache: as
            :func:`~nmt.decoding.greedy.greedy_search`.
        beam_size: K, the hypotheses kept per sentence (1 gives greedy search).
        n_best: how many finished hypotheses to return per sentence, ``1 <= n_best <= K``.
        length_penalty: GNMT alpha; 0 ranks by the raw summed log-probability.
        steering: as for greedy search, run on every beam's log-probabilities before the top
            candidates are taken. Beams are ranked by the steered scores, so a hypothesis'
            ``score`` is the sum of those (the model's own where a processor changed nothing;
            ``repetition_penalty`` changes values, the others only forbid).

    Returns:
        Up to ``n_best`` hypotheses per sentence, in input order, best (highest
        ``norm_score``) first.

    Raises:
        ValueError: ``beam_size < 1`` or ``n_best`` outside ``[1, beam_size]``.
    """
    _check_sizes(beam_size, n_best)
    if src.size(0) == 0:
        return SearchResult([])
    steer = steering if steering is not None and steering.active else None
    limits = max_lengths(src_mask, max_len_a, max_len_b, max_len_cap)
    if steer is not None:
        limits = steer.limits(limits)
    beams = _Beams.start(src, limits, beam_size, n_best, need_attention)
    out = _Hyps.empty(
        src.size(0), n_best, beams.tokens.size(2), src.size(1), need_attention, src.device
    )
    # The first step runs on one row per sentence: every beam would start from the same
    # <s> and only beam 0 is alive, so K copies would compute the same logits K times.
    state = model.encode(src, src_mask, need_attention=need_attention, use_cache=use_cache)
    blocked = blocked_ids(src.device)
    prev = torch.full((src.size(0),), BOS_ID, dtype=torch.long, device=src.device)
    for t in range(beams.tokens.size(2)):
        logits, state, attn = model.decode_step(prev, state)
        log_probs, step_attn = _step_outputs(logits, attn, t, beam_size, blocked, beams, steer)
        step_attn = attention_of(step_attn, need_attention, model)
        beams, rows, done = _advance(beams, log_probs, step_attn, t, length_penalty)
        if done is not None:
            _store(out, beams.pool, beams.sentence, done)
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            beams, rows = take_rows(beams, keep), rows.index_select(0, keep)
        if t == 0:  # one row per sentence -> K rows per sentence
            if done is not None:  # the row each remaining sentence ran on
                state = state.select(rows[:, 0].div(beam_size, rounding_mode="floor"))
            state = state.expand(beam_size)
        else:
            # Parents stay within their sentence; unless sentences left the batch, the
            # source-side tensors (memory, cross-attention keys/values) need no copy.
            state = state.select(flatten_beams(rows), same_source=done is None)
        prev = flatten_beams(beams.tokens[:, :, t])
    return collect_hypotheses(
        out.tokens, out.n_tokens, out.ended, out.raw, out.norm, out.attention, src_mask
    )
