"""The contract every model meets, so one decoding loop drives the GRU and the Transformer.

A model encodes a source batch once, builds a decoder state from it, and then steps the decoder
one target position at a time. The state carries everything the step needs (encoder memory, its
padding mask, the GRU hidden state or the Transformer key/value cache) and can be re-indexed
along the batch dimension, which is how beam search reorders and expands hypotheses.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

import torch
from torch import Tensor, nn

S = TypeVar("S", bound="DecoderState")


class DecoderState(Protocol):
    """Per-hypothesis decoder state, one row per hypothesis.

    Treat it as opaque: :meth:`select` is the only way to re-index it (a model may keep a
    tensor in another layout, e.g. a GRU's ``(layers, batch, hidden)``). States are immutable:
    ``decode_step`` and ``select`` return new ones and never modify their argument.
    """

    def select(self: S, index: Tensor, same_source: bool = False) -> S:
        """Return a new state whose row ``i`` is row ``index[i]`` of this one.

        Args:
            index: ``(new_batch,)`` long tensor of rows to keep/repeat/reorder.
            same_source: a promise that new row ``i`` decodes the same source sentence as old
                row ``i`` (``index`` only permutes the hypotheses of each sentence, as a beam
                step without finished sentences does). The source-side tensors (memory, masks,
                cross-attention keys/values) are then kept instead of copied.
        """
        ...

    def expand(self: S, beam: int) -> S:
        """Return a new state in which row ``i`` becomes rows ``i*beam .. i*beam+beam-1``.

        Beam search calls it once, after the first step, to give every sentence its ``beam``
        hypotheses. A model may keep the source side at one row per sentence (the
        Transformer's cross-attention then serves all beams of a sentence at once); later
        :meth:`select` calls work in hypothesis rows either way.
        """
        ...


def expanded_rows(rows: int, beam: int, device: torch.device) -> Tensor:
    """The index of :meth:`DecoderState.expand`: ``0, 0, .., 1, 1, ..``, each row ``beam`` times."""
    return torch.arange(rows, device=device).repeat_interleave(beam)


StateT = TypeVar("StateT", bound=DecoderState)


class Seq2Seq(nn.Module, Generic[StateT]):
    """Base class of the models: an encoder-decoder with a step-wise decoder.

    Generic in its state type so that each model's ``decode_step`` is typed with its own state;
    code that drives any model just annotates ``Seq2Seq`` (the state is then ``Any``).

    Token id conventions come from :mod:`nmt.datautil.vocab`: ``pad_id`` is 0, ``bos_id`` 2,
    ``eos_id`` 3. ``src_mask`` is ``True`` at real tokens and ``False`` at padding.
    """

    pad_id: int = 0

    def encode(
        self, src: Tensor, src_mask: Tensor, need_attention: bool = False, use_cache: bool = True
    ) -> StateT:
        """Run the encoder once and return the initial decoder state.

        Args:
            src: ``(batch, src_len)`` token ids; every row has at least one real token.
            src_mask: ``(batch, src_len)`` bool, True at real tokens.
            need_attention: make :meth:`decode_step` return the attention over the source
                (otherwise it returns None, and the Transformer keeps its fused fast path).
            use_cache: the Transformer keeps a key/value cache of the target prefix; False
                re-runs the whole prefix at every step (for benchmarks and tests only; the
                results are the same). Models without a cache ignore it.
        """
        raise NotImplementedError

    def decode_step(
        self, prev_tokens: Tensor, state: StateT
    ) -> tuple[Tensor, StateT, Tensor | None]:
        """Advance the decoder by one position.

        Args:
            prev_tokens: ``(batch,)`` the token chosen at the previous step (``<s>`` first).
            state: as returned by :meth:`encode` or the previous step.

        Returns:
            ``logits`` ``(batch, tgt_vocab)`` for the next token, the new state, and the
            attention over the source ``(batch, src_len)`` (the Transformer's last-layer
            cross-attention averaged over heads), or None unless ``encode`` was called with
            ``need_attention=True``.
        """
        raise NotImplementedError

    def forward(
        self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0
    ) -> Tensor:
        """Teacher-forced training pass.

        Args:
            src: ``(batch, src_len)``; src_mask: ``(batch, src_len)`` bool.
            tgt_in: ``(batch, tgt_len)`` target ids shifted right (starting with ``<s>``).
            teacher_forcing: GRU only; the probability of feeding the gold previous token
                instead of the model's own prediction.

        Returns:
            ``(batch, tgt_len, tgt_vocab)`` logits.
        """
        raise NotImplementedError
