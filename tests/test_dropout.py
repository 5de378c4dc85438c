"""Dropout is PyTorch's own: every p drops (also a small one on a CPU, also in bf16), and the
models hold ``nn.Dropout`` at the configured p."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmt.config import ModelConfig
from nmt.models.factory import build_model

N = 1 << 20  # a million elements: at p = 1e-3 about 1,049 dropped, +-32 (1 sigma)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_small_p_drops_on_the_cpu(dtype: torch.dtype) -> None:
    # The byte-mask dropout this replaced rounded p to a multiple of 1/256: below 1/512 it
    # dropped nothing at all.
    torch.manual_seed(0)
    x = torch.ones(N, dtype=dtype)
    dropped = int((nn.Dropout(1e-3).train()(x) == 0).sum())
    assert 800 < dropped < 1300


@pytest.mark.parametrize("kind", ["transformer", "gru"])
def test_models_drop_at_the_configured_p(kind: str) -> None:
    cfg = ModelConfig(type=kind, d_model=32, hidden_size=32, heads=4, ff_size=64, enc_layers=1,
                      dec_layers=1, dropout=1e-3)  # fmt: skip
    model = build_model(cfg, 50, 50, False)
    dropouts = [m for m in model.modules() if "Dropout" in type(m).__name__]
    assert dropouts and all(type(m) is nn.Dropout and m.p == 1e-3 for m in dropouts)


def test_the_transformer_embedding_dropout_drops_at_a_small_p() -> None:
    torch.manual_seed(1)
    cfg = ModelConfig(type="transformer", d_model=64, heads=4, ff_size=64, enc_layers=1,
                      dec_layers=1, dropout=1e-3)  # fmt: skip
    embedder = build_model(cfg, 50, 50, False).src_embedder  # type: ignore[union-attr]
    ids = torch.randint(4, 50, (128, 128))  # 128 x 128 x 64 = 1,048,576 elements
    kept = embedder.eval()(ids)
    out = embedder.train()(ids)
    dropped = int(((out == 0) & (kept != 0)).sum())
    assert 800 < dropped < 1300
    survivors = out != 0
    torch.testing.assert_close(out[survivors], kept[survivors] / (1 - 1e-3))
