"""Subword regularisation of training batches (``train.sp_alpha``).

The token cache holds one segmentation per pair: the deterministic one that decoding and
validation use too. A model that only ever sees that one learns nothing about how the pieces of
a word relate; sampling a different segmentation each time a pair is batched (Kudo 2018 for
unigram models; BPE-dropout, Provilkov et al. 2020, for bpe models) is the regulariser.

A sentencepiece side's cached pieces concatenate to its text (the models are trained with
identity normalisation, see :func:`nmt.datautil.tokenize.train_sentencepiece`), so the text
comes back from the ids exactly and is segmented again by sampling; no raw text is kept.
A sequence is kept as cached when it has an ``<unk>`` (its text cannot be recovered) or when
its sample would exceed ``data.max_len``; pieces the run's vocabulary lacks are not sampled
(:func:`known_segmentation`).

The whole corpus is sampled once per epoch (:meth:`SubwordSampler.sample_corpus`; every pair
is used once an epoch, so it still sees a new segmentation each time) and the epoch's batches
are packed by the sampled lengths. Packed by the cached lengths instead, one sentence split
near letter by letter sets the width of its whole batch: on the cmn-eng spm recipe the widest
batch came out 2.7-3.1x ``train.batch_tokens`` (``scripts/bench_subword_sampling.py``, #19).

An epoch's draws are seeded from (seed, epoch) (:func:`nmt.runtime.derived_seed`), which
repeats them within a process only: sentencepiece's generator draws differently in every
process even from one seed. So training draws an epoch once, on rank 0, and keeps it in the
run's cache (:class:`nmt.training.session.TrainingSession`): the other ranks, which must agree
on the batches, and a resumed run read it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nmt.datautil.batching import PairSource, TokenizedCorpus
from nmt.datautil.directions import TAGS
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.tokenize import SentencePieceTokenizer
from nmt.datautil.vocab import UNK_ID, Vocabulary

__all__ = ["SubwordSampler", "known_segmentation"]


class _Side:
    """One language's sentencepiece tokenizer and vocabulary, or None for a side not sampled."""

    def __init__(self, tokenizer: object, vocab: Vocabulary, alpha: float, max_len: int) -> None:
        self.tokenizer = tokenizer if isinstance(tokenizer, SentencePieceTokenizer) else None
        self.vocab, self.alpha, self.max_len = vocab, alpha, max_len

    def resample(self, ids: np.ndarray, skip: int) -> np.ndarray:
        """``ids`` segmented again by sampling; the first ``skip`` ids (a tag) kept as they are."""
        body = ids[skip:]
        if self.tokenizer is None or not len(body) or bool((body == UNK_ID).any()):
            return ids
        cached = [self.vocab.id_to_token(int(i)) for i in body]
        sampled = self.tokenizer.sample(self.tokenizer.detokenize(cached), self.alpha)
        pieces = known_segmentation(cached, sampled, self.vocab)
        if pieces is None or skip + len(pieces) > self.max_len:
            return ids
        return np.asarray([*ids[:skip].tolist(), *self.vocab.encode(pieces)], dtype=ids.dtype)


def known_segmentation(cached: Sequence[str], sampled: Sequence[str], vocab: Vocabulary
                       ) -> list[str] | None:  # fmt: skip
    """``sampled`` where its pieces are in ``vocab``, ``cached`` (all known) elsewhere.

    The sentencepiece model knows pieces that the run's vocabulary left out (those seen fewer
    than ``data.min_freq`` times in the cached segmentation: a character that only ever
    occurs inside longer pieces). Both segmentations cut the same string; between two cuts
    they share, the sampled pieces are kept when all are known, else the cached ones are.
    None when the two do not spell the same string.
    """
    if "".join(cached) != "".join(sampled):
        return None
    out: list[str] = []
    chunk: list[str] = []
    start = end = 0  # cached[start:end] covers the chunk so far
    cached_len = sampled_len = 0
    for piece in sampled:
        chunk.append(piece)
        sampled_len += len(piece)
        while cached_len < sampled_len:
            cached_len += len(cached[end])
            end += 1
        if cached_len == sampled_len:  # a cut of both
            out.extend(chunk if all(p in vocab for p in chunk) else cached[start:end])
            chunk, start = [], end
    return out


class SubwordSampler:
    """Collates training batches with their sentencepiece sides sampled afresh."""

    def __init__(self, processor: TextProcessor, alpha: float, max_len: int) -> None:
        """``processor``: the run's (a both-directions run's backward pairs read the target
        language on the source side, so each language keeps its own tokenizer there)."""
        p = processor
        self._forward = (_Side(p.src_tokenizer, p.src_vocab, alpha, max_len),
                         _Side(p.tgt_tokenizer, p.tgt_vocab, alpha, max_len))  # fmt: skip
        self._backward = (_Side(p.tgt_tokenizer, p.src_vocab, alpha, max_len),
                          _Side(p.src_tokenizer, p.tgt_vocab, alpha, max_len))  # fmt: skip
        self._tags = {p.src_vocab.token_to_id(tag) for tag in TAGS if tag in p.src_vocab}
        back = p.reversed().source_tag if p.source_tag is not None else None
        self._backward_tag = None if back is None else p.src_vocab.token_to_id(back)

    @classmethod
    def for_run(cls, processor: TextProcessor, alpha: float, max_len: int
                ) -> SubwordSampler | None:  # fmt: skip
        """The sampler of ``train.sp_alpha``; None when it is off or no side is sentencepiece."""
        sides = (processor.src_tokenizer, processor.tgt_tokenizer)
        if alpha <= 0 or not any(isinstance(t, SentencePieceTokenizer) for t in sides):
            return None
        return cls(processor, alpha, max_len)

    def pair(self, src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One training pair (source ids maybe starting with a direction tag), resampled."""
        tagged = len(src) > 0 and int(src[0]) in self._tags
        backward = tagged and int(src[0]) == self._backward_tag
        src_side, tgt_side = self._backward if backward else self._forward
        return src_side.resample(src, int(tagged)), tgt_side.resample(tgt, 0)

    def sample_corpus(self, corpus: PairSource, seed: int) -> TokenizedCorpus:
        """Every pair of ``corpus`` with its sentencepiece sides drawn anew: one epoch's
        training data, to be packed into batches by its own lengths. The same ``seed`` draws
        the same corpus in this process (not in another: see the module's notes)."""
        import sentencepiece

        sentencepiece.set_random_generator_seed(seed)
        pairs = [self.pair(corpus.src(i), corpus.tgt(i)) for i in range(len(corpus))]
        return TokenizedCorpus.from_lists([s for s, _ in pairs], [t for _, t in pairs])
