"""From hypotheses to what a user sees: plain text, the n-best list, attention columns.

One output line per input, always: a newline a detokenizer might produce becomes a space.
Both engines finish here: the torch engine with :class:`nmt.decoding.Hypothesis`, the
CTranslate2 engine (:mod:`nmt.translate.ctranslate2_engine`) with its own hypotheses, so this
module never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.tokenize import SPACE_MARK
from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.translate.result import NBestEntry, Translation

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from torch import Tensor

_NEWLINES = str.maketrans({"\n": " ", "\r": " "})


@dataclass(frozen=True)
class PreparedSource:
    """A source sentence as the model reads it."""

    source: str
    tokens: list[str]
    ids: list[int]
    truncated: bool
    prefix_tokens: list[str] = field(default_factory=list)  # forced target prefix, as written
    prefix_ids: list[int] = field(default_factory=list)


class ScoredHypothesis(Protocol):
    """What finishing reads of a hypothesis (:class:`nmt.decoding.Hypothesis` is one).

    ``attention`` is ``(len(tokens), src_len)``, columns the source tokens as given to the
    search (a tensor from the torch engine, a numpy array from the CTranslate2 engine).
    """

    @property
    def tokens(self) -> list[int]: ...
    @property
    def score(self) -> float: ...
    @property
    def norm_score(self) -> float: ...
    @property
    def attention(self) -> Tensor | NDArray[np.float32] | None: ...


def empty_translation(prep: PreparedSource, attention: Any = None) -> Translation:
    """The :class:`Translation` of a source with no tokens, which never reaches the model;
    ``attention`` is the engine's ``(0, 0)`` matrix when attention was asked for."""
    empty = NBestEntry("", 0.0, 0.0, [])
    return Translation(prep.source, "", 0.0, 0.0, [empty], [], [], attention, prep.truncated)


def finish(
    processor: TextProcessor, prep: PreparedSource, hyps: Sequence[ScoredHypothesis],
    replace_unk: bool, with_attention: bool,
) -> Translation:
    """The :class:`Translation` of one source from its n-best list (best first, not empty)."""
    n_src = len(prep.tokens)
    nbest = [
        NBestEntry(hypothesis_text(processor, h, prep.tokens, replace_unk, prep.prefix_tokens),
                   h.score, h.norm_score,
                   processor.tgt_vocab.decode(h.tokens, strip_special=False))
        for h in hyps
    ]
    best = hyps[0]
    # Columns: the real source tokens (the torch engine's searches also report the appended
    # </s>).
    attn = best.attention[:, :n_src] if with_attention and best.attention is not None else None
    return Translation(prep.source, nbest[0].translation, best.score, best.norm_score, nbest,
                       list(prep.tokens), nbest[0].tokens, attn, prep.truncated)


def hypothesis_text(
    processor: TextProcessor, hyp: ScoredHypothesis, src_tokens: list[str], replace_unk: bool,
    forced: list[str] | None = None,
) -> str:
    """Plain text of a hypothesis: specials dropped, <unk> replaced when asked, and the
    ``forced`` prefix tokens as the user wrote them (an out-of-vocabulary word stays)."""
    forced = forced or []
    vocab = processor.tgt_vocab
    tokens: list[str] = []
    for step, index in enumerate(hyp.tokens):
        if index == EOS_ID:
            break
        if index in (PAD_ID, BOS_ID):  # the searches never emit these; never show them
            continue
        if step < len(forced):
            tokens.append(forced[step])
            continue
        if index == UNK_ID and replace_unk and hyp.attention is not None:
            # Most-attended real source token (the torch engine's searches also report the
            # source's </s>, as a last column).
            source = src_tokens[int(hyp.attention[step, : len(src_tokens)].argmax())]
            tokens.append(processor.source_token_as_target(source))
        else:
            tokens.append(vocab.id_to_token(index))
    return processor.detokenize_tgt(tokens).translate(_NEWLINES)


def attention_labels(processor: TextProcessor, translation: Translation
                     ) -> tuple[list[str], list[str]]:  # fmt: skip
    """The labels of a translation's attention matrix: one per source token the model read
    (columns) and one per target token (rows), word-boundary marks dropped (see
    :meth:`~nmt.datautil.pipeline.TextProcessor.src_tokens_for_display`)."""
    n_src = len(translation.src_tokens)
    src_labels = processor.src_tokens_for_display(translation.source)[:n_src]
    tgt_labels = [t.replace(SPACE_MARK, "") or SPACE_MARK for t in translation.tokens]
    return src_labels, tgt_labels


def plot_translation_attention(processor: TextProcessor, translation: Translation,
                               path: str | Path) -> Path:  # fmt: skip
    """Write the attention heatmap of a translation made ``with_attention`` (PNG)."""
    from nmt.attention_plot import plot_attention

    if translation.attention is None:
        raise ValueError("translate(..., with_attention=True) first: this has no attention")
    src_labels, tgt_labels = attention_labels(processor, translation)
    return plot_attention(src_labels, tgt_labels, translation.attention, path,
                          title=translation.translation)
