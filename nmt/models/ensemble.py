"""An ensemble of models with one target vocabulary, decoded as one model.

At every step each member scores the next token and the ensemble's score is the mean of the
members' log-probabilities (a normalised geometric mean of their distributions, the usual
choice in NMT ensembles); the decoding loops (greedy, beam, sampling, constrained) see a
:class:`~nmt.models.interface.Seq2Seq` like any other, so they need no ensemble code. Members
may differ in architecture (a GRU beside a Transformer) as long as they share the vocabularies;
the attention returned is the mean of theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.models.interface import Seq2Seq

__all__ = ["Ensemble", "EnsembleState"]


@dataclass(frozen=True)
class EnsembleState:
    """One state per member, re-indexed together."""

    members: tuple[Any, ...]

    def select(self, index: Tensor, same_source: bool = False) -> EnsembleState:
        return EnsembleState(tuple(s.select(index, same_source) for s in self.members))

    def expand(self, beam: int) -> EnsembleState:
        return EnsembleState(tuple(s.expand(beam) for s in self.members))


class Ensemble(Seq2Seq[EnsembleState]):
    """Members decoded in lockstep; ``decode_step`` returns the mean of their log-probabilities
    (as logits: a log-softmax of them gives them back, renormalised).

    Args:
        members: two or more models with the same source and target vocabularies.
    """

    def __init__(self, members: Sequence[Seq2Seq]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two models, got {len(members)}")
        self.members = nn.ModuleList(members)

    def _each(self) -> list[Seq2Seq]:
        return list(self.members)  # type: ignore[arg-type]

    def encode(
        self, src: Tensor, src_mask: Tensor, need_attention: bool = False, use_cache: bool = True
    ) -> EnsembleState:
        return EnsembleState(tuple(m.encode(src, src_mask, need_attention, use_cache)
                                   for m in self._each()))  # fmt: skip

    def decode_step(
        self, prev_tokens: Tensor, state: EnsembleState
    ) -> tuple[Tensor, EnsembleState, Tensor | None]:
        log_probs: Tensor | None = None
        attention: Tensor | None = None
        states = []
        for model, member_state in zip(self._each(), state.members, strict=True):
            logits, new_state, attn = model.decode_step(prev_tokens, member_state)
            states.append(new_state)
            lp = F.log_softmax(logits, dim=-1, dtype=torch.float32)
            log_probs = lp if log_probs is None else log_probs + lp
            if attn is not None:
                attention = attn.float() if attention is None else attention + attn.float()
        n = len(states)
        assert log_probs is not None  # at least two members
        return (log_probs / n, EnsembleState(tuple(states)),
                None if attention is None else attention / n)  # fmt: skip

    def forward(
        self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0
    ) -> Tensor:
        """Teacher-forced: the mean of the members' log-probabilities (scoring, not training)."""
        total: Tensor | None = None
        for model in self._each():
            lp = F.log_softmax(model(src, src_mask, tgt_in, teacher_forcing), -1,
                               dtype=torch.float32)  # fmt: skip
            total = lp if total is None else total + lp
        assert total is not None
        return total / len(self.members)
