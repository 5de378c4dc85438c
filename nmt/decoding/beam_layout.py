"""Named reshapes between a batch of sentences and its ``batch × beam`` hypotheses.

Beam search keeps hypothesis ``k`` of sentence ``b`` in flat row ``b * beam + k`` (sentence-
major), which is what the model's decoder state sees; these helpers are the only place that
layout is spelled out.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = [
    "expand_to_beams",
    "flat_rows",
    "flatten_beams",
    "gather_beams",
    "take_rows",
    "unflatten_beams",
]

T = TypeVar("T")


def expand_to_beams(x: Tensor, beam: int) -> Tensor:
    """``(batch, ...)`` -> ``(batch * beam, ...)``, each row repeated ``beam`` times in a row."""
    return x.repeat_interleave(beam, dim=0)


def flatten_beams(x: Tensor) -> Tensor:
    """``(batch, beam, ...)`` -> ``(batch * beam, ...)``."""
    return x.flatten(0, 1)


def unflatten_beams(x: Tensor, beam: int) -> Tensor:
    """``(batch * beam, ...)`` -> ``(batch, beam, ...)``."""
    return x.unflatten(0, (x.size(0) // beam, beam))


def flat_rows(beam_index: Tensor, beams_per_row: int) -> Tensor:
    """Per-sentence beam indices ``(batch, k)`` -> rows ``(batch, k)`` of the flat layout.

    Args:
        beam_index: ``(batch, k)`` long, values in ``[0, beams_per_row)``.
        beams_per_row: how many beams each sentence has in the flat tensor being indexed.
    """
    offsets = torch.arange(beam_index.size(0), device=beam_index.device) * beams_per_row
    return beam_index + offsets.unsqueeze(1)


def gather_beams(x: Tensor, beam_index: Tensor) -> Tensor:
    """Pick beams per sentence: ``(batch, m, ...)`` and ``(batch, k)`` -> ``(batch, k, ...)``.

    ``out[b, j] = x[b, beam_index[b, j]]``; a new tensor (one ``index_select`` on the flat
    layout, cheaper than ``gather`` with an expanded index).
    """
    rows = flat_rows(beam_index, x.size(1)).flatten()
    picked = flatten_beams(x).index_select(0, rows)
    return picked.unflatten(0, beam_index.shape)


def take_rows(obj: T, keep: Tensor) -> T:
    """Rows ``keep`` (``(n,)`` long) of every tensor field of a dataclass, recursively.

    Fields that are None stay None; used to drop finished sentences from a running search.
    """
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, Tensor):
            changes[f.name] = value.index_select(0, keep)
        elif dataclasses.is_dataclass(value):
            changes[f.name] = take_rows(value, keep)
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
