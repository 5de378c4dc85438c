"""Attention for the GRU decoder: Bahdanau's additive score and Luong's dot/general/concat.

The two GRU attentions split the work in two so the decoder's step loop stays cheap:

* :meth:`project_keys` maps the encoder memory ``h_s`` to the space in which it is scored. It
  depends only on the source, so the model calls it ONCE per sentence (at encode time) and keeps
  the result in the decoder state.
* :meth:`forward` scores one decoder query against those keys, masks the padding and returns
  the context vector and the attention weights.

Padding never receives weight: its scores are set to ``-inf`` before the softmax, so its weights
are exactly 0. Every source row must therefore have at least one real token.

The Transformer's multi-head attention (Vaswani et al. 2017 §3.2) is at the end of the file:

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V),  Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

:class:`SelfAttention` computes the h projections of Q, K and V as one fused linear layer and
keeps a key/value cache; :class:`CrossAttention` projects the memory's keys/values once per
sentence. Both attend through :func:`dot_product_attention`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt import perf

LuongScore = Literal["dot", "general", "concat"]
KV = tuple[Tensor, Tensor]  # keys and values, each (batch, heads, len, head_dim)


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dimension with ``mask == False`` entries weighted exactly 0.

    Args:
        scores: ``(batch, src_len)`` or ``(batch, tgt_len, src_len)`` attention energies.
        mask: ``(batch, src_len)`` bool, True at real tokens; broadcast over ``tgt_len``.
    """
    if scores.dim() == 3:
        mask = mask.unsqueeze(1)
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def weighted_sum(weights: Tensor, values: Tensor) -> Tensor:
    """Weighted sum of the memory: ``(batch, [tgt_len,] src_len) x (batch, src_len, v)``.

    Returns ``(batch, v)`` or ``(batch, tgt_len, v)``, matching ``weights``.
    """
    if weights.dim() == 2:
        return torch.bmm(weights.unsqueeze(1), values).squeeze(1)
    return torch.bmm(weights, values)


