"""Dropout with byte masks: nn.Dropout's behaviour, p rounded to 1/256, masks from the seed."""

from __future__ import annotations

import pytest
import torch

from nmt.models.dropout import Dropout, byte_keep_mask

N = 1 << 20  # a million elements: the kept fraction is known to about +-0.0004 (1 sigma)


def test_eval_and_zero_p_are_the_identity() -> None:
    x = torch.randn(4, 5)
    drop = Dropout(0.3).eval()
    assert drop(x) is x
    assert Dropout(0.0).train()(x) is x


def test_rejects_impossible_p() -> None:
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="dropout probability"):
            Dropout(p)


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_kept_elements_are_scaled_and_the_rate_is_p_rounded(p: float) -> None:
    drop = Dropout(p).train()
    x = torch.rand(N) + 0.5  # no zeros: a zero in the output means dropped
    y = drop(x)
    kept = y != 0
    p_used = round(p * 256) / 256
    assert abs(p_used - p) <= 1 / 512
    assert kept.float().mean().item() == pytest.approx(1 - p_used, abs=0.003)
    assert torch.allclose(y[kept], x[kept] / (1 - p_used))
    # The expectation is exact: the mean is kept (to sampling noise).
    assert y.mean().item() == pytest.approx(x.mean().item(), rel=0.01)


def test_every_byte_of_a_draw_is_uniform_and_neighbours_independent() -> None:
    mask = byte_keep_mask(torch.Size([N]), 128, torch.device("cpu")).float()  # p = 1/2
    per_byte = mask.view(-1, 8).mean(dim=0)  # a biased byte (e.g. a sign bit) would show here
    assert torch.allclose(per_byte, torch.full((8,), 0.5), atol=0.005)
    both = (mask[:-1] * mask[1:]).mean().item()
    assert both == pytest.approx(0.25, abs=0.004)


def test_gradient_is_the_same_mask_scaled() -> None:
    drop = Dropout(0.25).train()
    x = (torch.rand(1000, 64) + 0.5).requires_grad_()
    y = drop(x)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    assert x.grad is not None
    kept = (y != 0).float()
    assert torch.allclose(x.grad, upstream * kept / 0.75)


def test_masks_follow_the_seed_and_work_in_bf16() -> None:
    drop = Dropout(0.2).train()
    x = torch.ones(256, 256, dtype=torch.bfloat16)
    torch.manual_seed(3)
    first = drop(x)
    torch.manual_seed(3)
    assert torch.equal(drop(x), first)
    assert not torch.equal(drop(x), first)  # the generator moved on
    assert first.dtype == torch.bfloat16
