"""Output length limits and the GNMT length penalty, shared by every search strategy."""

from __future__ import annotations

import math
from typing import overload

from torch import Tensor

__all__ = ["length_penalty", "max_lengths"]


def max_lengths(src_mask: Tensor, a: float, b: int, cap: int | None = None) -> Tensor:
    """Per-sentence output limit ``floor(a * |src| + b)``, at least 1 and at most ``cap``.

    The limit counts decoder steps, the end-of-sentence token included: a hypothesis that
    reaches it without ``</s>`` is cut there and kept as it is.

    Args:
        src_mask: ``(batch, src_len)`` bool, True at real source tokens.
        a: growth with the source length (>= 0).
        b: constant part (may be negative; the limit never drops below 1).
        cap: an absolute ceiling, e.g. the model's positional limit; None for none.

    Returns:
        ``(batch,)`` long tensor of limits.

    Raises:
        ValueError: ``a`` is negative or not finite, or ``cap`` < 1.
    """
    if not math.isfinite(a) or a < 0:
        raise ValueError(f"max_len_a must be a finite number >= 0, got {a!r}")
    if cap is not None and cap < 1:
        raise ValueError(f"max_len cap must be >= 1, got {cap!r}")
    src_lengths = src_mask.sum(dim=1).double()
    limits = (a * src_lengths + b).floor().long().clamp(min=1)
    return limits if cap is None else limits.clamp(max=cap)


@overload
def length_penalty(length: int, alpha: float) -> float: ...
@overload
def length_penalty(length: Tensor, alpha: float) -> Tensor: ...
def length_penalty(length: Tensor | int, alpha: float) -> Tensor | float:
    """GNMT length penalty ``((5 + |y|) / 6) ** alpha`` (Wu et al., 2016, section 7).

    A hypothesis' normalised score is its summed log-probability divided by this; ``alpha = 0``
    gives 1, i.e. the raw log-probability. ``|y|`` counts the scored decoder steps (the
    ``</s>`` included when the hypothesis has one).
    """
    if isinstance(length, int):
        return ((5.0 + length) / 6.0) ** alpha
    return ((5.0 + length.float()) / 6.0).pow(alpha)
