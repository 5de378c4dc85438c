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
    return _smoothed_sums(_log_probs(logits), target.reshape(-1), smoothing, pad_id)


def rdrop_loss(
    logits: Tensor, target: Tensor, smoothing: float = 0.0, pad_id: int = 0, alpha: float = 1.0
) -> LossSums:
    """R-Drop (Liang et al. 2021): the label-smoothed loss of two forward passes of one batch
    through a model with dropout, plus ``alpha`` x their symmetric KL divergence.

    Args:
        logits: ``(2 * batch, tgt_len, vocab)``: the batch's first pass, then its second (the
            batch repeated along dim 0 and run once: each copy draws its own dropout masks).
        target: ``(batch, tgt_len)`` gold ids of one copy.
        smoothing, pad_id: as :func:`label_smoothed_loss`.
        alpha: weight of ``(KL(p1||p2) + KL(p2||p1)) / 2`` per target token.

    Returns:
        Sums per target token of one copy: ``loss`` is the mean of the two passes' smoothed
        losses plus the KL term, so that its scale (and the learning rate's) is the plain
        loss's; ``nll`` the mean of the two NLLs; ``tokens`` one copy's count.
    """
    if logits.size(0) != 2 * target.size(0):
        raise ValueError(f"R-Drop needs two passes: {logits.size(0)} rows of logits for "
                         f"{target.size(0)} targets")
    lprobs = _log_probs(logits)  # (2 * b * t, vocab)
    flat_target = target.reshape(-1)
    both = _smoothed_sums(lprobs, flat_target.repeat(2), smoothing, pad_id)
    first, second = lprobs.chunk(2)
    # KL(p1||p2) + KL(p2||p1) = sum_v (p1 - p2)(log p1 - log p2): one pass over the vocabulary
    kl = ((first.exp() - second.exp()) * (first - second)).sum(dim=-1)
    kl_sum = torch.where(flat_target != pad_id, kl, torch.zeros_like(kl)).sum()
    return LossSums(both.loss / 2 + alpha * kl_sum / 2, both.nll / 2, both.tokens // 2)


def _log_probs(logits: Tensor) -> Tensor:
    """``(batch, len, vocab)`` -> ``(batch * len, vocab)`` fp32 log-probabilities."""
    # fp32 log-softmax: under bf16/fp16 autocast the normaliser loses too many digits.
    # (In one op: no separate fp32 copy of bf16 logits.)
    return F.log_softmax(logits, dim=-1, dtype=torch.float32).flatten(0, 1)


def _smoothed_sums(lprobs: Tensor, flat_target: Tensor, smoothing: float, pad_id: int
                   ) -> LossSums:  # fmt: skip
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
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
