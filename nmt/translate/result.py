"""What a translation returns: the best text, the n-best list, tokens and attention."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # types only: the CTranslate2 engine returns these without importing torch
    import numpy as np
    from numpy.typing import NDArray
    from torch import Tensor

__all__ = ["NBestEntry", "Translation"]


class NBestEntry(NamedTuple):
    """One hypothesis of an n-best list (a tuple ``(translation, score, norm_score, tokens)``)."""

    translation: str
    score: float  # summed log-probability
    norm_score: float  # score / GNMT length penalty; the ranking key
    tokens: list[str]  # target tokens as the model produced them (<unk> not replaced)


@dataclass(frozen=True)
class Translation:
    """A translated sentence with its details.

    Attributes:
        source: the input as given.
        translation: the best hypothesis as plain text (``nbest[0].translation``).
        score, norm_score: of the best hypothesis; 0.0 for an empty input.
        nbest: best first; one entry for greedy/sampling (and for an empty input).
        src_tokens: the source tokens the model read (after normalization and truncation).
        tokens: the best hypothesis' target tokens.
        attention: ``(len(tokens), len(src_tokens))`` float32 when requested, else None: a
            tensor from the torch engine, a numpy array from the CTranslate2 engine.
        truncated: the source was longer than the model takes and was cut.
        unmet_terms: glossary target terms (their tokens) the best hypothesis lacks because the
            length limit came first (0 without a glossary).
    """

    source: str
    translation: str
    score: float
    norm_score: float
    nbest: list[NBestEntry]
    src_tokens: list[str]
    tokens: list[str]
    attention: Tensor | NDArray[np.float32] | None = None
    truncated: bool = False
    unmet_terms: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``nmt translate --format jsonl`` (non-finite scores -> null)."""
        return {
            "source": self.source,
            "translation": self.translation,
            "score": _finite(self.score),
            "norm_score": _finite(self.norm_score),
            "nbest": [
                {"translation": e.translation, "score": _finite(e.score),
                 "norm_score": _finite(e.norm_score), "tokens": e.tokens}
                for e in self.nbest
            ],
            "src_tokens": self.src_tokens,
            "tokens": self.tokens,
            **({"truncated": True} if self.truncated else {}),
            **({"unmet_terms": self.unmet_terms} if self.unmet_terms else {}),
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
