"""Models for decoding tests that meet the Seq2Seq step contract without learning anything.

:class:`OracleModel` spells its next-token probabilities out in a table keyed on the target
prefix, so the result of any search can be derived on paper (fairseq's "oracle" tests).
:class:`TinyRandomModel` is a small random GRU with dot attention, for property checks against
brute force and teacher forcing.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.models.interface import Seq2Seq, expanded_rows

A, B, C, D = 4, 5, 6, 7  # the oracle's ordinary tokens; 0-3 are <pad> <unk> <s> </s>
Table = dict[tuple[int, ...], dict[int, float]]  # target prefix (no <s>) -> {token: prob}

# Greedy takes A (0.5) and then </s> (0.4): 0.2, although B </s> has 0.36.
GREEDY_TRAP: Table = {
    (): {A: 0.5, B: 0.4, EOS_ID: 0.1},
    (A,): {EOS_ID: 0.4, C: 0.3, D: 0.3},
    (B,): {EOS_ID: 0.9, C: 0.1},
}


class Forever(dict[tuple[int, ...], dict[int, float]]):
    """A table giving every prefix the same distribution (a model that never wants to stop)."""

    def __init__(self, probs: dict[int, float]) -> None:
        super().__init__()
        self.probs = probs

    def get(self, key: object, default: object = None) -> dict[int, float]:
        return self.probs


def batch(*sources: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(batch, src_len)`` ids and mask."""
    width = max(len(s) for s in sources)
    src = torch.tensor([s + [PAD_ID] * (width - len(s)) for s in sources])
    return src, src != PAD_ID


@dataclass(frozen=True)
class OracleState:
    table_id: Tensor  # (batch,) the source's first token picks the table
    src_len: Tensor  # (batch,) real source length
    prefix: Tensor  # (batch, t) tokens fed so far, <s> first
    width: int  # padded source length

    def select(self, index: Tensor, same_source: bool = False) -> OracleState:
        rows = (self.table_id[index], self.src_len[index], self.prefix[index])
        if same_source:  # the search promises that row i keeps its source: check it
            assert torch.equal(rows[0], self.table_id) and torch.equal(rows[1], self.src_len)
        return OracleState(*rows, self.width)

    def expand(self, beam: int) -> OracleState:
        return self.select(expanded_rows(self.prefix.size(0), beam, self.prefix.device))


class OracleModel(Seq2Seq):
    """``P(y_t | prefix)`` read from ``tables[src[0]][prefix]``; a prefix not listed ends.

    The attention of a step is one-hot on source position ``prev_token % src_len``, so the
    attention a search reports can be traced back to the path of the hypothesis.
    """

    def __init__(self, tables: dict[int, Table], vocab_size: int = 8) -> None:
        super().__init__()
        self.tables, self.vocab_size = tables, vocab_size
        self.encode_calls = 0
        self.step_rows: list[int] = []  # rows per decode_step: shows finished rows being dropped
        self.need_attention = False

    def encode(
        self, src: Tensor, src_mask: Tensor, need_attention: bool = False, use_cache: bool = True
    ) -> OracleState:
        self.encode_calls += 1
        self.need_attention = need_attention
        empty = src.new_zeros((src.size(0), 0))
        return OracleState(src[:, 0], src_mask.sum(1), empty, src.size(1))

    def decode_step(
        self, prev_tokens: Tensor, state: OracleState
    ) -> tuple[Tensor, OracleState, Tensor | None]:
        self.step_rows.append(prev_tokens.numel())
        prefix = torch.cat((state.prefix, prev_tokens.unsqueeze(1)), dim=1)
        logits = torch.full((prev_tokens.numel(), self.vocab_size), -math.inf)
        rows = zip(state.table_id.tolist(), prefix.tolist(), strict=True)
        for row, (table_id, seq) in enumerate(rows):
            probs = self.tables[table_id].get(tuple(seq[1:]), {EOS_ID: 1.0})
            for token, p in probs.items():
                logits[row, token] = math.log(p)
        attn = None
        if self.need_attention:
            position = prev_tokens % state.src_len
            attn = nn.functional.one_hot(position, state.width).float()
        return logits, OracleState(state.table_id, state.src_len, prefix, state.width), attn


