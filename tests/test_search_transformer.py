"""The searches on a real (random) Transformer: the fast paths change nothing.

The key/value cache, the one-query attention path, the first beam step on one row per sentence
and the reorders that keep the source side (``same_source``) are all speed-ups only: cached and
uncached decoding, and a batch and each of its sentences alone, give the same outputs.
"""

from __future__ import annotations

import pytest
import torch

from nmt import perf
from nmt.config import ModelConfig
from nmt.decoding import beam_search, greedy_search, sample_search
from nmt.models.factory import build_model

PAD = 0
SRC_V, TGT_V = 31, 29


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model_and_batch(n: int, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(type="transformer", d_model=32, heads=4, ff_size=64, enc_layers=2,
                      dec_layers=2, dropout=0.0, max_positions=64)
    model = build_model(cfg, SRC_V, TGT_V, False).eval()
    lengths = torch.randint(1, 13, (n,))
    width = int(lengths.max())
    mask = torch.arange(width)[None, :] < lengths[:, None]
    src = torch.randint(4, SRC_V, (n, width)).masked_fill(~mask, PAD)
    return model, src, mask


def tokens(result) -> list[list[int]]:
    return [h.tokens for h in result.best()]


SEARCHES = {
    "greedy": lambda m, s, k, **kw: greedy_search(m, s, k, **kw),
    "beam": lambda m, s, k, **kw: beam_search(m, s, k, beam_size=4, n_best=2, **kw),
    "sample": lambda m, s, k, **kw: sample_search(
        m, s, k, top_k=5, generator=torch.Generator().manual_seed(3), **kw),
}


@pytest.mark.parametrize("strategy", sorted(SEARCHES))
def test_cached_and_uncached_decoding_give_identical_outputs(strategy: str) -> None:
    # 70 sentences x 4 heads: enough rows for the explicit one-query attention path.
    model, src, mask = model_and_batch(70)
    q, k = torch.zeros(70, 4, 1, 8), torch.zeros(70, 4, 9, 8)
    assert perf.few_queries_many_keys(q, k)
    run = SEARCHES[strategy]
    cached = run(model, src, mask, max_len_a=1.0, max_len_b=3, use_cache=True)
    uncached = run(model, src, mask, max_len_a=1.0, max_len_b=3, use_cache=False)
    assert tokens(cached) == tokens(uncached)
    for a, b in zip(cached, uncached, strict=True):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)


def test_beam_batch_equals_each_sentence_alone() -> None:
    # Sentences of different lengths finish at different steps, so the search mixes reorders
    # that keep the source side with ones that drop finished sentences.
    model, src, mask = model_and_batch(6, seed=1)
    together = beam_search(model, src, mask, beam_size=3, n_best=3, max_len_a=1.0, max_len_b=2)
    for i in range(src.size(0)):
        width = int(mask[i].sum())
        alone = beam_search(model, src[i : i + 1, :width], mask[i : i + 1, :width], beam_size=3,
                            n_best=3, max_len_a=1.0, max_len_b=2)
        assert [h.tokens for h in alone[0]] == [h.tokens for h in together[i]]
        assert [h.score for h in alone[0]] == pytest.approx([h.score for h in together[i]],
                                                            abs=1e-4)
