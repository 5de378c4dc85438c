"""The Transformer: causal, padding-blind, KV-cached steps = teacher forcing, and it learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nmt.config import ModelConfig
from nmt.models.factory import build_model
from nmt.models.transformer import Transformer, sinusoidal_table

PAD, BOS = 0, 2
SRC_V, TGT_V = 23, 19
LAYOUTS = [("pre", "sinusoidal"), ("pre", "learned"), ("post", "sinusoidal"), ("post", "learned")]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and far faster when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def transformer(norm: str = "pre", positions: str = "sinusoidal", **overrides: object):
    settings: dict = dict(d_model=32, heads=4, ff_size=64, enc_layers=2, dec_layers=2, dropout=0.0)
    settings.update(norm=norm, positions=positions, max_positions=64)
    settings.update(overrides)
    model = build_model(ModelConfig(type="transformer", **settings), SRC_V, TGT_V, False)
    assert isinstance(model, Transformer)
    return model.eval()


def padded(lengths: list[int], vocab: int, width: int | None = None) -> tuple[torch.Tensor, ...]:
    """Random ids ``(batch, width)`` with real tokens >= 4 and a mask, True at real tokens."""
    width = width or max(lengths)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    ids = torch.randint(4, vocab, (len(lengths), width)).masked_fill(~mask, PAD)
    return ids, mask


def step_all(model: Transformer, src, mask, tgt_in, use_cache: bool = True):
    """Logits ``(batch, tgt_len, vocab)`` and attention from decode_step, fed the gold prefix."""
    state = model.encode(src, mask, need_attention=True, use_cache=use_cache)
    logits, attention = [], []
    for t in range(tgt_in.size(1)):
        step_logits, state, weights = model.decode_step(tgt_in[:, t], state)
        logits.append(step_logits)
        attention.append(weights)
    return torch.stack(logits, 1), torch.stack(attention, 1)


@pytest.mark.parametrize(("norm", "positions"), LAYOUTS)
def test_cached_and_uncached_steps_equal_the_teacher_forced_forward(norm, positions) -> None:
    torch.manual_seed(0)
    model = transformer(norm, positions)
    src, mask = padded([6, 3, 1], SRC_V)
    tgt_in, _ = padded([5, 5, 5], TGT_V)
    with torch.no_grad():
        forward = model(src, mask, tgt_in)
        cached, attention = step_all(model, src, mask, tgt_in)
        uncached, attention_uncached = step_all(model, src, mask, tgt_in, use_cache=False)
    assert forward.shape == (3, 5, TGT_V)
    torch.testing.assert_close(cached, forward, atol=1e-4, rtol=0)
    torch.testing.assert_close(uncached, forward, atol=1e-4, rtol=0)
    torch.testing.assert_close(attention_uncached, attention, atol=1e-5, rtol=0)


def test_cross_attention_weights_sum_to_one_and_skip_padding() -> None:
    torch.manual_seed(1)
    model = transformer()
    src, mask = padded([6, 3, 1], SRC_V)
    tgt_in, _ = padded([4, 4, 4], TGT_V)
    with torch.no_grad():
        _, attention = step_all(model, src, mask, tgt_in)
        state = model.encode(src, mask)  # need_attention=False: the fused path, no weights
        logits, _, none = model.decode_step(tgt_in[:, 0], state)
        with_weights, _, _ = model.decode_step(tgt_in[:, 0], model.encode(src, mask, True))
    assert attention.shape == (3, 4, 6) and none is None
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 4))
    assert torch.all(attention.masked_select(~mask[:, None, :]) == 0)
    torch.testing.assert_close(logits, with_weights, atol=1e-5, rtol=0)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_a_later_target_token_does_not_change_earlier_logits(norm: str) -> None:
    torch.manual_seed(2)
    model = transformer(norm)
    src, mask = padded([5, 4], SRC_V)
    tgt_in, _ = padded([6, 6], TGT_V)
    changed = tgt_in.clone()
    changed[:, 4] = (changed[:, 4] + 1 - 4) % (TGT_V - 4) + 4
    with torch.no_grad():
        before, after = model(src, mask, tgt_in), model(src, mask, changed)
    torch.testing.assert_close(after[:, :4], before[:, :4], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, 4:], before[:, 4:])


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_source_padding_does_not_change_the_real_outputs(norm: str) -> None:
    torch.manual_seed(3)
    model = transformer(norm)
    src, mask = padded([3, 8], SRC_V)
    tgt_in, _ = padded([5, 5], TGT_V)
    with torch.no_grad():
        alone = model(src[:1, :3], mask[:1, :3], tgt_in[:1])
        in_batch = model(src, mask, tgt_in)
        src[0, 3:] = 7  # garbage under the padding mask changes nothing either
        garbage = model(src, mask, tgt_in)
    torch.testing.assert_close(in_batch[:1], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(garbage, in_batch, atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_cache", [True, False])
def test_select_reorders_and_expands_hypotheses(use_cache: bool) -> None:
    torch.manual_seed(4)
    model = transformer()
    src, mask = padded([4, 2, 3], SRC_V)
    index = torch.tensor([2, 0, 0, 1])  # reorder and repeat, as beam search does
    with torch.no_grad():
        state = model.encode(src, mask, use_cache=use_cache)
        for token in (BOS, 5, 6):  # build a cache of a few positions first
            logits, state, _ = model.decode_step(torch.full((3,), token), state)
        nxt = logits.argmax(-1)
        expected, _, _ = model.decode_step(nxt, state)
        got, new_state, _ = model.decode_step(nxt[index], state.select(index))
    torch.testing.assert_close(got, expected[index])
    assert new_state.steps == 4


def test_positions_beyond_max_positions_are_an_error() -> None:
    model = transformer(max_positions=4)
    src, mask = padded([5], SRC_V)
    with pytest.raises(ValueError, match="max_positions"):
        model(src, mask, src[:, :3])


def test_sinusoidal_table_matches_the_formula() -> None:
    table = sinusoidal_table(10, 6)
    pos, i = 7, 2  # dimensions 2i and 2i+1 use the frequency 1 / 10000^(2i/d)
    angle = torch.tensor(pos / 10000 ** (2 * i / 6))
    torch.testing.assert_close(table[pos, 2 * i], torch.sin(angle))
    torch.testing.assert_close(table[pos, 2 * i + 1], torch.cos(angle))


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_overfits_a_tiny_batch(norm: str) -> None:
    torch.manual_seed(5)
    model = transformer(norm).train()  # no dropout: the loss then really goes to ~0
    src, mask = padded([5, 3, 6, 2, 4, 6, 1, 3], SRC_V)
    tgt, _ = padded([4, 6, 2, 5, 3, 5, 6, 2], TGT_V, width=7)
    tgt_in = F.pad(tgt, (1, 0), value=BOS)[:, :-1]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        logits = model(src, mask, tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_select_within_each_sentence_may_keep_the_source_side() -> None:
    torch.manual_seed(6)
    model = transformer()
    src, mask = padded([4, 2], SRC_V)
    beams = model.encode(src, mask).select(torch.tensor([0, 0, 1, 1]))  # two beams each
    with torch.no_grad():
        _, state, _ = model.decode_step(torch.tensor([5, 6, 7, 8]), beams)
        swap = torch.tensor([1, 0, 3, 2])  # parents from the same sentence
        kept = state.select(swap, same_source=True)
        expected, _, _ = model.decode_step(torch.tensor([9, 9, 9, 9]), state.select(swap))
        got, _, _ = model.decode_step(torch.tensor([9, 9, 9, 9]), kept)
    assert kept.memory_kv is state.memory_kv  # not copied
    torch.testing.assert_close(got, expected)


def test_runs_under_bf16_autocast() -> None:
    model = transformer()
    src, mask = padded([4, 2], SRC_V)
    tgt_in, _ = padded([3, 3], TGT_V)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        forward = model(src, mask, tgt_in)
        state = model.encode(src, mask, need_attention=True)
        for t in range(3):
            logits, state, weights = model.decode_step(tgt_in[:, t], state)
    assert state.self_kv[0][0].dtype == torch.bfloat16  # the cache is kept in bf16 too
    torch.testing.assert_close(logits.float(), forward[:, -1].float(), atol=0.1, rtol=0.05)
    assert weights is not None and torch.all(weights[1, 2:] == 0)


def test_bf16_decoding_on_cpu_attends_in_fp32_until_beams_are_grouped() -> None:
    torch.manual_seed(3)
    model = transformer().to(torch.bfloat16)
    src, mask = padded([4, 2], SRC_V)
    tgt_in, _ = padded([3, 3], TGT_V)
    with torch.no_grad():
        forward = model(src, mask, tgt_in).float()
        state = model.encode(src, mask)
        assert state.memory_kv[0][0].dtype == state.self_kv[0][0].dtype == torch.float32
        logits, state, _ = model.decode_step(tgt_in[:, 0], state)
        assert logits.dtype == torch.bfloat16 and state.self_kv[0][0].dtype == torch.float32
        torch.testing.assert_close(logits.float(), forward[:, 0], atol=0.1, rtol=0.05)
        greedy_state = state
        for t in (1, 2):
            logits, greedy_state, _ = model.decode_step(tgt_in[:, t], greedy_state)
            torch.testing.assert_close(logits.float(), forward[:, t], atol=0.1, rtol=0.05)
        beams = state.expand(2)  # grouped: back to the weights' dtype
        assert beams.memory_kv[0][0].dtype == beams.self_kv[0][0].dtype == torch.bfloat16
        for t in (1, 2):
            logits, beams, _ = model.decode_step(tgt_in[:, t].repeat_interleave(2), beams)
            expected = forward[:, t].repeat_interleave(2, dim=0)
            torch.testing.assert_close(logits.float(), expected, atol=0.1, rtol=0.05)
    fp32 = transformer()
    with torch.no_grad():
        assert fp32.encode(src, mask).expand(2).memory_kv[0][0].dtype == torch.float32


@pytest.mark.parametrize("use_cache", [True, False])
def test_expand_shares_the_source_side_and_equals_copying_it(use_cache: bool) -> None:
    torch.manual_seed(8)
    model = transformer()
    src, mask = padded([4, 2, 3], SRC_V)
    beam = 3
    copied_rows = torch.arange(3).repeat_interleave(beam)
    with torch.no_grad():
        state = model.encode(src, mask, need_attention=True, use_cache=use_cache)
        _, state, _ = model.decode_step(torch.full((3,), BOS), state)
        shared, copied = state.expand(beam), state.select(copied_rows)
        assert shared.group == beam and shared.memory_kv is state.memory_kv  # not copied
        assert copied.group == 1 and copied.memory_kv[0][0].size(0) == 3 * beam
        tokens = torch.tensor([5, 6, 7, 5, 5, 6, 7, 7, 6])
        for _ in range(3):  # a few steps, reordering beams within their sentences in between
            got, shared, got_attn = model.decode_step(tokens, shared)
            expected, copied, expected_attn = model.decode_step(tokens, copied)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
            torch.testing.assert_close(got_attn, expected_attn, atol=1e-6, rtol=0)
            within = torch.tensor([2, 0, 1, 3, 3, 4, 8, 6, 7])
            shared = shared.select(within, same_source=True)
            copied = copied.select(within, same_source=True)
            tokens = got.argmax(-1)[within]


def test_select_after_expand_keeps_sentence_blocks_shared_and_copies_otherwise() -> None:
    torch.manual_seed(9)
    model = transformer()
    src, mask = padded([4, 2, 3], SRC_V)
    with torch.no_grad():
        state = model.encode(src, mask)
        _, state, _ = model.decode_step(torch.full((3,), BOS), state)
        state = state.expand(2)  # rows: sentence 0 -> 0, 1; 1 -> 2, 3; 2 -> 4, 5
        tokens = torch.tensor([5, 6, 7, 8, 9, 5])
        expected, _, _ = model.decode_step(tokens, state)
        # Sentence 1 leaves the batch; beams of the others reordered (as beam search does).
        dropped = state.select(torch.tensor([1, 0, 5, 4]))
        assert dropped.group == 2 and dropped.mask.size(0) == 2
        got, _, _ = model.decode_step(tokens[[1, 0, 5, 4]], dropped)
        torch.testing.assert_close(got, expected[[1, 0, 5, 4]], atol=1e-5, rtol=0)
        # Rows that mix sentences within a block: the source side is copied per row instead.
        mixed = state.select(torch.tensor([0, 2, 4]))
        assert mixed.group == 1 and mixed.mask.size(0) == 3
        got, _, _ = model.decode_step(tokens[[0, 2, 4]], mixed)
        torch.testing.assert_close(got, expected[[0, 2, 4]], atol=1e-5, rtol=0)


# ------------------------------------------------------------------ small-data regularisers


def test_attention_activation_and_layer_dropout_act_in_training_only() -> None:
    torch.manual_seed(0)
    src, mask = padded([5, 3], SRC_V)
    tgt_in = torch.randint(4, TGT_V, (2, 4))
    plain = transformer()
    for name, value in (("attention_dropout", 0.5), ("activation_dropout", 0.5),
                        ("layer_dropout", 0.5)):  # fmt: skip
        model = transformer(**{name: value})
        model.load_state_dict(plain.state_dict())  # the same keys as without it
        with torch.no_grad():
            torch.testing.assert_close(model(src, mask, tgt_in), plain(src, mask, tgt_in))
            model.train()
            draws = {tuple(model(src, mask, tgt_in).flatten()[:8].tolist()) for _ in range(8)}
        assert len(draws) > 1, name  # in training, the masks (or skipped layers) vary


def test_a_dropped_layer_is_skipped_whole() -> None:
    model = transformer(layer_dropout=0.999999).train()  # every layer skipped
    src, mask = padded([4], SRC_V)
    tgt_in = torch.randint(4, TGT_V, (1, 3))
    with torch.no_grad():
        out = model(src, mask, tgt_in)
        # The output is the embedding through the final norm and the output layer alone.
        direct = model.generator(model.decoder_norm(model.tgt_embedder(tgt_in)))
    torch.testing.assert_close(out, direct)