class BahdanauAttention(nn.Module):
    """Additive attention, Bahdanau et al. 2015 (arXiv:1409.0473) §3.1 and appendix A.1.2.

    ``e_tj = vᵀ tanh(W s_{t-1} + U h_j)``; the query is the decoder state *before* the step.
    ``U h_j`` is :meth:`project_keys`, computed once per sentence.

    Args:
        query_size: size of the decoder state ``s``.
        key_size: size of the encoder memory ``h`` (2·hidden for a bidirectional encoder).
        attn_size: size of the hidden layer of the scoring MLP.
    """

    def __init__(self, query_size: int, key_size: int, attn_size: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_size, attn_size, bias=False)  # W
        self.key_proj = nn.Linear(key_size, attn_size)  # U (its bias is the MLP's bias)
        self.energy = nn.Linear(attn_size, 1, bias=False)  # v

    def project_keys(self, memory: Tensor) -> Tensor:
        """``(batch, src_len, key_size)`` -> ``U h``: ``(batch, src_len, attn_size)``."""
        return self.key_proj(memory)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Score ``query`` against every source position.

        Args:
            query: ``(batch, query_size)`` or ``(batch, tgt_len, query_size)``.
            keys: ``(batch, src_len, attn_size)`` from :meth:`project_keys`.
            values: ``(batch, src_len, key_size)`` the encoder memory.
            mask: ``(batch, src_len)`` bool, True at real tokens.

        Returns:
            context ``(batch, [tgt_len,] key_size)`` and weights ``(batch, [tgt_len,] src_len)``.
        """
        q = self.query_proj(query).unsqueeze(-2)  # (batch, [tgt_len,] 1, attn)
        k = keys if query.dim() == 2 else keys.unsqueeze(1)  # broadcast over tgt_len
        scores = self.energy(torch.tanh(q + k)).squeeze(-1)  # (batch, [tgt_len,] src_len)
        weights = masked_softmax(scores, mask)
        return weighted_sum(weights, values), weights


class LuongAttention(nn.Module):
    """Multiplicative / concat attention, Luong et al. 2015 (arXiv:1508.04025) §3.1.

    The query is the decoder state *after* the step, ``h_t``:

    * ``dot``: ``h_tᵀ h_s``. It needs equal sizes; with a bidirectional encoder the memory
      (2·hidden) is first mapped to the decoder size by a bias-free linear layer, which makes it
      the same family as ``general``. With equal sizes it has no parameters.
    * ``general``: ``h_tᵀ W_a h_s``; ``W_a h_s`` is precomputed by :meth:`project_keys`.
    * ``concat``: ``v_aᵀ tanh(W_a [h_t; h_s])`` = ``v_aᵀ tanh(W_q h_t + W_k h_s)``, the
      additive form, with ``W_k h_s`` precomputed.

    Args:
        score: ``dot``, ``general`` or ``concat``.
        query_size: decoder state size.
        key_size: encoder memory size.
        attn_size: hidden size of the ``concat`` MLP (unused otherwise).
    """

    def __init__(self, score: LuongScore, query_size: int, key_size: int, attn_size: int) -> None:
        super().__init__()
        if score not in ("dot", "general", "concat"):
            raise ValueError(f"unknown Luong score {score!r}: expected dot, general or concat")
        self.score = score
        self.key_proj: nn.Module
        if score == "dot":
            same = query_size == key_size
            self.key_proj = nn.Identity() if same else nn.Linear(key_size, query_size, bias=False)
        elif score == "general":
            self.key_proj = nn.Linear(key_size, query_size, bias=False)  # W_a
        else:
            self.key_proj = nn.Linear(key_size, attn_size)
            self.query_proj = nn.Linear(query_size, attn_size, bias=False)
            self.energy = nn.Linear(attn_size, 1, bias=False)

    def project_keys(self, memory: Tensor) -> Tensor:
        """``(batch, src_len, key_size)`` -> ``(batch, src_len, query_size or attn_size)``."""
        return self.key_proj(memory)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Same arguments and results as :meth:`BahdanauAttention.forward`."""
        if self.score == "concat":
            q = self.query_proj(query).unsqueeze(-2)
            k = keys if query.dim() == 2 else keys.unsqueeze(1)
            scores = self.energy(torch.tanh(q + k)).squeeze(-1)
        elif query.dim() == 2:
            scores = torch.bmm(keys, query.unsqueeze(2)).squeeze(2)  # (batch, src_len)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))  # (batch, tgt_len, src_len)
        weights = masked_softmax(scores, mask)
        return weighted_sum(weights, values), weights


def build_attention(
    kind: Literal["bahdanau", "luong"],
    score: LuongScore,
    query_size: int,
    key_size: int,
) -> BahdanauAttention | LuongAttention:
    """The attention module named by the config; the scoring MLP is ``query_size`` wide."""
    if kind == "bahdanau":
        return BahdanauAttention(query_size, key_size, query_size)
    if kind == "luong":
        return LuongAttention(score, query_size, key_size, query_size)
    raise ValueError(f"unknown attention {kind!r}: expected bahdanau or luong")


# ------------------------------------------------------------- multi-head (Transformer)


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``(batch, len, d)`` -> ``(batch, heads, len, d / heads)``."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``(batch, heads, len, head_dim)`` -> ``(batch, len, heads·head_dim)``."""
    return x.transpose(1, 2).flatten(2)


def dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False,
    need_weights: bool = False, dropout: float = 0.0,
) -> tuple[Tensor, Tensor | None]:
    """Scaled dot-product attention (§3.2.1) over all heads at once:

        Attention(Q, K, V) = softmax(Q Kᵀ / sqrt(d_k)) V

    Masked keys (padding; with ``causal``, the future) get score ``-inf``, hence weight 0.

    Args:
        q: ``(batch, heads, len, d_k)``; k, v: ``(batch, heads, kv_len, d_k)``.
        mask: ``(batch, 1, 1, kv_len)`` bool, True where keys may be attended.
        causal: position i sees keys 0..i (only used with ``len == kv_len``).
        need_weights: also return the weights ``(batch, heads, len, kv_len)`` (before
            dropout).
        dropout: drop probability on the weights (pass 0 outside training).

    Computed by ``F.scaled_dot_product_attention`` unless the weights are needed (its fused
    kernels do not expose them) or the explicit form is faster for these inputs
    (:func:`nmt.perf.explicit_attention_is_faster`); both compute the formula above.
    """
    if not need_weights and not perf.explicit_attention_is_faster(q, k):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                              is_causal=causal), None  # fmt: skip
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.size(-1)))
    if causal:
        future = torch.ones(q.size(2), k.size(2), dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32)  # fp32, also in bf16
    used = F.dropout(weights, dropout) if dropout > 0 else weights
    return used.to(v.dtype) @ v, weights if need_weights else None


