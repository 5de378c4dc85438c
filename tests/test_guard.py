"""Decoding guards on fragments and short inputs, with the quickstart model trained briefly:
no output longer than the length limit allows, and with ``no_repeat_ngram_size`` no token
repeated more than ``n`` times in a row (a third would repeat the bigram), whatever the strategy."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nmt.translate import Translator

FRAGMENTS = ["汤姆！", "123", "好", "玛丽", "Tom", "3点半", "。", "北京", "啊啊啊啊啊啊",
             "汤姆汤姆汤姆汤姆", "!!!", "a", "的的的的的的的的的的"]  # fmt: skip


@pytest.fixture(scope="module")
def quickstart(quickstart_run: Path) -> Iterator[Translator]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Translator.load(quickstart_run, device="cpu", precision="fp32")
    torch.set_num_threads(before)


def longest_run(tokens: list[str]) -> int:
    best = run = 0
    for i, tok in enumerate(tokens):
        run = run + 1 if i and tok == tokens[i - 1] else 1
        best = max(best, run)
    return best


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_fragments_stay_within_the_limit_and_do_not_loop(quickstart: Translator,
                                                         strategy: str) -> None:
    decode = quickstart.decode_config(strategy=strategy, no_repeat_ngram_size=2)
    out = quickstart.translate(FRAGMENTS, decode, seed=1, return_details=True)
    assert len(out) == len(FRAGMENTS)
    for result in out:
        limit = math.floor(decode.max_len_a * len(result.src_tokens) + decode.max_len_b)
        assert len(result.tokens) <= max(limit, 1), (result.source, result.tokens)
        assert longest_run(result.tokens) <= 2, (result.source, result.tokens)
        assert "<s>" not in result.tokens and "</s>" not in result.tokens
