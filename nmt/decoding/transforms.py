"""Logits warpers for sampling: temperature, then top-k, then top-p (nucleus).

Each warper is a small pure function over the last dimension of ``(..., vocab)`` logits that
returns a new tensor (the input is never modified) with every filtered entry set to ``-inf``,
and is the identity when switched off. :func:`warp_logits` composes them in the order Hugging
Face's ``generate`` applies ``TemperatureLogitsWarper``, ``TopKLogitsWarper`` and
``TopPLogitsWarper``, and gives the same values as those three applied in turn.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["apply_temperature", "check_warp_args", "top_k_filter", "top_p_filter", "warp_logits"]

_FILTERED = -math.inf


def _check_temperature(temperature: float) -> None:
    finite = isinstance(temperature, (int, float)) and math.isfinite(temperature)
    if isinstance(temperature, bool) or not finite or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def _check_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {top_k!r}")


def _check_top_p(top_p: float) -> None:
    number = isinstance(top_p, (int, float)) and not isinstance(top_p, bool)
    if not number or not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p!r}")


def check_warp_args(temperature: float, top_k: int, top_p: float) -> None:
    """Raise ``ValueError`` unless :func:`warp_logits` accepts these arguments."""
    _check_temperature(temperature)
    _check_top_k(top_k)
    _check_top_p(top_p)


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Divide ``logits`` by ``temperature`` (< 1 sharpens, > 1 flattens); 1.0 is the identity.

    Raises:
        ValueError: ``temperature`` is not a finite number > 0.
    """
    _check_temperature(temperature)
    return logits if temperature == 1.0 else logits / temperature


def top_k_filter(logits: Tensor, top_k: int) -> Tensor:
    """Keep the ``top_k`` largest logits per row, and every logit tied with the k-th; 0 is off.

    Raises:
        ValueError: ``top_k`` is not an integer >= 0.
    """
    _check_top_k(top_k)
    if top_k == 0 or top_k >= logits.size(-1):
        return logits
    # Comparing with the k-th value (not keeping exactly k indices) keeps ties, as HF does.
    kth_largest = torch.topk(logits, top_k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, _FILTERED)


def top_p_filter(logits: Tensor, top_p: float) -> Tensor:
    """Keep the smallest set of most probable tokens whose probability mass reaches ``top_p``.

    The algorithm is Hugging Face's: sort ascending, drop tokens whose cumulative probability is
    ``<= 1 - top_p``, and always keep the most probable token. 1.0 is off.

    Raises:
        ValueError: ``top_p`` is not in (0, 1].
    """
    _check_top_p(top_p)
    if top_p == 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1.0 - top_p)
    remove_sorted[..., -1] = False  # min_tokens_to_keep = 1: the most probable token stays
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, _FILTERED)


def warp_logits(
    logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> Tensor:
    """Apply temperature, then top-k, then top-p to ``logits``, as Hugging Face's warpers do.

    Args:
        logits: ``(..., vocab)`` unnormalised scores (log-probabilities work as well: every
            warper is invariant to adding a constant per row).
        temperature: > 0; 1.0 leaves the logits as they are.
        top_k: keep the k most likely tokens (and those tied with the k-th); 0 is off.
        top_p: keep the smallest set of tokens with probability mass >= top_p; 1.0 is off.

    Returns:
        A new ``(..., vocab)`` tensor, equal to ``logits`` except that filtered entries are
        ``-inf``; at least one entry per row stays finite. The input is never modified.

    Raises:
        ValueError: an argument is out of range (temperature <= 0, top_k < 0,
            top_p outside (0, 1]).
    """
    warped = apply_temperature(logits, temperature)
    warped = top_k_filter(warped, top_k)
    warped = top_p_filter(warped, top_p)
    # Every warper returns its input when off: copy so callers may always own the result.
    return warped.clone() if warped is logits else warped