class SelfAttention(nn.Module):
    """Multi-head self-attention, ``MultiHead(x, x, x)`` (§3.2.2), with Q, K and V from one
    fused projection ``x [W^Q W^K W^V]`` and an optional key/value cache of past positions."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout  # dropout: on the weights, in training
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, causal: bool = False, cache: KV | None = None
    ) -> tuple[Tensor, KV]:
        """Attend over ``x`` ``(batch, len, d)`` (and the cached past, if given).

        Args:
            mask: ``(batch, 1, 1, len)`` bool, True where keys may be attended (encoder padding).
            causal: hide future positions (decoder training / uncached decoding).
            cache: past ``(k, v)``, each ``(batch, heads, past, head_dim)``; then ``x`` holds
                the single newest position, which may see everything.

        Returns:
            ``(batch, len, d)`` and the keys/values including ``x``'s, for the next step.
        """
        qkv = self.qkv(x).unflatten(-1, (3, self.heads, -1))  # (batch, len, 3, heads, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, len, hd)
        if cache is not None:  # attend in the cache's dtype (see Transformer.encode)
            past_k, past_v = cache
            q = q.to(past_k.dtype)
            k = torch.cat([past_k, k.to(past_k.dtype)], dim=2)
            v = torch.cat([past_v, v.to(past_v.dtype)], dim=2)
        p = self.dropout if self.training else 0.0
        y, _ = dot_product_attention(q, k, v, mask, causal, dropout=p)
        return self.out(merge_heads(y).to(x.dtype)), (k, v)


class CrossAttention(nn.Module):
    """Multi-head attention of the decoder over the encoder memory, ``MultiHead(x, m, m)``
    (§3.2.3): queries from the decoder, keys and values from the memory ``m``."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout  # dropout: on the weights, in training
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def project_memory(self, memory: Tensor) -> KV:
        """``(batch, src_len, d)`` -> keys and values, each ``(batch, heads, src_len, hd)``."""
        kv = self.kv(memory).unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)
        return kv[0], kv[1]

    def forward(
        self, x: Tensor, memory_kv: KV, mask: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``x`` ``(rows, len, d)`` attends over the memory of ``batch`` sentences.

        ``mask`` is ``(batch, 1, 1, src_len)``. ``rows`` is ``batch * g``: ``g`` consecutive
        rows per sentence (its beams) share that sentence's keys/values; their queries are
        attended as ``g * len`` queries of the one sentence, so the memory is never copied.

        Returns the output ``(rows, len, d)`` and, when ``need_weights``, the attention
        weights averaged over heads ``(rows, len, src_len)``.
        """
        k, v = memory_kv
        q = split_heads(self.q(x), self.heads).to(k.dtype)  # (rows, heads, len, hd)
        rows, length = q.size(0), q.size(2)
        g = rows // k.size(0)
        if g > 1:  # (batch * g, heads, len, hd) -> (batch, heads, g * len, hd)
            q = q.unflatten(0, (-1, g)).transpose(1, 2).flatten(2, 3)
        p = self.dropout if self.training else 0.0
        y, weights = dot_product_attention(q, k, v, mask, need_weights=need_weights, dropout=p)
        if g > 1:  # and back: (batch, heads, g * len, ·) -> (batch * g, heads, len, ·)
            y = _ungroup(y, g, length)
            weights = None if weights is None else _ungroup(weights, g, length)
        out = self.out(merge_heads(y).to(x.dtype))
        return out, None if weights is None else weights.mean(dim=1)


def _ungroup(x: Tensor, g: int, length: int) -> Tensor:
    """``(batch, heads, g * len, n)`` -> ``(batch * g, heads, len, n)``."""
    return x.unflatten(2, (g, length)).transpose(1, 2).flatten(0, 1)
