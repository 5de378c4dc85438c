"""Continuous (iteration-level) batching of greedy search: sentences join and leave a batch
that keeps decoding (Yu et al. 2022, "Orca").

A server's batch mixes sentences of every length. Decoded batch by batch, its last steps run
for a few long sentences while the others have ended, and new requests wait for the whole batch
to end. Here a sentence leaves the batch as soon as it ends (its result is out at once) and new
sentences join between two steps: the batch stays full, and a request waits at most one step
to start. Each row keeps its own position and sees only its own cached keys
(:func:`nmt.models.transformer.join_states`), so a sentence's output is what greedy search
gives it alone, up to float rounding.

Greedy search of a Transformer only: the GRU's state, beam search and the logits processors
keep the batch-at-a-time path (:func:`nmt.decoding.greedy.greedy_search`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from nmt.decoding.lengths import length_penalty as gnmt_penalty
from nmt.decoding.lengths import max_lengths
from nmt.decoding.result import Hypothesis
from nmt.decoding.scoring import BOS_ID, EOS_ID, blocked_ids, step_log_probs
from nmt.models.transformer import (
    Transformer,
    TransformerState,
    join_states,
    own_positions,
    trim_states,
)

__all__ = ["ContinuousGreedy"]

# Compact the batch (drop ended rows) once this share of it has ended: re-indexing the
# key/value cache costs about one step (as a join does), so not after every ending.
_COMPACT_FRACTION = 0.25


@dataclass
class _Row:
    ticket: Hashable
    limit: int  # decoder steps it may take, </s> included
    tokens: list[int]
    score: float = 0.0
    done: bool = False


class ContinuousGreedy:
    """A greedy-search batch that sentences join (:meth:`add`) and leave (:meth:`step`).

    Args:
        model: a Transformer in eval mode.
        max_len_a, max_len_b, max_len_cap, length_penalty: as :func:`~nmt.decoding.greedy.
            greedy_search`.
    """

    def __init__(self, model: Transformer, *, max_len_a: float, max_len_b: int,
                 max_len_cap: int | None, length_penalty: float) -> None:  # fmt: skip
        self.model = model
        self._a, self._b, self._cap, self._alpha = max_len_a, max_len_b, max_len_cap, length_penalty
        self._state: TransformerState | None = None
        self._rows: list[_Row] = []  # one per row of the state, ended rows until compacted
        self._prev: Tensor | None = None  # (rows,) the tokens fed to the next step
        self._blocked: Tensor | None = None

    @property
    def live(self) -> int:
        """Sentences still decoding."""
        return sum(not row.done for row in self._rows)

    @torch.no_grad()
    def add(self, src: Tensor, src_mask: Tensor, tickets: Sequence[Hashable]) -> None:
        """Start decoding the sentences ``src`` ``(n, src_len)`` (mask: True at real tokens,
        every row with at least one), each known by its ticket in :meth:`step`'s results."""
        if src.size(0) != len(tickets):
            raise ValueError(f"{src.size(0)} sentences for {len(tickets)} tickets")
        if not tickets:
            return
        limits = max_lengths(src_mask, self._a, self._b, self._cap).tolist()
        new = own_positions(self.model.encode(src, src_mask))
        self._state = new if self._state is None else join_states(self._state, new)
        bos = torch.full((src.size(0),), BOS_ID, dtype=torch.long, device=src.device)
        self._prev = bos if self._prev is None else torch.cat([self._prev, bos])
        self._rows.extend(_Row(t, int(n), []) for t, n in zip(tickets, limits, strict=True))
        if self._blocked is None:
            self._blocked = blocked_ids(src.device)

    @torch.no_grad()
    def step(self) -> list[tuple[Hashable, Hypothesis]]:
        """One decoder step of every live sentence; the sentences that ended, with their
        hypotheses (as :func:`~nmt.decoding.greedy.greedy_search` reports them)."""
        if self._state is None or self._prev is None or not self.live:
            return []
        assert self._blocked is not None
        logits, self._state, _ = self.model.decode_step(self._prev, self._state)
        log_probs = step_log_probs(logits, self._blocked)
        tokens = log_probs.argmax(dim=-1)
        token_lp = log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1)
        self._prev = tokens
        finished: list[tuple[Hashable, Hypothesis]] = []
        for row, token, lp in zip(self._rows, tokens.tolist(), token_lp.tolist(), strict=True):
            if row.done:
                continue
            row.tokens.append(token)
            row.score = float(np.float32(row.score) + np.float32(lp))  # as greedy sums: fp32
            ended = token == EOS_ID
            if ended or len(row.tokens) >= row.limit:
                row.done = True
                finished.append((row.ticket, self._hypothesis(row, ended)))
        self._compact()
        if self._state is not None and self.live < len(self._rows):
            # Ended rows still step until compacted: keep them within the position table.
            assert self._state.positions is not None
            last = self.model.tgt_embedder.max_positions - 1
            self._state = replace(self._state, positions=self._state.positions.clamp(max=last))
        return finished

    def _hypothesis(self, row: _Row, ended: bool) -> Hypothesis:
        steps = torch.tensor([len(row.tokens)])
        score = torch.tensor([row.score], dtype=torch.float32)
        norm = float((score / gnmt_penalty(steps, self._alpha))[0])  # fp32, as greedy's
        tokens = row.tokens[:-1] if ended else list(row.tokens)
        return Hypothesis(tokens, row.score, norm, None, ended)

    def _compact(self) -> None:
        """Drop the ended rows, once enough have ended."""
        ended = len(self._rows) - self.live
        if self._state is None or not ended or ended < _COMPACT_FRACTION * len(self._rows):
            return
        keep = [i for i, row in enumerate(self._rows) if not row.done]
        if not keep:
            self._state, self._prev, self._rows = None, None, []
            return
        index = torch.tensor(keep, dtype=torch.long, device=self._state.mask.device)
        self._state = trim_states(self._state.select(index))
        assert self._prev is not None
        self._prev = self._prev.index_select(0, index)
        self._rows = [self._rows[i] for i in keep]
