"""Beam search against the oracle model (results derived on paper) and a tiny random GRU."""

from __future__ import annotations

import math

import pytest
import torch
from oracle import (
    GREEDY_TRAP,
    A,
    B,
    C,
    D,
    Forever,
    OracleModel,
    Table,
    TinyRandomModel,
    all_sequences,
    batch,
    sequence_prob,
)

from nmt.config import DecodeConfig
from nmt.datautil.vocab import EOS_ID, PAD_ID, UNK_ID
from nmt.decoding import beam_search, greedy_search, sample_search, search
from nmt.decoding.beam_layout import expand_to_beams, flatten_beams, gather_beams, unflatten_beams

# Start A .55 / B .45. A: </s> .6 or D .4 (then </s>); B: C .6 or </s> .4; B C: D (then </s>).
# Complete hypotheses: [A] .33 (2 steps), [B C D] .27 (4), [A D] .22 (3), [B] .18 (2).
# Beam 3, traced by hand: t=1 finishes [A] and keeps B C, A D; t=2 finishes [A D] and keeps
# B C D; t=3 finishes [B C D], the third finished hypothesis, so the search stops.
LENGTHS: Table = {
    (): {A: 0.55, B: 0.45},
    (A,): {EOS_ID: 0.6, D: 0.4},
    (B,): {C: 0.6, EOS_ID: 0.4},
    (B, C): {D: 1.0},
}


def gnmt(p: float, steps: int, alpha: float) -> float:
    return math.log(p) / ((5 + steps) / 6) ** alpha


def test_beam_finds_what_greedy_misses() -> None:
    model = OracleModel({A: GREEDY_TRAP})
    # Beam 2: t=0 keeps A, B; t=1 ranks B</s> .36, A</s> .2 first: both finish, search done.
    hyps = beam_search(model, *batch([A]), beam_size=2, n_best=2, length_penalty=0.0)[0]
    assert [h.tokens for h in hyps] == [[B], [A]]
    assert [h.score for h in hyps] == pytest.approx([math.log(0.36), math.log(0.2)])
    assert [h.norm_score for h in hyps] == pytest.approx([h.score for h in hyps])
    assert greedy_search(model, *batch([A]))[0][0].tokens == [A]


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [(0.0, [[A], [B, C, D], [A, D]]), (1.0, [[B, C, D], [A], [A, D]])],
)
def test_length_penalty_changes_the_winner(alpha: float, expected: list[list[int]]) -> None:
    model = OracleModel({A: LENGTHS})
    hyps = beam_search(model, *batch([A]), beam_size=3, n_best=3, length_penalty=alpha)[0]
    assert [h.tokens for h in hyps] == expected
    probs = {(A,): 0.33, (B, C, D): 0.27, (A, D): 0.22}
    for h in hyps:
        p = probs[tuple(h.tokens)]
        assert h.ended and h.score == pytest.approx(math.log(p))
        assert h.norm_score == pytest.approx(gnmt(p, len(h.tokens) + 1, alpha))
    assert [h.norm_score for h in hyps] == sorted((h.norm_score for h in hyps), reverse=True)


def test_n_best_is_a_prefix_of_the_full_list() -> None:
    model = OracleModel({A: LENGTHS})
    three = beam_search(model, *batch([A]), beam_size=3, n_best=3, length_penalty=1.0)[0]
    one = beam_search(model, *batch([A]), beam_size=3, n_best=1, length_penalty=1.0)[0]
    assert len(one) == 1 and one[0] == three[0]


def test_fewer_hypotheses_than_n_best_when_the_space_is_small() -> None:
    model = OracleModel({A: {(): {A: 1.0}}})  # only [A] has a non-zero probability
    hyps = beam_search(model, *batch([A]), beam_size=4, n_best=4)[0]
    assert [h.tokens for h in hyps] == [[A]] and hyps[0].score == pytest.approx(0.0)


