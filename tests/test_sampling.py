"""Sampling: reproducible with a Generator, the warpers applied, scores from the real model."""

from __future__ import annotations

import math

import pytest
import torch
from oracle import A, B, C, OracleModel, Table, TinyRandomModel, batch

from nmt.datautil.vocab import EOS_ID, PAD_ID
from nmt.decoding import greedy_search, sample_search
from nmt.decoding.result import SearchResult

# One step decides everything: A .6, B .3, C .1, each then ends.
ONE_STEP: Table = {(): {A: 0.6, B: 0.3, C: 0.1}}


def tokens(result: SearchResult) -> list[list[int]]:
    return [hyps[0].tokens for hyps in result]


def random_batch(seed: int, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    src = torch.randint(4, 7, (n, 6), generator=torch.Generator().manual_seed(seed))
    src[n // 2 :, 4:] = PAD_ID
    return src, src != PAD_ID


def draw(model: OracleModel | TinyRandomModel, seed: int, **kwargs: float) -> SearchResult:
    src, mask = random_batch(0) if isinstance(model, TinyRandomModel) else batch(*[[A]] * 400)
    gen = torch.Generator().manual_seed(seed)
    return sample_search(model, src, mask, generator=gen, **kwargs)


def test_same_seed_same_samples_different_seed_different_samples() -> None:
    model = TinyRandomModel(seed=1)
    first, again = draw(model, 7, temperature=1.5), draw(model, 7, temperature=1.5)
    assert tokens(first) == tokens(again)
    assert [h[0].score for h in first] == [h[0].score for h in again]
    assert tokens(draw(model, 8, temperature=1.5)) != tokens(first)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_top_k_one_equals_greedy(temperature: float) -> None:
    model = TinyRandomModel(seed=2)
    src, mask = random_batch(3)
    greedy = greedy_search(model, src, mask, need_attention=True)
    sampled = sample_search(
        model,
        src,
        mask,
        top_k=1,
        temperature=temperature,
        need_attention=True,
        generator=torch.Generator().manual_seed(0),
    )
    for (g,), (s,) in zip(greedy, sampled, strict=True):
        assert (s.tokens, s.ended) == (g.tokens, g.ended)
        assert s.score == pytest.approx(g.score)
        assert s.attention is not None and g.attention is not None
        assert torch.equal(s.attention, g.attention)


def test_frequencies_follow_the_model() -> None:
    counts = {A: 0, B: 0, C: 0}
    for (hyp,) in draw(OracleModel({A: ONE_STEP}), 0):
        counts[hyp.tokens[0]] += 1
    # 400 draws; three standard deviations around 240 / 120 / 40.
    assert abs(counts[A] - 240) < 30 and abs(counts[B] - 120) < 28 and abs(counts[C] - 40) < 18


@pytest.mark.parametrize(
    ("kwargs", "allowed"),
    [
        ({"top_k": 1}, {A}),
        ({"top_k": 2}, {A, B}),
        ({"top_p": 0.5}, {A}),  # A alone has .6 >= .5
        ({"top_p": 0.8}, {A, B}),
        ({"temperature": 0.05}, {A}),  # practically arg-max
    ],
)
def test_warpers_restrict_the_choice(kwargs: dict[str, float], allowed: set[int]) -> None:
    result = draw(OracleModel({A: ONE_STEP}), 1, **kwargs)
    assert {hyps[0].tokens[0] for hyps in result} == allowed


def test_score_is_the_unwarped_log_probability() -> None:
    table: Table = {(): {A: 0.6, B: 0.4}, (A,): {EOS_ID: 0.5, B: 0.5}}
    for (hyp,) in draw(OracleModel({A: table}), 3, temperature=2.0, length_penalty=0.0):
        expected = {(A,): 0.3, (A, B): 0.3, (B,): 0.4}[tuple(hyp.tokens)]
        assert hyp.score == pytest.approx(math.log(expected))


@pytest.mark.parametrize(
    "kwargs", [{"temperature": 0.0}, {"top_k": -1}, {"top_p": 0.0}, {"top_p": 1.5}]
)
def test_bad_warper_arguments_raise_before_decoding(kwargs: dict[str, float]) -> None:
    model = OracleModel({A: ONE_STEP})
    with pytest.raises(ValueError):
        sample_search(model, *batch([A]), **kwargs)
    assert model.encode_calls == 0
