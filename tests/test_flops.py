"""The analytic FLOP count agrees with torch's FLOP counter on the same forward pass."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nmt.config import ModelConfig
from nmt.models.factory import build_model
from nmt.models.flops import forward_flops, training_flops

SRC_V, TGT_V, S, T = 50, 40, 7, 5


def counted(cfg: ModelConfig) -> int:
    """FLOPs torch's counter sees in one unpadded teacher-forced forward pass."""
    torch.manual_seed(0)
    model = build_model(cfg, SRC_V, TGT_V, False).eval()
    src, tgt = torch.randint(4, SRC_V, (1, S)), torch.randint(4, TGT_V, (1, T))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(src, src != 0, tgt)
    return counter.get_total_flops()


def test_transformer_matches_the_counter_plus_attention() -> None:
    cfg = ModelConfig(type="transformer", d_model=32, heads=4, ff_size=64, enc_layers=2,
                      dec_layers=3, dropout=0.0)
    d = cfg.d_model
    # The counter does not see CPU SDPA: add QKᵀ and AV of every attention by hand.
    attention = 2 * 2 * d * (2 * S * S + 3 * (T * T + T * S))
    assert forward_flops(cfg, TGT_V, [S], [T]) == counted(cfg) + attention


@pytest.mark.parametrize(
    "attention", [dict(attention="bahdanau"), dict(attention="luong", luong_score="general"),
                  dict(attention="luong", luong_score="concat", input_feeding=False)],
)
def test_gru_matches_the_counter(attention: dict) -> None:
    cfg = ModelConfig(type="gru", d_model=24, hidden_size=32, enc_layers=2, dec_layers=2,
                      dropout=0.0, **attention)
    assert forward_flops(cfg, TGT_V, [S], [T]) == counted(cfg)


def test_sentences_add_up_and_training_is_three_forwards() -> None:
    cfg = ModelConfig(type="transformer", d_model=32, heads=4, ff_size=64)
    one, two = forward_flops(cfg, TGT_V, [3], [4]), forward_flops(cfg, TGT_V, [6], [2])
    assert forward_flops(cfg, TGT_V, [3, 6], [4, 2]) == one + two
    assert training_flops(cfg, TGT_V, [3], [4]) == 3 * one
    with pytest.raises(ValueError, match="lengths"):
        forward_flops(cfg, TGT_V, [3], [])
