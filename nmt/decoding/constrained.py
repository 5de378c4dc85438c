"""Beam search with hard lexical constraints: every given target phrase must appear.

Dynamic beam allocation (Post & Vilar 2018), batched as Hu et al. (2019) vectorise it: no Python
loop over sentences or hypotheses inside a step. Each step, for N sentences, K beams and P
phrases per sentence:

1. Candidates: the top ``2K`` continuations of all beams (as unconstrained beam search), each
   beam's best token, and for each beam the next token of every phrase it may work on (the next
   token of the phrase it is in the middle of; else the first token of each phrase not yet met).
   Duplicates (same parent, same token) are dropped.
2. Each candidate's *met count* (phrase tokens produced so far, the phrase in progress included)
   puts it in a bank. The K new beams are taken bank by bank in turn, the best of each bank
   first (rank within bank, then more constraints met first), so hypotheses that have met more
   constraints are kept although their scores are lower, and unused slots pass to other banks.
3. ``</s>`` is allowed only once every phrase is met; at the length limit every beam finishes,
   met or not, and such a hypothesis reports how many phrase tokens it missed
   (:attr:`~nmt.decoding.result.Hypothesis.unmet`). Finished hypotheses that met everything rank
   before those that did not.

A phrase is produced contiguously: a hypothesis that leaves a phrase midway starts it again.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.config import DecodeConfig
from nmt.decoding.beam import _check_sizes, _Hyps, _store
from nmt.decoding.beam_layout import flat_rows, flatten_beams, gather_beams, take_rows
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

__all__ = ["constrained_beam_search"]

_DEFAULTS = DecodeConfig()
_NEG_INF = -math.inf


@dataclass(frozen=True)
class _Phrases:
    """The constraints of each live sentence: ``tokens`` ``(N, P, L)`` (PAD after the end),
    ``lengths`` ``(N, P)`` (0 = no phrase in this slot)."""

    tokens: Tensor
    lengths: Tensor

    @classmethod
    def of(cls, phrases: Sequence[Sequence[Sequence[int]]], device: torch.device) -> _Phrases:
        n_p = max((len(p) for p in phrases), default=0)
        width = max((len(t) for p in phrases for t in p), default=1)
        tokens = torch.full((len(phrases), max(n_p, 1), width), PAD_ID, dtype=torch.long)
        lengths = torch.zeros((len(phrases), max(n_p, 1)), dtype=torch.long)
        for i, sentence in enumerate(phrases):
            for j, phrase in enumerate(sentence):
                tokens[i, j, : len(phrase)] = torch.tensor(list(phrase))
                lengths[i, j] = len(phrase)
        return cls(tokens.to(device), lengths.to(device))

    @property
    def total(self) -> Tensor:
        """``(N,)`` phrase tokens each sentence must produce."""
        return self.lengths.sum(dim=1)


@dataclass(frozen=True)
class _Progress:
    """Per beam ``(N, K, ...)``: which phrases are met, which one is in progress and how far."""

    done: Tensor  # (N, K, P) bool
    current: Tensor  # (N, K) long, the phrase in progress, -1 = none
    position: Tensor  # (N, K) long, its tokens produced so far

    def met(self, phrases: _Phrases) -> Tensor:
        """``(N, K)`` phrase tokens met (whole phrases plus the one in progress)."""
        whole = (self.done * phrases.lengths.unsqueeze(1)).sum(dim=2)
        return whole + self.position

    def allowed(self, phrases: _Phrases) -> Tensor:
        """``(N, K, P)`` long: the token each beam may produce to work on phrase p (-1 none)."""
        n, k, p = self.done.shape
        first = phrases.tokens[:, :, 0].unsqueeze(1).expand(n, k, p)
        free = (self.current < 0).unsqueeze(2) & ~self.done & (phrases.lengths > 0).unsqueeze(1)
        out = torch.where(free, first, -1)
        # A beam in the middle of a phrase may only continue it.
        cur = self.current.clamp(min=0)
        width = phrases.tokens.size(2)
        nxt = phrases.tokens.gather(1, cur.unsqueeze(2).expand(-1, -1, width))  # (N, K, L)
        nxt = nxt.gather(2, self.position.clamp(max=width - 1).unsqueeze(2))  # (N, K, 1)
        only = torch.full_like(out, -1).scatter_(2, cur.unsqueeze(2), nxt)
        return torch.where((self.current >= 0).unsqueeze(2), only, out)

    def advance(self, parents: Tensor, tokens: Tensor, phrases: _Phrases) -> _Progress:
        """The progress of candidates ``(N, M)`` (parent beam, appended token)."""
        done = gather_beams(self.done, parents)  # (N, M, P)
        current = self.current.gather(1, parents)
        position = self.position.gather(1, parents)
        width = phrases.tokens.size(2)
        # Continuing the phrase in progress?
        cur = current.clamp(min=0)
        cur_tokens = phrases.tokens.gather(1, cur.unsqueeze(2).expand(-1, -1, width))  # (N,M,L)
        expected = cur_tokens.gather(2, position.clamp(max=width - 1).unsqueeze(2)).squeeze(2)
        cur_len = phrases.lengths.gather(1, cur)
        busy = current >= 0
        continues = busy & (tokens == expected)
        position = torch.where(continues, position + 1, 0)
        finished = continues & (position == cur_len)
        done = done | (finished.unsqueeze(2) & _one_hot(cur, done.size(2)))
        current = torch.where(continues & ~finished, current, -1)
        position = torch.where(current >= 0, position, 0)
        # Else starting a phrase (the first one not met whose first token this is)?
        free = ~continues
        starts = (phrases.tokens[:, :, 0].unsqueeze(1) == tokens.unsqueeze(2)) & ~done
        starts &= (phrases.lengths > 0).unsqueeze(1) & free.unsqueeze(2)
        any_start = starts.any(dim=2)
        first = starts.float().argmax(dim=2)  # (N, M) the first match
        first_len = phrases.lengths.gather(1, first)
        single = any_start & (first_len == 1)
        done = done | (single.unsqueeze(2) & _one_hot(first, done.size(2)))
        begun = any_start & (first_len > 1)
        current = torch.where(begun, first, current)
        position = torch.where(begun, 1, position)
        return _Progress(done, current, position)


def _one_hot(index: Tensor, size: int) -> Tensor:
    return torch.nn.functional.one_hot(index, size).bool()


def _dedupe(scores: Tensor, keys: Tensor) -> Tensor:
    """``scores`` ``(N, M)`` with ``-inf`` at every repeat of a key within a row."""
    sorted_keys, order = keys.sort(dim=1, stable=True)
    repeat = torch.zeros_like(sorted_keys, dtype=torch.bool)
    repeat[:, 1:] = sorted_keys[:, 1:] == sorted_keys[:, :-1]
    mask = torch.zeros_like(repeat).scatter_(1, order, repeat)
    return scores.masked_fill(mask, _NEG_INF)


def _bank_select(scores: Tensor, met: Tensor, k: int, n_banks: int) -> Tensor:
    """Indices ``(N, k)`` of the candidates taken: bank by bank in turn, best first."""
    order = scores.argsort(dim=1, descending=True, stable=True)
    sorted_met = met.gather(1, order)
    onehot = torch.nn.functional.one_hot(sorted_met, n_banks)  # (N, M, banks)
    rank = (onehot.cumsum(dim=1) * onehot).sum(dim=2) - 1  # rank within its bank
    key = rank.double() * n_banks + (n_banks - 1 - sorted_met).double()
    key = key.masked_fill(scores.gather(1, order).isneginf(), math.inf)
    pick = key.topk(k, dim=1, largest=False).indices
    return order.gather(1, pick)


@dataclass(frozen=True)
class _Beams:
    """The live part of the search, one row per sentence still being searched."""

    sentence: Tensor  # (N,) index of the sentence in the input batch
    limits: Tensor  # (N,) max decoder steps
    scores: Tensor  # (N, K) summed log-probabilities of the alive beams; -inf = dead
    tokens: Tensor  # (N, K, max_len) the beams' prefixes
    attention: Tensor | None  # (N, K, max_len, src_len) with need_attention
    progress: _Progress
    phrases: _Phrases
    n_finished: Tensor  # (N,) finished hypotheses that met every constraint
    pool: _Hyps  # (N, n_best, ...) the best finished ones, with unmet


@torch.no_grad()
def constrained_beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_mask: Tensor,
    constraints: Sequence[Sequence[Sequence[int]]],
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
    """Beam search whose hypotheses contain every phrase of ``constraints[i]`` (target ids).

    Args:
        constraints: per sentence, its phrases (each a non-empty list of target ids; ``[]`` for
            a sentence without). The length limit is raised to hold the phrases and ``</s>``.
        Everything else: as :func:`~nmt.decoding.beam.beam_search`.

    Returns:
        As beam search; ``Hypothesis.unmet`` counts the phrase tokens a hypothesis missed
        (0 unless the length limit cut it first).
    """
    _check_sizes(beam_size, n_best)
    if len(constraints) != src.size(0):
        raise ValueError(f"{len(constraints)} constraint lists for {src.size(0)} sentences")
    if any(not phrase for sentence in constraints for phrase in sentence):
        raise ValueError("a constraint phrase needs at least one token")
    n, device, k = src.size(0), src.device, beam_size
    if n == 0:
        return SearchResult([])
    steer = steering if steering is not None and steering.active else None
    phrases = _Phrases.of(constraints, device)
    limits = max_lengths(src_mask, max_len_a, max_len_b, max_len_cap)
    limits = torch.maximum(limits, phrases.total + 1)
    if steer is not None:
        limits = steer.limits(limits)
    if max_len_cap is not None:
        limits = limits.clamp(max=max_len_cap)
    max_len, n_p = int(limits.max()), phrases.lengths.size(1)
    n_banks = int(phrases.total.max()) + 1
    state = model.encode(src, src_mask, need_attention=need_attention, use_cache=use_cache)
    state = state.expand(k)  # (simpler than beam.py's one-row first step)
    scores = torch.full((n, k), _NEG_INF, device=device)
    scores[:, 0] = 0.0  # only beam 0 is alive at t=0: no duplicate beams
    src_len = src.size(1) if need_attention else 0
    empty = _Hyps.empty(n, n_best, max_len, src_len, need_attention, device, with_unmet=True)
    beams = _Beams(
        torch.arange(n, device=device), limits, scores,
        torch.full((n, k, max_len), PAD_ID, dtype=torch.long, device=device),
        torch.zeros((n, k, max_len, src_len), device=device) if need_attention else None,
        _Progress(torch.zeros((n, k, n_p), dtype=torch.bool, device=device),
                  torch.full((n, k), -1, dtype=torch.long, device=device),
                  torch.zeros((n, k), dtype=torch.long, device=device)),
        phrases, torch.zeros(n, dtype=torch.long, device=device), empty,
    )  # fmt: skip
    out = _Hyps.empty(n, n_best, max_len, src_len, need_attention, device, with_unmet=True)
    blocked = blocked_ids(device)
    beam_ids = torch.arange(k, device=device)
    prev = torch.full((n * k,), BOS_ID, dtype=torch.long, device=device)
    for t in range(max_len):
        logits, state, attn = model.decode_step(prev, state)
        phrases, n = beams.phrases, beams.scores.size(0)  # of the live sentences
        attn = attention_of(attn, need_attention, model)
        step_attn = None if attn is None else attn.float().view(n, k, -1)  # (N, K, src_len)
        log_probs = step_log_probs(logits, blocked)
        if steer is not None:
            step = Step(flatten_beams(beams.tokens[:, :, :t]), t,
                        beams.sentence.repeat_interleave(k))  # fmt: skip
            log_probs = steer(step, log_probs)
        vocab = log_probs.size(1)
        log_probs = log_probs.view(-1, k, vocab)
        met = beams.progress.met(phrases)  # (N, K)
        at_limit = beams.limits <= t + 1  # (N,)
        # </s> only once every phrase is met (or at the limit, where everything finishes).
        eos_ok = (met == phrases.total.unsqueeze(1)) | at_limit.unsqueeze(1)
        log_probs[:, :, EOS_ID] = log_probs[:, :, EOS_ID].masked_fill(~eos_ok, _NEG_INF)
        total = log_probs.add_(beams.scores.unsqueeze(2))  # (N, K, V), the step's own tensor
        top_scores, top_index = total.flatten(1).topk(2 * k, dim=1)
        best_scores, best_tokens = total.max(dim=2)  # (N, K)
        allowed = beams.progress.allowed(phrases)  # (N, K, P)
        cons_tokens = allowed.clamp(min=0)
        cons_scores = total.gather(2, cons_tokens).masked_fill(allowed < 0, _NEG_INF)
        cand_parent = torch.cat((top_index.div(vocab, rounding_mode="floor"),
                                 beam_ids.expand(n, k),
                                 beam_ids.repeat_interleave(n_p).expand(n, k * n_p)), dim=1)
        cand_token = torch.cat((top_index.remainder(vocab), best_tokens,
                                cons_tokens.flatten(1)), dim=1)
        cand_score = torch.cat((top_scores, best_scores, cons_scores.flatten(1)), dim=1)
        cand_score = _dedupe(cand_score, cand_parent * vocab + cand_token)
        progress = beams.progress.advance(cand_parent, cand_token, phrases)
        cand_met = progress.met(phrases)
        unmet = phrases.total.unsqueeze(1) - cand_met
        is_eos = cand_token == EOS_ID
        # Finishing: a </s> among the K best continuations (as in beam search; it is allowed
        # only once every phrase is met), or every candidate at the limit.
        eos_finish = is_eos & (cand_score >= top_scores[:, k - 1 : k])
        finishing = (eos_finish | at_limit.unsqueeze(1)) & cand_score.isfinite()
        n_finished = beams.n_finished + (finishing & (unmet == 0)).sum(dim=1)
        live_score = cand_score.masked_fill(is_eos, _NEG_INF)
        chosen = _bank_select(live_score, cand_met, k, n_banks)  # (N, K)
        new_scores = live_score.gather(1, chosen)
        done = (n_finished >= k) | at_limit | new_scores[:, 0].isneginf()
        any_finishing, any_done = torch.stack((finishing.any(), done.any())).tolist()  # one sync
        pool = beams.pool
        if any_finishing:
            tokens = gather_beams(beams.tokens, cand_parent)
            tokens[:, :, t] = cand_token  # a fresh tensor: safe to write
            norm = cand_score / gnmt_penalty(t + 1, length_penalty)
            pool = pool.best_with(_Hyps(norm.masked_fill(~finishing, _NEG_INF), cand_score,
                                        tokens, (t + 1) - is_eos.long(), is_eos,
                                        _extended(beams.attention, step_attn, cand_parent, t),
                                        unmet))  # fmt: skip
        parents = cand_parent.gather(1, chosen)
        tokens = gather_beams(beams.tokens, parents)
        tokens[:, :, t] = cand_token.gather(1, chosen)
        beams = dataclasses.replace(
            beams, scores=new_scores, tokens=tokens, n_finished=n_finished, pool=pool,
            attention=_extended(beams.attention, step_attn, parents, t),
            progress=_Progress(gather_beams(progress.done, chosen),
                               progress.current.gather(1, chosen),
                               progress.position.gather(1, chosen)),
        )  # fmt: skip
        rows = flat_rows(parents, k)
        if any_done:
            _store(out, beams.pool, beams.sentence, done)
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            beams, rows = take_rows(beams, keep), rows.index_select(0, keep)
        state = state.select(flatten_beams(rows))
        prev = flatten_beams(beams.tokens[:, :, t])
    result = collect_hypotheses(out.tokens, out.n_tokens, out.ended, out.raw, out.norm,
                                out.attention, src_mask)  # fmt: skip
    assert out.unmet is not None
    unmet_counts = out.unmet.tolist()
    return SearchResult([
        [dataclasses.replace(h, unmet=unmet_counts[i][j]) for j, h in enumerate(hyps)]
        for i, hyps in enumerate(result.nbest)
    ])  # fmt: skip


def _extended(attention: Tensor | None, step_attn: Tensor | None, parents: Tensor, t: int
              ) -> Tensor | None:  # fmt: skip
    """The attention rows of the ``parents`` ``(N, M)`` with step ``t``'s appended."""
    if attention is None or step_attn is None:
        return None
    rows = gather_beams(attention, parents)  # a fresh tensor: safe to write
    rows[:, :, t] = gather_beams(step_attn, parents)
    return rows
