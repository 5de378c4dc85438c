"""Bahdanau and Luong attention: a distribution over real tokens only, batched = stepwise."""

from __future__ import annotations

import pytest
import torch

from nmt.models.attention import (
    BahdanauAttention,
    LuongAttention,
    build_attention,
    dot_product_attention,
    masked_softmax,
)

QUERY, KEY = 6, 10  # decoder state size, encoder memory size (bidirectional: 2 x hidden)


def make_attention(name: str, query_size: int = QUERY) -> BahdanauAttention | LuongAttention:
    if name == "bahdanau":
        return BahdanauAttention(query_size, KEY, 7)
    return LuongAttention(name, query_size, KEY, 7)  # type: ignore[arg-type]


VARIANTS = ["bahdanau", "dot", "general", "concat"]


@pytest.fixture
def memory() -> tuple[torch.Tensor, torch.Tensor]:
    """Three sentences of lengths 5, 2 and 1, padded to 5 (padding memory is garbage)."""
    torch.manual_seed(0)
    values = torch.randn(3, 5, KEY)
    mask = torch.arange(5)[None, :] < torch.tensor([5, 2, 1])[:, None]
    return values, mask


@pytest.mark.parametrize("name", VARIANTS)
def test_weights_sum_to_one_and_are_zero_on_padding(name: str, memory: tuple) -> None:
    values, mask = memory
    attn = make_attention(name)
    context, weights = attn(torch.randn(3, QUERY) * 5, attn.project_keys(values), values, mask)
    assert weights.shape == (3, 5) and context.shape == (3, KEY)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert torch.all(weights[~mask] == 0)  # exactly zero, not just small
    assert torch.all(weights[mask] > 0)
    torch.testing.assert_close(context, torch.einsum("bs,bsk->bk", weights, values))
    # the one-token sentence attends to its only token with weight exactly 1
    assert weights[2, 0].item() == 1.0


@pytest.mark.parametrize("name", VARIANTS)
def test_all_target_positions_at_once_equal_one_at_a_time(name: str, memory: tuple) -> None:
    values, mask = memory
    attn = make_attention(name)
    keys = attn.project_keys(values)
    queries = torch.randn(3, 4, QUERY)  # (batch, tgt_len, query)
    context, weights = attn(queries, keys, values, mask)
    assert weights.shape == (3, 4, 5) and context.shape == (3, 4, KEY)
    for t in range(4):
        c_t, w_t = attn(queries[:, t], keys, values, mask)
        torch.testing.assert_close(w_t, weights[:, t])
        torch.testing.assert_close(c_t, context[:, t])
    assert torch.all(weights.masked_select(~mask[:, None, :]) == 0)


def test_padding_content_does_not_matter(memory: tuple) -> None:
    values, mask = memory
    attn = make_attention("bahdanau")
    query = torch.randn(3, QUERY)
    out = attn(query, attn.project_keys(values), values, mask)
    noisy = values.masked_fill(~mask[..., None], 1e4)
    out_noisy = attn(query, attn.project_keys(noisy), noisy, mask)
    torch.testing.assert_close(out[0], out_noisy[0])
    torch.testing.assert_close(out[1], out_noisy[1])


def test_dot_score_is_parameter_free_for_equal_sizes_and_projects_otherwise() -> None:
    assert sum(p.numel() for p in make_attention("dot", query_size=KEY).parameters()) == 0
    projected = make_attention("dot")  # query 6 vs memory 10: the memory is mapped to 6
    assert projected.project_keys(torch.randn(2, 3, KEY)).shape == (2, 3, QUERY)


def test_dot_score_is_the_plain_dot_product() -> None:
    attn = make_attention("dot", query_size=KEY)
    values, query = torch.randn(1, 4, KEY), torch.randn(1, KEY)
    _, weights = attn(query, attn.project_keys(values), values, torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(weights, torch.softmax(values[0] @ query[0], -1)[None])


def test_masked_softmax_broadcasts_the_mask_over_target_positions() -> None:
    mask = torch.tensor([[True, True, False]])
    weights = masked_softmax(torch.zeros(1, 2, 3), mask)
    torch.testing.assert_close(weights, torch.tensor([[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]]))


def test_unknown_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="luong"):
        build_attention("additive", "dot", 4, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score"):
        LuongAttention("cosine", 4, 4, 4)  # type: ignore[arg-type]


@pytest.mark.parametrize("causal", [False, True])
def test_explicit_multi_head_attention_equals_sdpa(causal: bool) -> None:
    torch.manual_seed(1)
    q, k, v = (torch.randn(3, 2, 5, 4) for _ in range(3))
    mask = None if causal else (torch.arange(5) < torch.tensor([5, 2, 1])[:, None])[:, None, None]
    fused, none = dot_product_attention(q, k, v, mask, causal)
    explicit, weights = dot_product_attention(q, k, v, mask, causal, need_weights=True)
    assert none is None and weights is not None
    torch.testing.assert_close(explicit, fused)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 5))
    hidden = weights.triu(1) if causal else weights.masked_select(~mask)  # type: ignore[operator]
    assert torch.all(hidden == 0)
    # bf16 on the CPU takes the explicit path (SDPA's flash backward is slow there)
    low, _ = dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask, causal)
    torch.testing.assert_close(low.float(), fused, atol=0.05, rtol=0.05)


def test_one_query_over_many_rows_takes_the_explicit_path_and_agrees_with_sdpa() -> None:
    torch.manual_seed(2)
    q, k, v = torch.randn(80, 4, 1, 8), torch.randn(80, 4, 9, 8), torch.randn(80, 4, 9, 8)
    mask = (torch.arange(9) < torch.randint(1, 10, (80,))[:, None])[:, None, None]
    got, _ = dot_product_attention(q, k, v, mask)  # a decoding step: the explicit form
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(got, expected)
