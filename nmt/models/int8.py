"""int8 weights for CPU decoding: every ``nn.Linear`` becomes an :class:`Int8Linear`.

Each weight row is quantized once to int8 with its own scale (symmetric, per output channel);
each input is quantized to uint8 on the fly with one scale per call ("dynamic" quantization),
and FBGEMM multiplies the two in integers and returns fp32. Everything else (embeddings, layer
norms, attention, the GRU cells) stays fp32.

Why: on a 2-core CPU the decoder's matrices are small (64-320 rows by 256-4,500 columns), too
small for bf16 kernels to reach their peak. Measured on the cmn-eng Transformers
(docs/performance.md), FBGEMM's int8 kernels decode 1.2-1.3x faster than bf16 weights, with
the same test BLEU. PyTorch's wrapper for them (``torch.ao.quantization.quantize_dynamic``) is
deprecated, so this module calls the kernels directly, and raises
:class:`~nmt.errors.ConfigError` where the running PyTorch does not have them.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from nmt.errors import ConfigError

__all__ = ["Int8Linear", "int8_available", "quantize_linears"]


def _kernels_present() -> bool:
    ops = torch.ops.quantized
    kernels = ("linear_prepack", "linear_dynamic", "linear_relu_dynamic")
    return all(hasattr(ops, name) for name in kernels)


def int8_available() -> bool:
    """Whether this PyTorch build has FBGEMM's dynamic int8 linear kernels (x86 CPUs)."""
    return "fbgemm" in torch.backends.quantized.supported_engines and _kernels_present()


class Int8Linear(nn.Module):
    """``nn.Linear`` with int8 weights (one scale per output row) and dynamic uint8 inputs."""

    def __init__(self, linear: nn.Linear, relu: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.relu = relu
        ops = torch.ops.quantized  # ReLU(linear(x)) in the same kernel when relu
        self._kernel = ops.linear_relu_dynamic if relu else ops.linear_dynamic
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        bias = None if linear.bias is None else linear.bias.detach().float()
        with warnings.catch_warnings():
            # Quantized tensors are deprecated in favour of torchao; the packing kernel below
            # still takes one, and the packed result is all this module keeps.
            warnings.simplefilter("ignore")
            qweight = torch.quantize_per_channel(
                weight, scale.double(), torch.zeros_like(scale, dtype=torch.long), 0, torch.qint8
            )
            self._packed = torch.ops.quantized.linear_prepack(qweight, bias)

    def forward(self, x: Tensor) -> Tensor:
        # reduce_range: 7-bit inputs, so the u8 x s8 pair sums of the AVX2/AVX-512 kernels
        # cannot saturate their 16-bit accumulators.
        return self._kernel(x.float(), self._packed, True)

    def extra_repr(self) -> str:
        relu = ", relu" if self.relu else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, int8{relu}"


def quantize_linears(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` (an fp32 CPU model) by an :class:`Int8Linear`.

    Works in place and returns ``model``. Linear layers that share a weight (a generator tied to
    the target embedding) get their own int8 copy; the embedding keeps its fp32 weight. A
    ``Linear`` followed by a ``ReLU`` in an ``nn.Sequential`` computes both (the ReLU becomes
    ``nn.Identity``): 5-25% faster for that layer at decoding sizes.

    Raises:
        ConfigError: this PyTorch build has no FBGEMM int8 kernels, or the model is not
            on the CPU.
    """
    if not int8_available():
        raise ConfigError(
            "precision: int8 decoding needs PyTorch's FBGEMM kernels (x86 CPU builds); this "
            f"build has the quantized engines {torch.backends.quantized.supported_engines}"
        )
    elsewhere = sorted({p.device.type for p in model.parameters()} - {"cpu"})
    if elsewhere:
        raise ConfigError(f"precision: int8 decoding runs on the CPU, not {', '.join(elsewhere)}; "
                          "use bf16 or fp16 on a GPU")  # fmt: skip
    torch.backends.quantized.engine = "fbgemm"
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for i, (name, child) in enumerate(children):
            if type(child) is not nn.Linear:
                continue
            # Linear -> ReLU in a Sequential (the Transformer's feed-forward block): one kernel.
            after = children[i + 1][1] if i + 1 < len(children) else None
            fuse = isinstance(parent, nn.Sequential) and type(after) is nn.ReLU
            setattr(parent, name, Int8Linear(child, relu=fuse))
            if fuse:
                setattr(parent, children[i + 1][0], nn.Identity())
    return model
