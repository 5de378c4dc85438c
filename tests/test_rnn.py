"""The attentional GRU: stepwise = teacher-forced, padding-blind, reorderable, and it learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nmt.config import ModelConfig
from nmt.models.factory import build_model
from nmt.models.rnn import RNNSeq2Seq

PAD, BOS, EOS = 0, 2, 3
SRC_V, TGT_V = 23, 19

VARIANTS = {
    "bahdanau": dict(attention="bahdanau"),
    "luong-general-feed": dict(attention="luong", luong_score="general", input_feeding=True),
    "luong-dot": dict(attention="luong", luong_score="dot", input_feeding=False),
    "luong-concat-feed": dict(attention="luong", luong_score="concat", input_feeding=True),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and far faster when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gru(variant: str = "bahdanau", **overrides: object) -> RNNSeq2Seq:
    settings: dict = dict(d_model=16, hidden_size=24, enc_layers=2, dec_layers=2, dropout=0.0)
    settings.update(VARIANTS[variant], **overrides)
    model = build_model(ModelConfig(type="gru", **settings), SRC_V, TGT_V, shared_vocab=False)
    assert isinstance(model, RNNSeq2Seq)
    return model.eval()


def padded(lengths: list[int], vocab: int, width: int | None = None) -> tuple[torch.Tensor, ...]:
    """Random ids ``(batch, width)`` with real tokens >= 4 and a mask, True at real tokens."""
    width = width or max(lengths)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    ids = torch.randint(4, vocab, (len(lengths), width)).masked_fill(~mask, PAD)
    return ids, mask


def step_all(model: RNNSeq2Seq, src: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor):
    """Logits ``(batch, tgt_len, vocab)`` and attention from decode_step, fed the gold prefix."""
    state = model.encode(src, mask, need_attention=True)
    logits, attention = [], []
    for t in range(tgt_in.size(1)):
        step_logits, state, weights = model.decode_step(tgt_in[:, t], state)
        logits.append(step_logits)
        attention.append(weights)
    return torch.stack(logits, 1), torch.stack(attention, 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_decode_step_equals_teacher_forced_forward(variant: str) -> None:
    torch.manual_seed(0)
    model = gru(variant)
    src, mask = padded([5, 3, 1], SRC_V)
    tgt_in, _ = padded([4, 4, 4], TGT_V)
    with torch.no_grad():
        forward = model(src, mask, tgt_in)
        stepped, attention = step_all(model, src, mask, tgt_in)
    assert forward.shape == (3, 4, TGT_V)
    torch.testing.assert_close(stepped, forward, atol=1e-4, rtol=0)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 4))
    assert torch.all(attention.masked_select(~mask[:, None, :]) == 0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_source_padding_does_not_change_the_real_outputs(variant: str) -> None:
    torch.manual_seed(1)
    model = gru(variant)
    src, mask = padded([3, 7], SRC_V)
    tgt_in, _ = padded([5, 5], TGT_V)
    with torch.no_grad():
        alone = model(src[:1, :3], mask[:1, :3], tgt_in[:1])
        in_batch = model(src, mask, tgt_in)
    torch.testing.assert_close(in_batch[:1], alone, atol=1e-5, rtol=0)


def test_attention_is_returned_only_on_request() -> None:
    model = gru()
    src, mask = padded([2, 3], SRC_V)
    _, _, weights = model.decode_step(torch.full((2,), BOS), model.encode(src, mask))
    assert weights is None


@pytest.mark.parametrize("variant", ["bahdanau", "luong-general-feed"])
def test_select_reorders_and_expands_hypotheses(variant: str) -> None:
    torch.manual_seed(2)
    model = gru(variant)
    src, mask = padded([4, 2, 3], SRC_V)
    prev = torch.tensor([BOS, BOS, BOS])
    index = torch.tensor([2, 0, 0, 1])  # reorder, repeat (beam expansion), drop nothing
    with torch.no_grad():
        logits, state, _ = model.decode_step(prev, model.encode(src, mask))
        nxt = logits.argmax(-1)
        expected, _, _ = model.decode_step(nxt, state)
        got, _, _ = model.decode_step(nxt[index], state.select(index))
    torch.testing.assert_close(got, expected[index])


def test_teacher_forcing_zero_feeds_back_the_argmax() -> None:
    torch.manual_seed(3)
    model = gru("luong-general-feed")
    src, mask = padded([4, 2], SRC_V)
    tgt_in, _ = padded([5, 5], TGT_V)
    tgt_in[:, 0] = BOS
    with torch.no_grad():
        sampled = model(src, mask, tgt_in, teacher_forcing=0.0)
        state, prev, greedy = model.encode(src, mask), tgt_in[:, 0], []
        for _ in range(5):
            logits, state, _ = model.decode_step(prev, state)
            greedy.append(logits)
            prev = logits.argmax(-1)
    torch.testing.assert_close(sampled, torch.stack(greedy, 1))


def test_scheduled_sampling_follows_the_global_seed() -> None:
    model = gru()
    src, mask = padded([4, 2, 5, 3], SRC_V)
    tgt_in, _ = padded([6, 6, 6, 6], TGT_V)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(model(src, mask, tgt_in, teacher_forcing=0.5))
    torch.testing.assert_close(runs[0], runs[1])


def train(model: RNNSeq2Seq, batches, steps: int, lr: float) -> float:
    """Adam on ``batches(step) -> (src, mask, tgt_in, tgt_out)``; returns the last loss."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        src, mask, tgt_in, tgt_out = batches(step)
        logits = model(src, mask, tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return loss.item()


def test_overfits_a_tiny_batch() -> None:
    torch.manual_seed(4)
    model = gru()  # no dropout: the loss of a memorised batch then really goes to ~0
    src, mask = padded([5, 3, 6, 2, 4, 6, 1, 3], SRC_V)
    tgt, _ = padded([4, 6, 2, 5, 3, 5, 6, 2], TGT_V, width=7)
    tgt_in = F.pad(tgt, (1, 0), value=BOS)[:, :-1]
    assert train(model, lambda _: (src, mask, tgt_in, tgt), steps=150, lr=1e-2) < 0.05


def reversal_batch(n: int, symbols: int = 10) -> tuple[torch.Tensor, ...]:
    """Random strings of 3-8 symbols (ids 4..) and their reversal: src, mask, tgt_in, tgt_out."""
    lengths = torch.randint(3, 9, (n,))
    mask = torch.arange(8)[None, :] < lengths[:, None]
    src = torch.randint(4, 4 + symbols, (n, 8)).masked_fill(~mask, PAD)
    # reversing the real part: position j of the output is position len-1-j of the input
    idx = (lengths[:, None] - 1 - torch.arange(8)[None, :]).clamp(min=0)
    rev = src.gather(1, idx).masked_fill(~mask, PAD)
    tgt_out = F.pad(rev, (0, 1), value=PAD).scatter(1, lengths[:, None], EOS)
    tgt_in = F.pad(rev, (1, 0), value=BOS)
    return src, mask, tgt_in, tgt_out


def test_learns_to_reverse_strings_with_greedy_decoding() -> None:
    torch.manual_seed(5)
    settings = dict(d_model=32, hidden_size=64, enc_layers=1, dec_layers=1, dropout=0.0)
    model = build_model(ModelConfig(type="gru", **settings), 14, 14, shared_vocab=False)
    assert isinstance(model, RNNSeq2Seq)
    train(model, lambda _: reversal_batch(64), steps=250, lr=5e-3)

    src, mask, _, tgt_out = reversal_batch(300)
    with torch.no_grad():  # greedy decoding, one step at a time
        state, prev, hyp = model.encode(src, mask), torch.full((300,), BOS), []
        for _ in range(tgt_out.size(1)):
            logits, state, _ = model.decode_step(prev, state)
            prev = logits.argmax(-1)
            hyp.append(prev)
    hyp_ids = torch.stack(hyp, 1)
    real = tgt_out != PAD  # compare up to and including </s>
    exact = ((hyp_ids == tgt_out) | ~real).all(1).float().mean().item()
    assert exact >= 0.95, f"exact match {exact:.3f}"


def test_select_within_each_sentence_may_keep_the_source_side() -> None:
    torch.manual_seed(6)
    model = gru("luong-general-feed")
    src, mask = padded([4, 2], SRC_V)
    beams = model.encode(src, mask).select(torch.tensor([0, 0, 1, 1]))  # two beams each
    with torch.no_grad():
        _, state, _ = model.decode_step(torch.tensor([5, 6, 7, 8]), beams)
        swap = torch.tensor([1, 0, 3, 2])  # parents from the same sentence
        kept = state.select(swap, same_source=True)
        expected, _, _ = model.decode_step(torch.tensor([9, 9, 9, 9]), state.select(swap))
        got, _, _ = model.decode_step(torch.tensor([9, 9, 9, 9]), kept)
    assert kept.memory is state.memory  # not copied
    torch.testing.assert_close(got, expected)
