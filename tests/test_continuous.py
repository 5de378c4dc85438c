"""nmt.decoding.continuous: sentences that join a running greedy batch, at any step, get what
greedy search gives each of them alone."""

from __future__ import annotations

import pytest
import torch

from nmt.config import ModelConfig
from nmt.decoding import greedy_search
from nmt.decoding.continuous import ContinuousGreedy
from nmt.models.factory import build_model
from nmt.models.transformer import Transformer

PAD = 0
SRC_V, TGT_V = 31, 29


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model_and_batch(n: int, seed: int = 0, max_positions: int = 64, **model: object):
    torch.manual_seed(seed)
    cfg = ModelConfig(type="transformer", d_model=32, heads=4, ff_size=64, enc_layers=2,
                      dec_layers=2, dropout=0.0, max_positions=max_positions, **model)
    net = build_model(cfg, SRC_V, TGT_V, False).eval()
    assert isinstance(net, Transformer)
    # the model is random: it mostly ends by the length limit, so vary the limits by source
    lengths = torch.randint(1, 13, (n,))
    width = int(lengths.max())
    mask = torch.arange(width)[None, :] < lengths[:, None]
    src = torch.randint(4, SRC_V, (n, width)).masked_fill(~mask, PAD)
    return net, src, mask


def alone(model: Transformer, src: torch.Tensor, mask: torch.Tensor, i: int, **limits):
    n = int(mask[i].sum())
    return greedy_search(model, src[i : i + 1, :n], mask[i : i + 1, :n], **limits).best()[0]


@pytest.mark.parametrize("variant", [{}, {"norm": "post", "positions": "learned"}])
def test_sentences_joining_at_any_step_decode_as_they_would_alone(variant: dict) -> None:
    model, src, mask = model_and_batch(24, **variant)
    limits = dict(max_len_a=1.0, max_len_b=3, max_len_cap=None, length_penalty=1.0)
    batch = ContinuousGreedy(model, **limits)
    results = {}
    # joins of 6 at steps 0, 2, 3 and 7; trimming each joiner's padding to its own length
    # checks that a row never depends on how wide the source side of the batch is
    joins = {0: range(0, 6), 2: range(6, 12), 3: range(12, 18), 7: range(18, 24)}
    step = 0
    while step in joins or batch.live:
        if step in joins:
            rows = list(joins[step])
            width = int(mask[rows].sum(1).max())
            batch.add(src[rows, :width], mask[rows, :width], rows)
        results.update(batch.step())
        step += 1
    assert sorted(results) == list(range(24))
    for i in range(24):
        expected = alone(model, src, mask, i, **limits)
        got = results[i]
        assert got.tokens == expected.tokens, f"sentence {i}"
        assert got.ended == expected.ended
        assert got.score == pytest.approx(expected.score, abs=1e-4)
        assert got.norm_score == pytest.approx(expected.norm_score, abs=1e-4)


def test_rows_that_ended_never_step_past_the_position_table() -> None:
    # Every sentence may take all 16 positions; a row that ends early keeps stepping (ended
    # rows are compacted in bulk) while later joiners run to the limit.
    model, src, mask = model_and_batch(12, max_positions=16)
    limits = dict(max_len_a=0.0, max_len_b=16, max_len_cap=16, length_penalty=0.0)
    batch = ContinuousGreedy(model, **limits)
    done = {}
    for step in range(40):
        if step % 5 == 0 and step < 30:
            rows = [step // 5 * 2, step // 5 * 2 + 1]
            batch.add(src[rows], mask[rows], rows)
        done.update(batch.step())
    while batch.live:
        done.update(batch.step())
    assert sorted(done) == list(range(12))
    assert all(len(h.tokens) <= 16 for h in done.values())
    for i in (0, 11):
        assert done[i].tokens == alone(model, src, mask, i, **limits).tokens


def test_an_empty_batch_steps_to_nothing_and_tickets_must_match() -> None:
    model, src, mask = model_and_batch(2)
    batch = ContinuousGreedy(model, max_len_a=1.0, max_len_b=2, max_len_cap=None,
                             length_penalty=1.0)
    assert batch.step() == [] and batch.live == 0
    with pytest.raises(ValueError, match="2 sentences for 1 tickets"):
        batch.add(src, mask, ["only one"])
    batch.add(src, mask, ["a", "b"])
    assert batch.live == 2
