"""Dropout whose CPU masks cost a few random bytes instead of a random float per element.

``nn.Dropout`` on a CPU draws one random number per element from PyTorch's generator
(``bernoulli_``) on a single thread: for the recipe Transformer's ~4k-token batches that took
~10 ms per mask, 17 masks a step, about 8% of an fp32 training step on 2 cores (profiled;
docs/performance.md). Here each 64-bit draw of the same generator gives eight independent
uniform bytes, and an element is kept when its byte is at least ``round(p * 256)``. So ``p`` is
used rounded to a multiple of 1/256 (0.2 -> 0.1992), and the kept elements are scaled by
``1 / (1 - p_rounded)``: the expectation is exact, as in ``nn.Dropout``. The backward pass
multiplies by the same mask, kept as bool (one byte per element, as ``nn.Dropout`` keeps it).

Other devices use ``F.dropout``: their generators are fast, and fused kernels exist there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Dropout", "byte_keep_mask"]

_INT64_MIN = -(2**63)


def byte_keep_mask(shape: torch.Size, threshold: int, device: torch.device) -> Tensor:
    """A bool mask of ``shape``: True with probability ``(256 - threshold) / 256`` each."""
    n = shape.numel()
    # random_ from INT64_MIN to the dtype's max: all 64 bits uniform, i.e. 8 uniform bytes.
    words = torch.empty((n + 7) // 8, dtype=torch.int64, device=device).random_(_INT64_MIN, None)
    return (words.view(torch.uint8)[:n] >= threshold).view(shape)


class _MaskedScale(torch.autograd.Function):
    """``x * mask * scale``, saving only the bool mask for the backward pass."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, mask: Tensor,
                scale: float) -> Tensor:
        ctx.save_for_backward(mask)
        ctx.scale = scale  # type: ignore[attr-defined]
        return x.mul(mask).mul_(scale)  # (masked_fill with ~mask measured 4x slower)

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor, None, None]:
        (mask,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad.mul(mask).mul_(ctx.scale), None, None  # type: ignore[attr-defined]


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout(p)`` (zeroes elements in training, identity in eval).

    Args:
        p: probability of an element being zeroed, ``0 <= p < 1``; on a CPU it is rounded to a
            multiple of 1/256 (see the module docstring).
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = round(p * 256)
        self.scale = 256 / (256 - self.threshold)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        mask = byte_keep_mask(x.shape, self.threshold, x.device)
        out: Tensor = _MaskedScale.apply(x, mask, self.scale)
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}"
