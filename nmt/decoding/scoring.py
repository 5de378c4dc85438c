"""What every search does with a decoder step's output: log-probabilities and attention."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.models.interface import Seq2Seq

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "attention_of", "blocked_ids", "step_log_probs"]


def blocked_ids(device: torch.device) -> Tensor:
    """``(2,)`` ids a search may never output: ``<pad>`` and ``<s>``.

    Built once per search (not per step) so the step does no host-to-device copy.
    """
    return torch.tensor([PAD_ID, BOS_ID], dtype=torch.long, device=device)


def step_log_probs(logits: Tensor, blocked: Tensor) -> Tensor:
    """Log-softmax in float32, then ``-inf`` at the ``blocked`` ids.

    The blocked ids are removed after normalising, so the log-probability of every token a
    search can choose is exactly the model's (what teacher forcing computes).

    Args:
        logits: ``(rows, vocab)`` in any float dtype (bf16 under autocast).
        blocked: ``(n,)`` long ids, from :func:`blocked_ids`.

    Returns:
        ``(rows, vocab)`` float32 log-probabilities (a new tensor; ``logits`` is not modified).
    """
    log_probs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)  # no fp32 copy first
    # In place on the fresh tensor: writes two columns instead of copying the whole matrix.
    return log_probs.index_fill_(-1, blocked, -math.inf)


def attention_of(attn: Tensor | None, need_attention: bool, model: Seq2Seq) -> Tensor | None:
    """The step's attention, checked to be there when it was asked for."""
    if need_attention and attn is None:
        raise RuntimeError(
            f"{type(model).__name__}.decode_step returned no attention although "
            "encode() was called with need_attention=True"
        )
    return attn if need_attention else None