def test_max_len_cuts_every_sentence_at_its_own_limit() -> None:
    # </s> never reaches the top 2 candidates, so both sentences run to max_len = |src| + 1.
    model = OracleModel({A: Forever({A: 0.9, B: 0.09, EOS_ID: 0.01})})
    result = beam_search(
        model, *batch([A, B], [A, B, C, D]), beam_size=2, n_best=2, max_len_a=1.0, max_len_b=1
    )
    for hyps, limit in zip(result, [3, 5], strict=True):
        assert hyps[0].tokens == [A] * limit
        # The runner-up has one B somewhere (positions tie).
        assert len(hyps[1].tokens) == limit and hyps[1].tokens.count(B) == 1
        assert not any(h.ended for h in hyps)
        assert hyps[0].score == pytest.approx(limit * math.log(0.9))
        assert hyps[1].score == pytest.approx((limit - 1) * math.log(0.9) + math.log(0.09))
    # Step 1 runs one row per sentence (all beams start from <s>); the short sentence
    # left the batch after 3 steps.
    assert model.step_rows == [2, 4, 4, 2, 2]


def test_batch_of_different_sentences_equals_each_alone() -> None:
    spread: Table = {(): {C: 0.5, D: 0.3, EOS_ID: 0.2}, (C,): {C: 0.4, EOS_ID: 0.6}, (D,): {D: 0.3}}
    tables = {A: GREEDY_TRAP, B: LENGTHS, C: spread}
    sources = [[A, D], [B, C, D, A, B], [C, A]]
    kwargs = {"beam_size": 3, "n_best": 2, "length_penalty": 0.6, "need_attention": True}
    together = beam_search(OracleModel(tables), *batch(*sources), **kwargs)
    for source, hyps in zip(sources, together, strict=True):
        alone = beam_search(OracleModel(tables), *batch(source), **kwargs)[0]
        assert [(h.tokens, h.score, h.norm_score, h.ended) for h in hyps] == [
            (h.tokens, h.score, h.norm_score, h.ended) for h in alone
        ]
        for mine, theirs in zip(hyps, alone, strict=True):
            assert mine.attention is not None and theirs.attention is not None
            assert torch.equal(mine.attention, theirs.attention)


def test_attention_is_tracked_per_hypothesis() -> None:
    model = OracleModel({A: LENGTHS})
    src, mask = batch([A, C, D, B, A])  # 5 tokens: attention lands on (fed token) % 5
    hyps = beam_search(model, src, mask, beam_size=3, n_best=3, need_attention=True)[0]
    for h in hyps:
        fed = [2] + h.tokens[:-1]  # <s>, then each output token but the last
        assert h.attention is not None and h.attention.shape == (len(h.tokens), 5)
        assert h.attention.argmax(1).tolist() == [f % 5 for f in fed]


def test_scores_are_summed_log_probs_of_the_oracle() -> None:
    table = {(): {A: 0.5, B: 0.3, UNK_ID: 0.2}, (A,): {A: 0.5, EOS_ID: 0.5}, (B,): {EOS_ID: 1.0}}
    hyps = beam_search(OracleModel({A: table}), *batch([A]), beam_size=4, n_best=4)[0]
    for h in hyps:
        assert h.score == pytest.approx(math.log(sequence_prob(table, h.tokens, h.ended)))


@pytest.mark.parametrize("seed", range(4))
def test_beam_size_one_equals_greedy(seed: int) -> None:
    model = TinyRandomModel(seed=seed)
    src = torch.randint(4, 7, (6, 5), generator=torch.Generator().manual_seed(seed))
    src[2:, 3:] = PAD_ID
    opts = {"max_len_a": 1.0, "max_len_b": 2, "length_penalty": 0.7, "need_attention": True}
    beam = beam_search(model, src, src != PAD_ID, beam_size=1, **opts)
    greedy = greedy_search(model, src, src != PAD_ID, **opts)
    for (b,), (g,) in zip(beam, greedy, strict=True):
        assert (b.tokens, b.ended) == (g.tokens, g.ended)
        assert b.score == pytest.approx(g.score) and b.norm_score == pytest.approx(g.norm_score)
        assert b.attention is not None and g.attention is not None
        assert torch.allclose(b.attention, g.attention)


