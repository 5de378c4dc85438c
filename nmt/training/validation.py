"""Validation: dev loss/perplexity (teacher forced) and dev BLEU (greedy decoding).

Validation leaves no trace on training: the model goes back to train mode and every random
number generator is restored afterwards (``torch.random.fork_rng``), so a run that validates at
some step continues exactly like one that did not, which keeps resumes exact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import sacrebleu
import torch

from nmt.config import Config
from nmt.datautil.batching import TokenBatchSampler, collate, collate_src
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.vocab import PAD_ID
from nmt.decoding.greedy import greedy_search
from nmt.models.interface import Seq2Seq
from nmt.runtime import autocast
from nmt.training.data import DevSet
from nmt.training.loss import label_smoothed_loss


class ValidationAborted(Exception):
    """A stop was requested (signal) while validating; the partial result is discarded."""


@dataclass(frozen=True)
class DevResult:
    """Dev metrics of one validation."""

    loss: float  # NLL per target token (no label smoothing)
    bleu: float
    sentences: int  # sentences decoded for BLEU
    seconds: float

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss, 100.0))


def bleu_tokenize(tgt_lang: str) -> str:
    """sacrebleu's tokenizer for the target language: ``zh`` for Chinese, ``13a`` otherwise."""
    return "zh" if tgt_lang == "zh" else "13a"


def validate(
    model: Seq2Seq,
    dev: DevSet,
    processor: TextProcessor,
    cfg: Config,
    device: torch.device,
    dtype: torch.dtype | None,
    should_stop: Callable[[], bool] = lambda: False,
) -> DevResult:
    """Dev loss over the whole dev set and BLEU over its first ``train.valid_bleu_sentences``.

    Raises:
        ValidationAborted: ``should_stop()`` became true between two batches.
    """
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            loss = _dev_loss(model, dev, cfg, device, dtype, should_stop)
            hyps, refs = _translate(model, dev, processor, cfg, device, dtype, should_stop)
    finally:
        model.train(was_training)
    bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize=bleu_tokenize(cfg.data.tgt_lang)).score
    return DevResult(loss, float(bleu), len(hyps), time.perf_counter() - start)


def _dev_loss(
    model: Seq2Seq,
    dev: DevSet,
    cfg: Config,
    device: torch.device,
    dtype: torch.dtype | None,
    should_stop: Callable[[], bool],
) -> float:
    sampler = TokenBatchSampler(
        dev.corpus.src_lengths(), dev.corpus.tgt_lengths(), cfg.train.batch_tokens, seed=0
    )
    nll = torch.zeros((), device=device)
    tokens = 0
    for indices in sampler.epoch_batches(0):
        if should_stop():
            raise ValidationAborted
        batch = collate(dev.corpus, indices).to(device)
        with autocast(device, dtype):
            logits = model(batch.src, batch.src_mask, batch.tgt_in)
        nll += label_smoothed_loss(logits, batch.tgt_out, 0.0, PAD_ID).nll
        tokens += batch.n_tgt_tokens
    return float(nll) / max(tokens, 1)


def _translate(
    model: Seq2Seq,
    dev: DevSet,
    processor: TextProcessor,
    cfg: Config,
    device: torch.device,
    dtype: torch.dtype | None,
    should_stop: Callable[[], bool],
) -> tuple[list[str], list[str]]:
    n = len(dev.corpus)
    if cfg.train.valid_bleu_sentences:
        n = min(n, cfg.train.valid_bleu_sentences)
    # Longest first, in batches of similar length: less padding, and the slowest batch first.
    order = sorted(range(n), key=lambda i: -len(dev.corpus.src(i)))
    cap = cfg.model.max_positions if cfg.model.type == "transformer" else None
    hyps = [""] * n
    for start in range(0, n, cfg.decode.batch_size):
        if should_stop():
            raise ValidationAborted
        chunk = order[start : start + cfg.decode.batch_size]
        src, src_mask = collate_src([dev.corpus.src(i) for i in chunk])
        with autocast(device, dtype):
            result = greedy_search(
                model,
                src.to(device),
                src_mask.to(device),
                max_len_a=cfg.decode.max_len_a,
                max_len_b=cfg.decode.max_len_b,
                max_len_cap=cap,
            )
        for i, hyp in zip(chunk, result.best(), strict=True):
            hyps[i] = processor.decode_tgt(hyp.tokens)
    return hyps, dev.references[:n]
