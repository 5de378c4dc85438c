"""int8 decoding weights (nmt.models.int8): what they compute, and what they replace."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmt.errors import ConfigError
from nmt.models import int8
from nmt.models.int8 import Int8Linear, int8_available, quantize_linears

pytestmark = pytest.mark.skipif(
    not int8_available(), reason="this PyTorch build has no FBGEMM int8 kernels (x86 CPU builds)"
)


def _relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).detach().norm() / theirs.detach().norm())


@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_computes_the_linear_layer(bias: bool) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 96, bias=bias)
    quantized = Int8Linear(linear)
    x = torch.randn(3, 5, 64)  # leading dimensions are kept, as nn.Linear keeps them
    ours, theirs = quantized(x), linear(x)
    assert ours.shape == theirs.shape == (3, 5, 96) and ours.dtype == torch.float32
    assert _relative_error(ours, theirs) < 0.02  # 8-bit weights, 7-bit inputs
    assert not torch.equal(ours, theirs)  # it is not the fp32 layer in disguise


def test_rows_get_their_own_scale() -> None:
    # One row 1,000x larger than the others: a single scale for the matrix would round every
    # small row to zero; a scale per output row keeps them.
    linear = nn.Linear(32, 4, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(4, 32))
        linear.weight[0] *= 1000
    x = torch.randn(8, 32)
    ours, theirs = Int8Linear(linear)(x), linear(x)
    assert _relative_error(ours[:, 1:], theirs[:, 1:]) < 0.02


def test_quantize_replaces_every_linear_and_leaves_the_rest() -> None:
    torch.manual_seed(0)
    embedding = nn.Embedding(50, 16)
    generator = nn.Linear(16, 50, bias=False)
    generator.weight = embedding.weight  # tied, as the factory ties them
    model = nn.Sequential(embedding, nn.Linear(16, 16), nn.LayerNorm(16), nn.ReLU(), generator)
    ids = torch.tensor([[1, 2, 3]])
    expected = model(ids)
    before = embedding.weight.detach().clone()
    assert quantize_linears(model) is model
    kinds = [type(m) for m in model]
    assert kinds == [nn.Embedding, Int8Linear, nn.LayerNorm, nn.ReLU, Int8Linear]
    assert torch.equal(embedding.weight, before)  # the tied embedding keeps its fp32 weight
    assert _relative_error(model(ids), expected) < 0.03


def test_linear_then_relu_in_a_sequential_is_one_kernel() -> None:
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
    x = torch.randn(4, 16)
    expected = block(x)
    quantize_linears(block)
    first, second, last, relu = block
    assert isinstance(first, Int8Linear) and first.relu and isinstance(second, nn.Identity)
    assert isinstance(last, Int8Linear) and last.relu and isinstance(relu, nn.Identity)
    out = block(x)
    assert (out >= 0).all() and _relative_error(out, expected) < 0.03
    # Outside a Sequential the order of calls is unknown: nothing is fused.
    parallel = nn.ModuleDict({"a": nn.Linear(4, 4), "b": nn.ReLU()})
    quantize_linears(parallel)
    assert not parallel["a"].relu and type(parallel["b"]) is nn.ReLU


def test_quantize_refuses_a_model_off_the_cpu() -> None:
    model = nn.Sequential(nn.Linear(4, 4)).to("meta")
    with pytest.raises(ConfigError, match="precision: int8 decoding runs on the CPU"):
        quantize_linears(model)


def test_quantize_names_the_missing_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(int8, "int8_available", lambda: False)
    with pytest.raises(ConfigError, match="precision: int8 decoding needs PyTorch's FBGEMM"):
        quantize_linears(nn.Linear(4, 4))
