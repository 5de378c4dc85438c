"""Label-smoothed cross entropy that returns sums, so gradient accumulation is exact.

Returning ``(loss_sum, nll_sum, n_tokens)`` instead of a mean lets the trainer divide by the
token count of the whole accumulated step (and, under data parallelism, of all ranks), which a
per-batch mean cannot do without weighting errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LossSums:
    """Sums over the non-padding target positions of a batch (all 0-dim device tensors)."""

    loss: Tensor  # label-smoothed loss, the training objective
    nll: Tensor  # plain negative log-likelihood (for perplexity)
    tokens: Tensor  # number of non-padding positions


def label_smoothed_loss(
    logits: Tensor, target: Tensor, smoothing: float = 0.0, pad_id: int = 0
) -> LossSums:
    """Cross entropy against ``(1 - eps) * one_hot + eps / V`` (Szegedy et al. 2016, sec. 7).

    Args:
        logits: ``(batch, tgt_len, vocab)`` raw scores (any float dtype; computed in fp32).
        target: ``(batch, tgt_len)`` gold ids; positions equal to ``pad_id`` are ignored.
        smoothing: ``eps`` in ``[0, 1)``; 0 gives plain cross entropy.
        pad_id: the padding id.

    Returns:
        The summed smoothed loss, the summed NLL and the token count.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
    # fp32 log-softmax: under bf16/fp16 autocast the normaliser loses too many digits.
    # (In one op: no separate fp32 copy of bf16 logits.)
    lprobs = F.log_softmax(logits, dim=-1, dtype=torch.float32).flatten(0, 1)  # (b*t, vocab)
    flat_target = target.reshape(-1)
    keep = flat_target != pad_id
    nll = -lprobs.gather(1, flat_target.unsqueeze(1)).squeeze(1)
    nll = torch.where(keep, nll, torch.zeros_like(nll))
    nll_sum = nll.sum()
    if smoothing > 0.0:
        uniform = -lprobs.mean(dim=-1)  # cross entropy against the uniform distribution
        uniform = torch.where(keep, uniform, torch.zeros_like(uniform))
        loss_sum = (1.0 - smoothing) * nll_sum + smoothing * uniform.sum()
    else:
        loss_sum = nll_sum
    return LossSums(loss_sum, nll_sum, keep.sum())
