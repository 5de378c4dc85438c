"""The contract every model meets, so one decoding loop drives the GRU and the Transformer.

A model encodes a source batch once, builds a decoder state from it, and then steps the decoder
one target position at a time. The state carries everything the step needs (encoder memory, its
padding mask, the GRU hidden state or the Transformer key/value cache) and can be re-indexed
along the batch dimension, which is how beam search reorders and expands hypotheses.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from torch import Tensor, nn

S = TypeVar("S", bound="DecoderState")


class DecoderState(Protocol):
    """Per-hypothesis decoder state; every tensor in it has the batch as dimension 0."""

    def select(self: S, index: Tensor) -> S:
        """Return a new state whose row ``i`` is row ``index[i]`` of this one.

        Args:
            index: ``(new_batch,)`` long tensor of rows to keep/repeat/reorder.
        """
        ...


class Seq2Seq(nn.Module):
    """Base class of the models: an encoder-decoder with a step-wise decoder.

    Token id conventions come from :mod:`nmt.datautil.vocab`: ``pad_id`` is 0, ``bos_id`` 2,
    ``eos_id`` 3. ``src_mask`` is ``True`` at real tokens and ``False`` at padding.
    """

    pad_id: int = 0

    def encode(self, src: Tensor, src_mask: Tensor) -> DecoderState:
        """Run the encoder once and return the initial decoder state.

        Args:
            src: ``(batch, src_len)`` token ids.
            src_mask: ``(batch, src_len)`` bool, True at real tokens.
        """
        raise NotImplementedError

    def decode_step(
        self, prev_tokens: Tensor, state: DecoderState
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """Advance the decoder by one position.

        Args:
            prev_tokens: ``(batch,)`` the token chosen at the previous step (``<s>`` first).
            state: as returned by :meth:`encode` or the previous step.

        Returns:
            ``logits`` ``(batch, tgt_vocab)`` for the next token, the new state, and the
            attention over the source ``(batch, src_len)`` (the Transformer's last-layer
            cross-attention averaged over heads), or None when the model was asked not to
            compute it.
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
