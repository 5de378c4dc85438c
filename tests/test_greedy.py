"""Greedy search against the oracle model (expected results derived by hand) and a tiny GRU."""

from __future__ import annotations

import math

import pytest
import torch
from oracle import GREEDY_TRAP, A, B, C, D, Forever, OracleModel, Table, TinyRandomModel, batch

from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.decoding import greedy_search, length_penalty, max_lengths


def test_greedy_follows_the_most_probable_token() -> None:
    model = OracleModel({A: GREEDY_TRAP})
    (hyp,) = greedy_search(model, *batch([A, B]), length_penalty=0.0)[0]
    assert hyp.tokens == [A] and hyp.ended
    assert hyp.score == pytest.approx(math.log(0.5 * 0.4))
    assert hyp.norm_score == pytest.approx(hyp.score)
    assert model.encode_calls == 1


def test_norm_score_uses_the_gnmt_penalty_over_steps_with_eos() -> None:
    model = OracleModel({A: GREEDY_TRAP})
    (hyp,) = greedy_search(model, *batch([A]), length_penalty=1.0)[0]
    assert hyp.norm_score == pytest.approx(math.log(0.2) / ((5 + 2) / 6))
    assert length_penalty(2, 0.0) == 1.0


def test_eos_first_gives_an_empty_hypothesis() -> None:
    model = OracleModel({A: {(): {EOS_ID: 0.7, A: 0.3}}})
    (hyp,) = greedy_search(model, *batch([A]))[0]
    assert hyp.tokens == [] and hyp.ended and hyp.score == pytest.approx(math.log(0.7))


def test_pad_and_bos_are_never_output_but_unk_is() -> None:
    table: Table = {(): {PAD_ID: 0.4, BOS_ID: 0.3, UNK_ID: 0.2, A: 0.1}, (UNK_ID,): {EOS_ID: 1}}
    (hyp,) = greedy_search(OracleModel({A: table}), *batch([A]))[0]
    assert hyp.tokens == [UNK_ID]
    assert hyp.score == pytest.approx(math.log(0.2))  # the model's own log-probability


def test_max_len_is_respected_per_sentence() -> None:
    model = OracleModel({A: Forever({A: 0.9, EOS_ID: 0.1})})
    src, mask = batch([A, B], [A, B, C, D])
    limits = max_lengths(mask, 1.0, 1)
    assert limits.tolist() == [3, 5]
    result = greedy_search(model, src, mask, max_len_a=1.0, max_len_b=1)
    for (hyp,), limit in zip(result, limits.tolist(), strict=True):
        assert hyp.tokens == [A] * limit and not hyp.ended
        assert hyp.score == pytest.approx(limit * math.log(0.9))
    assert max_lengths(mask, 0.0, -5).tolist() == [1, 1]
    assert max_lengths(mask, 2.0, 0, cap=6).tolist() == [4, 6]
    with pytest.raises(ValueError):
        max_lengths(mask, -1.0, 0)


def test_batch_of_different_sentences_equals_each_alone() -> None:
    tables: dict[int, Table] = {
        A: GREEDY_TRAP,
        B: Forever({C: 0.6, EOS_ID: 0.4}),
        C: {(): {D: 1.0}},
    }
    sources = [[A, D], [B, C, D, A, B], [C]]
    together = greedy_search(OracleModel(tables), *batch(*sources), need_attention=True)
    for source, hyps in zip(sources, together, strict=True):
        (alone,) = greedy_search(OracleModel(tables), *batch(source), need_attention=True)[0]
        assert hyps[0].tokens == alone.tokens and hyps[0].score == alone.score
        assert alone.attention is not None and hyps[0].attention is not None
        assert torch.equal(hyps[0].attention, alone.attention)


def test_ended_sentences_leave_the_batch_without_changing_results() -> None:
    # One long sentence and seven that end at once: after the first step the batch shrinks.
    tables: dict[int, Table] = {A: Forever({A: 0.9, EOS_ID: 0.1}), B: {(): {EOS_ID: 1.0}}}
    model = OracleModel(tables)
    result = greedy_search(model, *batch([A] * 5, *[[B]] * 7), max_len_a=1.0, max_len_b=0)
    assert model.step_rows == [8, 1, 1, 1, 1]
    assert result[0][0].tokens == [A] * 5
    assert all(hyps[0].tokens == [] for hyps in result.nbest[1:])


def test_attention_follows_the_hypothesis() -> None:
    model = OracleModel({A: {(): {C: 1.0}, (C,): {D: 1.0}}})
    src, mask = batch([A, B, A], [A])  # the second row is padded
    result = greedy_search(model, src, mask, need_attention=True)
    first = result[0][0]
    assert first.tokens == [C, D] and first.attention is not None
    # Row i is one-hot at (token fed at step i) % |src|: <s>=2 -> 2, then C=6 -> 0.
    assert first.attention.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    assert result[1][0].attention is not None and result[1][0].attention.shape == (2, 1)


def test_no_attention_unless_asked() -> None:
    (hyp,) = greedy_search(OracleModel({A: GREEDY_TRAP}), *batch([A]))[0]
    assert hyp.attention is None


def test_score_is_the_teacher_forced_log_probability() -> None:
    model = TinyRandomModel(seed=3)
    src = torch.tensor([[4, 5, 6, 4], [6, 6, 0, 0]])
    result = greedy_search(model, src, src != PAD_ID, max_len_a=0.0, max_len_b=6)
    for row, (hyp,) in zip(src, result, strict=True):
        real = row[row != PAD_ID].unsqueeze(0)
        assert hyp.score == pytest.approx(model.sequence_log_prob(real, hyp.tokens, hyp.ended))


def test_inputs_are_not_modified() -> None:
    src, mask = batch([A, B], [A])
    before = (src.clone(), mask.clone())
    greedy_search(OracleModel({A: GREEDY_TRAP}), src, mask, need_attention=True)
    assert torch.equal(src, before[0]) and torch.equal(mask, before[1])