def sequence_prob(table: Table, tokens: list[int], ended: bool = True) -> float:
    """The oracle's probability of ``tokens`` (then ``</s>`` when ``ended``)."""
    p, path = 1.0, list(tokens) + ([EOS_ID] if ended else [])
    for t, token in enumerate(path):
        p *= table.get(tuple(path[:t]), {EOS_ID: 1.0}).get(token, 0.0)
    return p


@dataclass(frozen=True)
class TinyState:
    memory: Tensor  # (batch, src_len, dim)
    src_mask: Tensor  # (batch, src_len)
    hidden: Tensor  # (batch, dim)

    def select(self, index: Tensor, same_source: bool = False) -> TinyState:
        if same_source:  # keep the source side, as the real models do; the promise is checked
            assert torch.equal(self.memory[index], self.memory)
            return TinyState(self.memory, self.src_mask, self.hidden[index])
        return TinyState(self.memory[index], self.src_mask[index], self.hidden[index])

    def expand(self, beam: int) -> TinyState:
        return self.select(expanded_rows(self.hidden.size(0), beam, self.hidden.device))


class TinyRandomModel(Seq2Seq):
    """A random GRU decoder with dot attention over source embeddings (padding masked)."""

    def __init__(self, vocab_size: int = 7, dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab_size, dim)
        self.cell = nn.GRUCell(2 * dim, dim)
        self.out = nn.Linear(2 * dim, vocab_size)
        self.eval()

    def encode(
        self, src: Tensor, src_mask: Tensor, need_attention: bool = False, use_cache: bool = True
    ) -> TinyState:
        memory = self.embed(src)
        mean = (memory * src_mask.unsqueeze(2)).sum(1) / src_mask.sum(1, keepdim=True)
        return TinyState(memory, src_mask, torch.tanh(mean))

    def decode_step(
        self, prev_tokens: Tensor, state: TinyState
    ) -> tuple[Tensor, TinyState, Tensor | None]:
        scores = torch.einsum("bsd,bd->bs", state.memory, state.hidden)
        attn = scores.masked_fill(~state.src_mask, -math.inf).softmax(dim=1)
        context = torch.einsum("bs,bsd->bd", attn, state.memory)
        hidden = self.cell(torch.cat((self.embed(prev_tokens), context), 1), state.hidden)
        logits = 3.0 * self.out(torch.cat((hidden, context), 1))
        return logits, TinyState(state.memory, state.src_mask, hidden), attn

    def sequence_log_prob(self, src: Tensor, tokens: list[int], ended: bool = True) -> float:
        """Teacher-forced log-probability of ``tokens`` (+ ``</s>``) for one ``(1, S)`` source."""
        state = self.encode(src, torch.ones_like(src, dtype=torch.bool))
        path, prev, total = list(tokens) + ([EOS_ID] if ended else []), BOS_ID, 0.0
        with torch.no_grad():
            for token in path:
                logits, state, _ = self.decode_step(torch.tensor([prev]), state)
                total += float(torch.log_softmax(logits.double(), dim=1)[0, token])
                prev = token
        return total


def all_sequences(tokens: list[int], max_len: int) -> list[tuple[list[int], bool]]:
    """Every output of at most ``max_len`` decoder steps: ended ones and ones cut at max_len."""
    out: list[tuple[list[int], bool]] = []
    for n in range(max_len):
        out += [(list(seq), True) for seq in itertools.product(tokens, repeat=n)]
    out += [(list(seq), False) for seq in itertools.product(tokens, repeat=max_len)]
    return out
