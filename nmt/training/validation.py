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
from nmt.decoding.batches import length_sorted_batches, truncate
from nmt.decoding.greedy import greedy_search
from nmt.models.interface import Seq2Seq
from nmt.models.registry import model_kind, source_token_limit
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
    # Pairs longer than training's data.max_len are left out of the loss, as training leaves
    # them out (the Transformer could not even read them); BLEU still translates them, cut.
    limit = cfg.data.max_len
    src_len, tgt_len = dev.corpus.src_lengths(), dev.corpus.tgt_lengths()
    nll = torch.zeros((), device=device)
    tokens = 0
    for batch_indices in sampler.epoch_batches(0):
        if should_stop():
            raise ValidationAborted
        indices = [i for i in batch_indices if src_len[i] <= limit and tgt_len[i] <= limit]
        if not indices:
            continue
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
    # As translate does: the same batches, and sources cut to what the model takes.
    limit = source_token_limit(cfg.model, cfg.data.max_len)
    cap = model_kind(cfg.model).position_limit(cfg.model)
    sources = [truncate(list(dev.corpus.src(i)), limit)[0] for i in range(n)]
    hyps = [""] * n
    for chunk in length_sorted_batches([len(s) for s in sources], cfg.decode.batch_size):
        if should_stop():
            raise ValidationAborted
        src, src_mask = collate_src([sources[i] for i in chunk])
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
