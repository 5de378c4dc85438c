"""Padding, masks, token-bucketed batches (deterministic per epoch, resumable) and the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nmt.datautil.batching import (
    TokenBatchSampler,
    TokenizedCorpus,
    cache_key,
    cached_corpus,
    collate,
    collate_src,
    shard_batches,
)
from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.errors import DataError


def _random_corpus(n: int, seed: int = 0, max_len: int = 30) -> TokenizedCorpus:
    rng = np.random.default_rng(seed)
    src = [rng.integers(4, 50, rng.integers(1, max_len)).tolist() for _ in range(n)]
    tgt = [rng.integers(4, 50, rng.integers(1, max_len)).tolist() for _ in range(n)]
    return TokenizedCorpus.from_lists(src, tgt)


def test_collate_layout_and_masks() -> None:
    corpus = TokenizedCorpus.from_lists([[5, 6, 7], [8]], [[9], [10, 11]])
    b = collate(corpus, [0, 1])
    assert b.src.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]]
    assert b.src_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert b.tgt_in.tolist() == [[BOS_ID, 9, PAD_ID], [BOS_ID, 10, 11]]
    assert b.tgt_out.tolist() == [[9, EOS_ID, PAD_ID], [10, 11, EOS_ID]]
    assert (b.n_src_tokens, b.n_tgt_tokens) == (6, 5)
    assert b.src.dtype == torch.long and b.src_mask.dtype == torch.bool
    src, mask = collate_src([[4], [5, 6]])
    assert src.tolist() == [[4, EOS_ID, PAD_ID], [5, 6, EOS_ID]]
    assert mask.sum().item() == 5


def test_every_example_once_per_epoch_and_budget_respected() -> None:
    corpus = _random_corpus(500)
    sampler = TokenBatchSampler(corpus.src_lengths(), corpus.tgt_lengths(), 200, seed=3)
    for epoch in range(3):
        batches = sampler.epoch_batches(epoch)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(500))
        for b in batches:
            cost = len(b) * int(sampler.cost[b].max())
            assert cost <= 200 or len(b) == 1


def test_batches_are_a_pure_function_of_seed_and_epoch() -> None:
    corpus = _random_corpus(300)
    a = TokenBatchSampler(corpus.src_lengths(), corpus.tgt_lengths(), 150, seed=7)
    b = TokenBatchSampler(corpus.src_lengths(), corpus.tgt_lengths(), 150, seed=7)
    assert a.epoch_batches(2) == b.epoch_batches(2)  # a fresh sampler (a resumed run) agrees
    assert a.epoch_batches(0) != a.epoch_batches(1)  # reshuffled per epoch
    c = TokenBatchSampler(corpus.src_lengths(), corpus.tgt_lengths(), 150, seed=8)
    assert a.epoch_batches(0) != c.epoch_batches(0)


def test_bucketing_keeps_padding_small() -> None:
    corpus = _random_corpus(2000, max_len=60)
    sampler = TokenBatchSampler(corpus.src_lengths(), corpus.tgt_lengths(), 1000, seed=0)
    bucketed = sampler.padding_fraction(sampler.epoch_batches(0))
    rng = np.random.default_rng(0)
    naive = [b.tolist() for b in np.array_split(rng.permutation(2000), 2000 // 20)]
    assert bucketed < 0.5 * sampler.padding_fraction(naive)


def test_oversized_example_gets_its_own_batch() -> None:
    corpus = TokenizedCorpus.from_lists([[4] * 50, [4], [5]], [[4], [4], [5]])
    sampler = TokenBatchSampler(corpus.src_lengths(), corpus.tgt_lengths(), 10, seed=0)
    batches = sampler.epoch_batches(0)
    assert [0] in batches and sorted(i for b in batches for i in b) == [0, 1, 2]


@pytest.mark.parametrize("n_batches", [7, 8, 9])
def test_shards_are_equal_and_cover_every_example_once(n_batches: int) -> None:
    batches = [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(n_batches)]
    shards = [shard_batches(batches, r, 4) for r in range(4)]
    assert len({len(s) for s in shards}) == 1
    assert sorted(i for s in shards for b in s for i in b) == list(range(3 * n_batches))


def test_token_cache_round_trip_and_rebuild(tmp_path: Path) -> None:
    corpus_file = tmp_path / "train.tsv"
    corpus_file.write_text("a\tb\n", encoding="utf-8")
    calls = []

    def build() -> TokenizedCorpus:
        calls.append(1)
        return TokenizedCorpus.from_lists([[4, 5], [6]], [[7], [8, 9, 10]])

    key = cache_key([corpus_file], "settings")
    first = cached_corpus(tmp_path / "cache", "train", key, build)
    second = cached_corpus(tmp_path / "cache", "train", key, build)
    assert len(calls) == 1
    assert second.tgt(1).tolist() == [8, 9, 10] and len(second) == len(first) == 2
    # A changed corpus or setting gives another key; a damaged file is rebuilt, not trusted.
    corpus_file.write_text("a\tc\n", encoding="utf-8")
    assert cache_key([corpus_file], "settings") != key
    assert cache_key([corpus_file], "other") != cache_key([corpus_file], "settings")
    (tmp_path / "cache" / f"train-{key}.npz").write_bytes(b"garbage")
    cached_corpus(tmp_path / "cache", "train", key, build)
    assert len(calls) == 2


def test_cache_key_of_a_missing_corpus_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "gone.tsv"
    with pytest.raises(DataError, match=r"gone\.tsv: file not found") as info:
        cache_key([missing], "settings")
    assert "\n" not in str(info.value)


def test_epoch_batches_are_compact_and_behave_like_lists() -> None:
    corpus = _random_corpus(700, max_len=40)
    sampler = TokenBatchSampler(corpus.src_lengths(), corpus.tgt_lengths(), 300, seed=5)
    batches = sampler.epoch_batches(1)
    as_lists = [list(b) for b in batches]
    assert batches.order.dtype == np.int32 and len(batches.order) == 700
    assert batches == as_lists and batches[-1] == as_lists[-1] and batches[1:3] == as_lists[1:3]
    # The vectorised padding figure is the one the plain loop gives.
    assert sampler.padding_fraction(batches) == pytest.approx(sampler.padding_fraction(as_lists))
    assert shard_batches(batches, 0, 1) is batches  # one process: no copy
    empty = TokenBatchSampler(np.zeros(0), np.zeros(0), 100, seed=0).epoch_batches(0)
    assert len(empty) == 0 and sampler.padding_fraction(empty) == 0.0
