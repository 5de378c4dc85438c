"""Logits processors: each against an independent reference of Hugging Face's algorithm (and
against transformers itself where it is installed), and inside every search."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import A, B, C, D, Forever, OracleModel, Table, TinyRandomModel, batch

from nmt.config import DecodeConfig, decode_with
from nmt.datautil.vocab import BOS_ID, EOS_ID
from nmt.decoding import Steering, beam_search, build_processors, greedy_search, sample_search
from nmt.decoding.processors import (
    PROCESSORS,
    BannedSequences,
    ForcedPrefix,
    MinLength,
    NoRepeatNGram,
    RepetitionPenalty,
    Step,
)
from nmt.errors import ConfigError

INF = math.inf
VOCAB = 9
SEARCHES = {"greedy": greedy_search, "beam": beam_search, "sample": sample_search}


# ------------------------------------------------------------------ independent references
# Written from Hugging Face's documented algorithms, one row at a time with plain Python, so
# the checks share no code with the implementation and run without transformers.


def ref_no_repeat(prefix: list[int], row: list[float], n: int) -> list[float]:
    banned = set()
    if len(prefix) >= n:
        tail = tuple(prefix[len(prefix) - n + 1:]) if n > 1 else ()
        for i in range(len(prefix) - n + 1):
            if tuple(prefix[i:i + n - 1]) == tail:
                banned.add(prefix[i + n - 1])
    return [-INF if j in banned else x for j, x in enumerate(row)]


def ref_repetition(prefix: list[int], row: list[float], penalty: float) -> list[float]:
    seen = set(prefix)
    return [(x * penalty if x < 0 else x / penalty) if j in seen else x
            for j, x in enumerate(row)]  # fmt: skip


def ref_banned(prefix: list[int], row: list[float], sequences: list[list[int]]) -> list[float]:
    out = list(row)
    for seq in sequences:
        head = seq[:-1]
        if not head or (len(prefix) >= len(head) and prefix[len(prefix) - len(head):] == head):
            out[seq[-1]] = -INF
    return out


prefixes = st.lists(st.lists(st.integers(4, VOCAB - 1), min_size=5, max_size=5), min_size=1,
                    max_size=4)  # fmt: skip


def _apply(processor: object, rows: list[list[int]], t: int, seed: int) -> tuple[torch.Tensor,
                                                                                   torch.Tensor]:
    prefix = torch.tensor(rows)[:, :t]
    torch.manual_seed(seed)
    log_probs = torch.randn(len(rows), VOCAB).log_softmax(dim=-1)
    step = Step(prefix, t, torch.arange(len(rows)))
    return log_probs, processor(step, log_probs.clone())  # type: ignore[operator]


@settings(max_examples=60, deadline=None)
@given(rows=prefixes, t=st.integers(0, 5), n=st.integers(1, 4), seed=st.integers(0, 99))
def test_no_repeat_ngram_matches_the_reference(rows: list[list[int]], t: int, n: int,
                                               seed: int) -> None:
    log_probs, got = _apply(NoRepeatNGram(n), rows, t, seed)
    for i, row in enumerate(rows):
        assert got[i].tolist() == ref_no_repeat(row[:t], log_probs[i].tolist(), n)


@settings(max_examples=60, deadline=None)
@given(rows=prefixes, t=st.integers(0, 5), penalty=st.floats(0.5, 3.0), seed=st.integers(0, 99))
def test_repetition_penalty_matches_the_reference(rows: list[list[int]], t: int, penalty: float,
                                                  seed: int) -> None:
    log_probs, got = _apply(RepetitionPenalty(penalty), rows, t, seed)
    for i, row in enumerate(rows):
        want = ref_repetition(row[:t], log_probs[i].tolist(), penalty)
        assert got[i].tolist() == pytest.approx(want, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(rows=prefixes, t=st.integers(0, 5), seed=st.integers(0, 99),
       sequences=st.lists(st.lists(st.integers(4, VOCAB - 1), min_size=1, max_size=3),
                          min_size=1, max_size=3))  # fmt: skip
def test_banned_sequences_match_the_reference(rows: list[list[int]], t: int, seed: int,
                                              sequences: list[list[int]]) -> None:
    log_probs, got = _apply(BannedSequences(tuple(map(tuple, sequences))), rows, t, seed)
    for i, row in enumerate(rows):
        assert got[i].tolist() == ref_banned(row[:t], log_probs[i].tolist(), sequences)


def test_min_length_forbids_eos_until_the_length() -> None:
    rows = [[4, 5, 6]]
    for t in range(4):
        _, got = _apply(MinLength(2), rows, t, 0)
        assert (got[0, EOS_ID] == -INF) == (t < 2)


def test_the_transformers_processors_agree() -> None:
    hf = pytest.importorskip("transformers.generation.logits_process",
                             reason="transformers is not installed (pip install transformers)")
    torch.manual_seed(0)
    for trial in range(20):
        rows, t = torch.randint(4, VOCAB, (4, 6)), trial % 7
        log_probs = torch.randn(4, VOCAB).log_softmax(dim=-1)
        step = Step(rows[:, :t], t, torch.arange(4))
        # HF's input_ids start with the decoder start token; ours start after it.
        input_ids = torch.cat((torch.full((4, 1), BOS_ID), rows[:, :t]), dim=1)
        for n in (1, 2, 3):
            want = hf.NoRepeatNGramLogitsProcessor(n)(input_ids, log_probs.clone())
            if n == 1:  # HF bans the start token too; it is -inf in every search anyway
                want[:, BOS_ID] = log_probs[:, BOS_ID] if t < 1 else want[:, BOS_ID]
            got = NoRepeatNGram(n)(step, log_probs.clone())
            mask = torch.ones(VOCAB, dtype=torch.bool)
            mask[BOS_ID] = False
            assert torch.equal(got[:, mask], want[:, mask])
        want = hf.RepetitionPenaltyLogitsProcessor(1.7)(rows[:, :t], log_probs.clone())
        torch.testing.assert_close(RepetitionPenalty(1.7)(step, log_probs.clone()), want)


# ------------------------------------------------------------------ registry and config


def test_every_option_off_builds_no_processor() -> None:
    assert build_processors(DecodeConfig(), lambda text: [4]) == []
    assert set(PROCESSORS) <= {f for f in DecodeConfig.__dataclass_fields__}


def test_options_build_their_processors_in_order() -> None:
    cfg = decode_with(DecodeConfig(), {"no_repeat_ngram_size": 3, "repetition_penalty": 1.2,
                                       "min_length": 2, "banned_words": ["bad", "very bad"]})
    words = {"bad": [5], "very bad": [6, 5]}
    built = build_processors(cfg, lambda text: words[text])
    assert built == [BannedSequences(((5,), (6, 5))), NoRepeatNGram(3), RepetitionPenalty(1.2),
                     MinLength(2)]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value"),
    [("no_repeat_ngram_size", -1), ("repetition_penalty", 0.0), ("min_length", -2),
     ("banned_words", [" "])],
)
def test_bad_steering_values_name_their_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"decode.{key}"):
        decode_with(DecodeConfig(), {key: value})


# ------------------------------------------------------------------ inside the searches

LOOP: Table = Forever({A: 0.5, B: 0.3, EOS_ID: 0.2})  # A A A ... unless steered


def _run(strategy: str, model: object, steering: Steering | None, max_len_b: int = 6,
         **kwargs: object) -> list[list[int]]:
    src, mask = batch([A, B], [C])
    extra = {"generator": torch.Generator().manual_seed(3)} if strategy == "sample" else {}
    result = SEARCHES[strategy](model, src, mask, max_len_a=0.0, max_len_b=max_len_b,
                                steering=steering, **extra, **kwargs)  # type: ignore[operator]
    return [h[0].tokens for h in result]


@pytest.mark.parametrize("strategy", sorted(SEARCHES))
def test_nothing_active_changes_nothing(strategy: str) -> None:
    model = TinyRandomModel(seed=2)
    plain = _run(strategy, model, None)
    assert _run(strategy, model, Steering()) == plain
    assert _run(strategy, model, Steering([], prefixes=[[], []])) == plain


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_no_repeat_ngram_breaks_a_loop(strategy: str) -> None:
    model = OracleModel({A: LOOP, C: LOOP}, vocab_size=VOCAB)
    if strategy == "greedy":
        assert _run(strategy, model, None)[0] == [A] * 6  # the loop, cut at the limit
    steered = _run(strategy, model, Steering([NoRepeatNGram(2)]))
    for tokens in steered:
        bigrams = list(zip(tokens, tokens[1:], strict=False))
        assert len(bigrams) == len(set(bigrams)), tokens


@pytest.mark.parametrize("strategy", sorted(SEARCHES))
def test_a_forced_prefix_starts_the_output(strategy: str) -> None:
    model = TinyRandomModel(seed=1, vocab_size=VOCAB)
    steering = Steering(prefixes=[[D, C, D], []])
    out = _run(strategy, model, steering, max_len_b=2)
    assert out[0][:3] == [D, C, D]  # the limit (2) was raised to hold the prefix
    assert out[1] == _run(strategy, model, None, max_len_b=2)[1]  # no prefix: as before


def test_a_forced_prefix_keeps_the_model_score() -> None:
    model = TinyRandomModel(seed=1, vocab_size=VOCAB)
    src, mask = batch([A, B])
    result = greedy_search(model, src, mask, max_len_a=0.0, max_len_b=5,
                           steering=Steering(prefixes=[[D, C]]))  # fmt: skip
    hyp = result[0][0]
    assert hyp.tokens[:2] == [D, C]
    assert hyp.score == pytest.approx(model.sequence_log_prob(src, hyp.tokens, hyp.ended),
                                      abs=1e-4)  # fmt: skip


def test_other_processors_do_not_apply_to_the_forced_prefix() -> None:
    model = TinyRandomModel(seed=1, vocab_size=VOCAB)
    steering = Steering([BannedSequences(((D,),))], prefixes=[[D], []])
    out = _run("beam", model, steering)
    assert out[0][0] == D and D not in out[0][1:] and D not in out[1]


def test_min_length_in_beam_search() -> None:
    short: Table = Forever({EOS_ID: 0.9, A: 0.1})
    model = OracleModel({A: short, C: short}, vocab_size=VOCAB)
    assert _run("beam", model, None) == [[], []]
    assert [len(t) for t in _run("beam", model, Steering([MinLength(3)]))] == [3, 3]


def test_forced_prefix_rows_follow_their_sentence() -> None:
    prefix = ForcedPrefix([[5, 6], [7]], torch.device("cpu"))
    step = Step(torch.zeros(3, 1, dtype=torch.long), 1, torch.tensor([1, 0, 0]))
    out = prefix(step, torch.zeros(3, VOCAB))
    assert out[0].tolist() == [0.0] * VOCAB  # sentence 1's prefix has ended
    assert out[1].argmax().item() == 6 and out[1].isinf().sum().item() == VOCAB - 1