@pytest.mark.parametrize(("seed", "alpha"), [(0, 0.0), (1, 1.0), (2, 0.5), (3, 0.0)])
def test_a_beam_as_wide_as_the_search_space_finds_the_best(seed: int, alpha: float) -> None:
    model = TinyRandomModel(seed=seed)
    src = torch.tensor([[4, 6, 5]])
    # 3 steps over 4 tokens (<unk> 4 5 6): at most 64 live prefixes; beam 64 keeps them all.
    hyps = beam_search(
        model,
        src,
        src != PAD_ID,
        beam_size=64,
        n_best=5,
        length_penalty=alpha,
        max_len_a=0.0,
        max_len_b=3,
    )[0]
    scored = sorted(
        (
            (gnmt_log(model.sequence_log_prob(src, s, e), len(s) + e, alpha), s, e)
            for s, e in all_sequences([UNK_ID, 4, 5, 6], 3)
        ),
        reverse=True,
    )
    assert [(h.tokens, h.ended) for h in hyps] == [(s, e) for _, s, e in scored[:5]]
    for h, (norm, _, _) in zip(hyps, scored, strict=False):
        assert h.norm_score == pytest.approx(norm, abs=1e-5)


def gnmt_log(log_p: float, steps: int, alpha: float) -> float:
    return log_p / ((5 + steps) / 6) ** alpha


def test_reported_scores_equal_teacher_forcing_and_beams_are_distinct() -> None:
    model = TinyRandomModel(seed=5)
    src = torch.tensor([[4, 5, 6, 6], [5, 4, 0, 0]])
    result = beam_search(model, src, src != PAD_ID, beam_size=5, n_best=5, length_penalty=1.0)
    for row, hyps in zip(src, result, strict=True):
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps) == 5
        real = row[row != PAD_ID].unsqueeze(0)
        for h in hyps:
            assert h.score == pytest.approx(model.sequence_log_prob(real, h.tokens, h.ended))


def test_encoder_runs_once_and_inputs_are_not_modified() -> None:
    model = OracleModel({A: LENGTHS})
    src, mask = batch([A, B], [A])
    before = (src.clone(), mask.clone())
    beam_search(model, src, mask, beam_size=3, need_attention=True)
    assert model.encode_calls == 1
    assert torch.equal(src, before[0]) and torch.equal(mask, before[1])


@pytest.mark.parametrize(("beam_size", "n_best"), [(0, 1), (2, 3), (2, 0)])
def test_bad_sizes_raise(beam_size: int, n_best: int) -> None:
    with pytest.raises(ValueError):
        beam_search(OracleModel({A: LENGTHS}), *batch([A]), beam_size=beam_size, n_best=n_best)


def test_beam_layout_helpers() -> None:
    x = torch.arange(6).view(3, 2)  # 3 sentences
    flat = expand_to_beams(x, 2)  # (6, 2): each sentence twice, sentence-major
    assert flat[:, 0].tolist() == [0, 0, 2, 2, 4, 4]
    assert torch.equal(flatten_beams(unflatten_beams(flat, 2)), flat)
    beams = unflatten_beams(flat, 2)  # (3, 2, 2)
    picked = gather_beams(
        beams + torch.tensor([0, 100]).view(1, 2, 1), torch.tensor([[1], [0], [1]])
    )
    assert picked[:, 0, 0].tolist() == [100, 2, 104]


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_search_runs_the_configured_strategy(strategy: str) -> None:
    model = TinyRandomModel(seed=4)
    src = torch.tensor([[4, 5, 6], [6, 4, 0]])
    cfg = DecodeConfig(strategy=strategy, beam_size=3, n_best=2, top_k=2)
    got = search(model, src, src != PAD_ID, cfg, generator=torch.Generator().manual_seed(0))
    direct = {
        "greedy": lambda: greedy_search(model, src, src != PAD_ID),
        "beam": lambda: beam_search(model, src, src != PAD_ID, beam_size=3, n_best=2),
        "sample": lambda: sample_search(
            model, src, src != PAD_ID, top_k=2, generator=torch.Generator().manual_seed(0)
        ),
    }[strategy]()
    assert got == direct
    assert len(got[0]) == (2 if strategy == "beam" else 1)


def test_an_empty_batch_gives_an_empty_result() -> None:
    src = torch.zeros((0, 4), dtype=torch.long)
    assert beam_search(TinyRandomModel(), src, src != PAD_ID).nbest == []
    assert greedy_search(TinyRandomModel(), src, src != PAD_ID).nbest == []
