"""Label-smoothed cross entropy: padding ignored, sums exact for accumulation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nmt.training.loss import label_smoothed_loss, rdrop_loss


def test_no_smoothing_equals_cross_entropy_sum() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7)
    target = torch.tensor([[4, 5, 0], [6, 0, 0]])
    out = label_smoothed_loss(logits, target, 0.0, pad_id=0)
    ref = F.cross_entropy(logits.view(-1, 7), target.view(-1), ignore_index=0, reduction="sum")
    assert torch.allclose(out.loss, ref) and torch.allclose(out.nll, ref)
    assert out.tokens.item() == 3


def test_smoothing_matches_torch_and_padding_is_ignored() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 9)
    target = torch.tensor([[4, 5, 6, 0], [7, 8, 0, 0]])
    out = label_smoothed_loss(logits, target, 0.1, pad_id=0)
    ref = F.cross_entropy(
        logits.view(-1, 9), target.view(-1), ignore_index=0, reduction="sum", label_smoothing=0.1
    )
    assert torch.allclose(out.loss, ref, atol=1e-5)
    # Changing the logits at padded positions changes nothing.
    logits2 = logits.clone()
    logits2[0, 3] = 100.0
    assert torch.equal(label_smoothed_loss(logits2, target, 0.1).loss, out.loss)


def test_sums_split_over_batches_add_up() -> None:
    torch.manual_seed(2)
    logits = torch.randn(4, 5, 11)
    target = torch.randint(1, 11, (4, 5))
    target[1, 3:] = 0
    whole = label_smoothed_loss(logits, target, 0.2)
    parts = [label_smoothed_loss(logits[i : i + 2], target[i : i + 2], 0.2) for i in (0, 2)]
    assert torch.allclose(whole.loss, parts[0].loss + parts[1].loss)
    assert whole.tokens == parts[0].tokens + parts[1].tokens


def test_nan_logits_give_nan_loss_and_bad_smoothing_is_refused() -> None:
    logits = torch.full((1, 1, 5), math.nan)
    assert torch.isnan(label_smoothed_loss(logits, torch.tensor([[4]])).loss)
    with pytest.raises(ValueError):
        label_smoothed_loss(logits, torch.tensor([[4]]), 1.0)


# ------------------------------------------------------------------ R-Drop


def test_rdrop_of_two_equal_passes_is_the_plain_loss() -> None:
    torch.manual_seed(3)
    logits = torch.randn(2, 4, 9)
    target = torch.tensor([[4, 5, 6, 0], [7, 8, 0, 0]])
    plain = label_smoothed_loss(logits, target, 0.1)
    out = rdrop_loss(torch.cat([logits, logits]), target, 0.1, alpha=5.0)
    torch.testing.assert_close(out.loss, plain.loss)  # no KL between equal distributions
    torch.testing.assert_close(out.nll, plain.nll)
    assert out.tokens.item() == plain.tokens.item() == 5


def test_rdrop_adds_alpha_times_the_symmetric_kl_of_real_tokens() -> None:
    torch.manual_seed(4)
    first, second = torch.randn(2, 4, 9), torch.randn(2, 4, 9)
    target = torch.tensor([[4, 5, 6, 0], [7, 8, 0, 0]])
    out = rdrop_loss(torch.cat([first, second]), target, 0.1, alpha=2.0)
    keep = target.view(-1) != 0
    lp1 = F.log_softmax(first, -1).view(-1, 9)[keep]
    lp2 = F.log_softmax(second, -1).view(-1, 9)[keep]
    kl = (F.kl_div(lp2, lp1, log_target=True, reduction="sum")  # KL(p1 || p2)
          + F.kl_div(lp1, lp2, log_target=True, reduction="sum"))  # KL(p2 || p1)
    mean_ce = (label_smoothed_loss(first, target, 0.1).loss
               + label_smoothed_loss(second, target, 0.1).loss) / 2
    torch.testing.assert_close(out.loss, mean_ce + 2.0 * kl / 2)
    # Padded positions count in neither term.
    changed = second.clone()
    changed[1, 3] = 50.0
    torch.testing.assert_close(rdrop_loss(torch.cat([first, changed]), target, 0.1, alpha=2.0)
                               .loss, out.loss)
    with pytest.raises(ValueError, match="two passes"):
        rdrop_loss(first, target)
