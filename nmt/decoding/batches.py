"""How a list of sources is cut into decoding batches: shared by translate and validation.

Sources are decoded longest first in batches of similar length (little padding, and the
slowest batch first); empty sources are left out (they translate to ``""`` without the
model). A source longer than the model takes is cut to its first ``limit`` tokens: the
Transformer's position table ends, and training saw nothing longer.
"""

from __future__ import annotations

from collections.abc import Sequence


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of the non-empty sources, longest first (ties in input order), in batches of
    at most ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def truncate(ids: list[int], limit: int) -> tuple[list[int], bool]:
    """``ids`` cut to the first ``limit`` tokens, and whether anything was cut."""
    return (ids[:limit], True) if len(ids) > limit else (ids, False)
