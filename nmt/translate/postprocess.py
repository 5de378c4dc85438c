"""From hypotheses to what a user sees: plain text, the n-best list, attention columns.

One output line per input, always: a newline a detokenizer might produce becomes a space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.decoding import Hypothesis
from nmt.translate.result import NBestEntry, Translation

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


def finish(
    processor: TextProcessor, prep: PreparedSource, hyps: list[Hypothesis], replace_unk: bool,
    with_attention: bool,
) -> Translation:
    """The :class:`Translation` of one source from its n-best list (``[]``: an empty source)."""
    if not hyps:  # nothing to translate
        empty = NBestEntry("", 0.0, 0.0, [])
        attn = torch.zeros(0, 0) if with_attention else None
        return Translation(prep.source, "", 0.0, 0.0, [empty], [], [], attn, prep.truncated)
    n_src = len(prep.tokens)
    nbest = [
        NBestEntry(hypothesis_text(processor, h, prep.tokens, replace_unk, prep.prefix_tokens),
                   h.score, h.norm_score,
                   processor.tgt_vocab.decode(h.tokens, strip_special=False))
        for h in hyps
    ]
    best = hyps[0]
    # Columns: the real source tokens (the search also reports the appended </s>).
    attn = best.attention[:, :n_src] if with_attention and best.attention is not None else None
    return Translation(prep.source, nbest[0].translation, best.score, best.norm_score, nbest,
                       list(prep.tokens), nbest[0].tokens, attn, prep.truncated)

def hypothesis_text(
    processor: TextProcessor, hyp: Hypothesis, src_tokens: list[str], replace_unk: bool,
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
            # Most-attended real source token (the last column is the source's </s>).
            source = src_tokens[int(hyp.attention[step, : len(src_tokens)].argmax())]
            tokens.append(processor.source_token_as_target(source))
        else:
            tokens.append(vocab.id_to_token(index))
    return processor.detokenize_tgt(tokens).translate(_NEWLINES)
