"""Constrained beam search: every phrase appears, unconstrained sentences are untouched, and an
impossible constraint is reported, against the oracle and a tiny random model."""

from __future__ import annotations

import pytest
import torch
from oracle import A, B, C, D, Forever, OracleModel, Table, TinyRandomModel, batch

from nmt.datautil.vocab import EOS_ID
from nmt.decoding import beam_search
from nmt.decoding.constrained import constrained_beam_search

E, F = 8, 9
VOCAB = 10
ANY: Table = Forever({A: 0.3, B: 0.2, C: 0.1, D: 0.1, E: 0.05, F: 0.05, EOS_ID: 0.2})


def contains(tokens: list[int], phrase: list[int]) -> bool:
    n = len(phrase)
    return any(tokens[i:i + n] == phrase for i in range(len(tokens) - n + 1))


@pytest.mark.parametrize("seed", range(4))
def test_every_phrase_appears(seed: int) -> None:
    model = TinyRandomModel(seed=seed, vocab_size=VOCAB)
    src, mask = batch([A, B, C], [D], [B, B])
    constraints = [[[E]], [[F, E], [D]], []]
    result = constrained_beam_search(model, src, mask, constraints, beam_size=4, n_best=2,
                                     max_len_a=1.0, max_len_b=4)  # fmt: skip
    for hyps, phrases in zip(result, constraints, strict=True):
        best = hyps[0]
        assert best.unmet == 0
        assert all(contains(best.tokens, p) for p in phrases), (best.tokens, phrases)
        norms = [h.norm_score for h in hyps]
        assert norms == sorted(norms, reverse=True)


@pytest.mark.parametrize("seed", range(3))
def test_no_constraints_is_beam_search(seed: int) -> None:
    model = TinyRandomModel(seed=seed, vocab_size=VOCAB)
    src, mask = batch([A, B, C], [D], [B, B, A, C])
    plain = beam_search(model, src, mask, beam_size=4, max_len_a=1.0, max_len_b=3)
    none = constrained_beam_search(model, src, mask, [[], [], []], beam_size=4, max_len_a=1.0,
                                   max_len_b=3)  # fmt: skip
    assert [h[0].tokens for h in none] == [h[0].tokens for h in plain]
    assert [h[0].score for h in none] == pytest.approx([h[0].score for h in plain], abs=1e-5)


def test_the_score_is_the_model_probability() -> None:
    model = TinyRandomModel(seed=3, vocab_size=VOCAB)
    src, mask = batch([A, C])
    best = constrained_beam_search(model, src, mask, [[[F, D]]], beam_size=3,
                                   max_len_a=0.0, max_len_b=6)[0][0]  # fmt: skip
    assert contains(best.tokens, [F, D])
    assert best.score == pytest.approx(model.sequence_log_prob(src, best.tokens, best.ended),
                                      abs=1e-4)


def test_a_phrase_left_midway_is_started_again() -> None:
    # The oracle prefers A after E, but the phrase is E F: the output must hold E F together.
    model = OracleModel({A: ANY}, vocab_size=VOCAB)
    best = constrained_beam_search(model, *batch([A]), [[[E, F]]], beam_size=3,
                                   max_len_a=0.0, max_len_b=6)[0][0]  # fmt: skip
    assert contains(best.tokens, [E, F])


def test_a_constraint_the_limit_cannot_hold_is_reported() -> None:
    model = OracleModel({A: ANY}, vocab_size=VOCAB)
    cap = 3  # the model's positions: 3 tokens, no room for a 4-token phrase and </s>
    best = constrained_beam_search(model, *batch([A]), [[[E, F, E, F]]], beam_size=2,
                                   max_len_a=0.0, max_len_b=10, max_len_cap=cap)[0][0]
    assert best.unmet > 0 and not best.ended and len(best.tokens) <= cap


def test_bad_constraints_raise() -> None:
    model = TinyRandomModel(seed=0, vocab_size=VOCAB)
    src, mask = batch([A])
    with pytest.raises(ValueError, match="at least one token"):
        constrained_beam_search(model, src, mask, [[[]]])
    with pytest.raises(ValueError, match="constraint lists"):
        constrained_beam_search(model, src, mask, [[], []])
    assert torch.equal(src, batch([A])[0])


def test_a_transformer_meets_its_constraints_and_is_unchanged_without() -> None:
    from test_search_transformer import model_and_batch

    model, src, mask = model_and_batch(6, seed=2)
    plain = beam_search(model, src, mask, beam_size=4, max_len_a=1.0, max_len_b=3)
    none = constrained_beam_search(model, src, mask, [[]] * 6, beam_size=4, max_len_a=1.0,
                                   max_len_b=3)  # fmt: skip
    assert [h[0].tokens for h in none] == [h[0].tokens for h in plain]
    constraints = [[[5, 6]], [], [[7], [8]], [[9, 10, 11]], [], [[12]]]
    result = constrained_beam_search(model, src, mask, constraints, beam_size=4,
                                     max_len_a=1.0, max_len_b=3)  # fmt: skip
    for hyps, phrases in zip(result, constraints, strict=True):
        assert hyps[0].unmet == 0
        assert all(contains(hyps[0].tokens, p) for p in phrases)
    assert [result[i][0].tokens for i in (1, 4)] == [plain[i][0].tokens for i in (1, 4)]


def test_attention_is_tracked_per_hypothesis() -> None:
    from test_beam import LENGTHS

    model = OracleModel({A: LENGTHS})
    src, mask = batch([A, C, D, B, A], [A, C, D, B])
    result = constrained_beam_search(model, src, mask, [[[C]], []], beam_size=3, n_best=3,
                                     need_attention=True)  # fmt: skip
    for hyps, src_len in zip(result, (5, 4), strict=True):
        for h in hyps:
            fed = [2] + h.tokens[:-1]  # <s>, then each output token but the last
            assert h.attention is not None and h.attention.shape == (len(h.tokens), src_len)
            assert h.attention.argmax(1).tolist() == [f % src_len for f in fed]
    assert contains(result[0][0].tokens, [C])


def test_a_transformer_keeps_the_attention_of_what_it_output() -> None:
    from test_search_transformer import model_and_batch

    model, src, mask = model_and_batch(4, seed=3)
    constraints = [[[5, 6]], [], [[7]], [[9, 10]]]
    result = constrained_beam_search(model, src, mask, constraints, beam_size=4, n_best=2,
                                     max_len_a=1.0, max_len_b=3, need_attention=True)  # fmt: skip
    for i, hyps in enumerate(result):
        n_src = int(mask[i].sum())
        for h in hyps:
            # teacher-forced: the same tokens fed again give the same attention rows
            state = model.encode(src[i : i + 1], mask[i : i + 1], need_attention=True)
            rows = []
            for token in [2, *h.tokens[:-1]] if h.tokens else []:
                _, state, attn = model.decode_step(torch.tensor([token]), state)
                rows.append(attn[0, :n_src])
            assert h.attention is not None
            if rows:
                assert torch.allclose(h.attention, torch.stack(rows), atol=1e-5)
