"""The arithmetic a Translator decodes in: fp32, bf16 weights, fp16 autocast or int8."""

from __future__ import annotations

import torch
from torch import nn

from nmt import perf
from nmt.errors import ConfigError
from nmt.models.int8 import quantize_linears
from nmt.runtime import resolve_precision

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def prepare_precision(
    model: nn.Module, precision: str, device: torch.device
) -> tuple[bool, torch.dtype | None, torch.dtype | None]:
    """Convert ``model`` (in place, on ``device``) for decoding in ``precision``.

    Returns:
        ``(int8, dtype, autocast_dtype)``: whether matrix products are int8, the arithmetic
        dtype (None = fp32) and the dtype to autocast to while decoding (None = none).

    Raises:
        ConfigError: an unknown precision, or one the device cannot run.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, "
                          f"got {precision!r}")  # fmt: skip
    int8 = precision == "int8"
    if int8:  # refused off the CPU
        quantize_linears(model)  # fp32 arithmetic around int8 matrix products
        perf.release_free_memory()  # the fp32 weights it replaced
    dtype = resolve_precision("fp32" if int8 else precision, device)
    # bf16 decoding casts the weights once instead of running under autocast, which casts
    # every weight matrix again at every step: on a 2-core CPU with native bf16, greedy
    # search of the cmn-eng test set ran 1.37x and beam search 1.10x faster than under
    # autocast, with the same test BLEU (docs/performance.md). fp16 keeps autocast: its
    # range is too narrow for a residual stream kept in fp16.
    autocast_dtype = dtype
    if dtype == torch.bfloat16:
        model.to(torch.bfloat16)
        autocast_dtype = None
        perf.release_free_memory(device)  # the fp32 copy
    return int8, dtype, autocast_dtype
