"""What every search returns: per source sentence, its n-best hypotheses, best first."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["Hypothesis", "SearchResult", "collect_hypotheses"]


@dataclass(frozen=True)
class Hypothesis:
    """One output sequence.

    Attributes:
        tokens: target ids, without ``<s>`` and ``</s>``.
        score: summed log-probability of the decoder steps taken (``</s>`` included when the
            hypothesis ended with it), under the model's unwarped distribution.
        norm_score: ``score`` divided by the GNMT length penalty; beams are ranked by it.
        attention: ``(len(tokens), src_len)`` float32 on the CPU when requested, else None.
            Row ``i`` is the attention the model paid while producing ``tokens[i]``; column
            ``j`` is the ``j``-th real (unpadded) token of the source as it was given to the
            search. The row of the ``</s>`` step is not included.
        ended: True when the hypothesis ended with ``</s>``, False when it was cut at max_len.
        unmet: constraint tokens it misses (constrained beam search, when the length limit cut
            it before every phrase was produced); 0 otherwise.
    """

    tokens: list[int]
    score: float
    norm_score: float
    attention: Tensor | None = field(default=None, compare=False)  # tensors have no plain ==
    ended: bool = True
    unmet: int = 0


@dataclass(frozen=True)
class SearchResult:
    """The n-best lists of a batch, in input order: ``nbest[i]`` is sentence ``i``'s, best first.

    A list holds fewer than ``n_best`` entries only when the search space had fewer complete
    hypotheses (tiny vocabularies in tests); it is never empty.
    """

    nbest: list[list[Hypothesis]]

    def __len__(self) -> int:
        return len(self.nbest)

    def __getitem__(self, index: int) -> list[Hypothesis]:
        return self.nbest[index]

    def __iter__(self) -> Iterator[list[Hypothesis]]:
        return iter(self.nbest)

    def best(self) -> list[Hypothesis]:
        """The top hypothesis of every sentence, in input order."""
        return [hyps[0] for hyps in self.nbest]


def collect_hypotheses(
    tokens: Tensor,
    n_tokens: Tensor,
    ended: Tensor,
    scores: Tensor,
    norm_scores: Tensor,
    attention: Tensor | None,
    src_mask: Tensor,
) -> SearchResult:
    """Turn the search's final tensors into Python objects (one host transfer for the batch).

    Args:
        tokens: ``(batch, n, max_len)`` output ids (anything after ``n_tokens`` is ignored).
        n_tokens: ``(batch, n)`` output lengths without ``</s>``.
        ended: ``(batch, n)`` bool, True where the hypothesis ended with ``</s>``.
        scores, norm_scores: ``(batch, n)`` raw and length-normalised scores, already sorted
            best first; ``-inf`` marks an empty slot, which is skipped.
        attention: ``(batch, n, max_len, src_len)`` or None.
        src_mask: ``(batch, src_len)`` bool, True at real source tokens.
    """
    token_rows = tokens.cpu().tolist()
    lengths, ended_flags = n_tokens.cpu().tolist(), ended.cpu().tolist()
    raw, norm = scores.cpu().tolist(), norm_scores.cpu().tolist()
    attn = attention.float().cpu() if attention is not None else None
    mask = src_mask.cpu()
    nbest: list[list[Hypothesis]] = []
    for i, row in enumerate(token_rows):
        hyps: list[Hypothesis] = []
        for j, ids in enumerate(row):
            if norm[i][j] == -math.inf and hyps:
                continue
            length = lengths[i][j]
            hyp_attn = attn[i, j, :length][:, mask[i]] if attn is not None else None
            hyps.append(
                Hypothesis(ids[:length], raw[i][j], norm[i][j], hyp_attn, bool(ended_flags[i][j]))
            )
        nbest.append(hyps)
    return SearchResult(nbest)
