"""Corpora as token ids for training and validation, cached in ``RUN_DIR/cache``.

The training corpus is tokenized once, by ``nmt build-vocab``, into memory-mapped shards
(:mod:`nmt.datautil.shards`) under a key made of the corpus bytes, the vocabulary files and the
data settings (:func:`nmt.datautil.cache.train_cache_key`); training opens them in a moment and
never loads the corpus into memory. When the cache is missing or stale (deleted, or the corpus
changed since build-vocab), it is rebuilt here with the same streaming code and
``data.workers`` processes. The dev set is small: its ids are kept in one ``.npz`` file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from nmt.config import Config, config_to_dict
from nmt.datautil.batching import TokenizedCorpus, cache_key, cached_corpus
from nmt.datautil.cache import (
    corpus_files,
    remove_other_train_caches,
    train_cache_dir,
    train_cache_key,
)
from nmt.datautil.corpus import read_parallel, reference_text
from nmt.datautil.pipeline import TextProcessor, vocab_layout
from nmt.datautil.shards import CacheUnreadable, ShardedCorpus, write_shards
from nmt.datautil.stream import resolve_workers, tokenize_stream

log = logging.getLogger(__name__)

__all__ = ["DevSet", "corpus_files", "load_dev", "load_train"]


@dataclass(frozen=True)
class DevSet:
    """Dev pairs as ids, and their target sentences as the corpus has them (BLEU references:
    the same as ``nmt evaluate --split dev`` and ``nmt tune`` score against)."""

    corpus: TokenizedCorpus
    references: list[str]


def load_train(cfg: Config, processor: TextProcessor) -> ShardedCorpus:
    """Training pairs as ids; pairs empty on a side or longer than ``data.max_len`` left out.

    ``cfg`` must carry absolute corpus paths (:func:`nmt.config.with_absolute_paths`), as
    ``build-vocab`` computed the cache key from them.
    """
    run_dir = Path(cfg.run_dir)
    key = train_cache_key(cfg)
    directory = train_cache_dir(run_dir, key)
    if directory.is_dir():
        try:
            corpus = ShardedCorpus(directory, cfg.data.max_len, key)
            log.debug("token cache hit: %s", directory)
            return _report(cfg, corpus)
        except CacheUnreadable as e:
            log.warning("%s: unreadable token cache (%s); rebuilding it", directory, e)
    log.info("no token cache for this corpus and vocabulary yet; tokenizing %s",
             cfg.data.train)
    layout = vocab_layout(run_dir, cfg.data)
    workers = resolve_workers(cfg.data)
    with tokenize_stream(cfg.data, layout.spm_paths, run_dir / "cache", workers) as stream:
        write_shards(stream, processor.src_vocab, processor.tgt_vocab, directory, key)
    remove_other_train_caches(run_dir, directory)
    return _report(cfg, ShardedCorpus(directory, cfg.data.max_len, key))


def _report(cfg: Config, corpus: ShardedCorpus) -> ShardedCorpus:
    if corpus.too_long:
        log.info("%s: %d pairs longer than data.max_len=%d left out", cfg.data.train,
                 corpus.too_long, cfg.data.max_len)
    return corpus


def _dev_key(cfg: Config, path: str) -> str:
    layout = vocab_layout(cfg.run_dir, cfg.data)
    vocab_files = sorted(p for p in layout.directory.iterdir() if p.is_file())
    settings = json.dumps({"split": "dev", "data": config_to_dict(cfg.data)}, sort_keys=True)
    return cache_key([*corpus_files(cfg.data, path), *vocab_files], settings)


def load_dev(cfg: Config, processor: TextProcessor) -> DevSet | None:
    """The dev set (None when ``data.dev`` is not set); every usable pair is kept."""
    if not cfg.data.dev:
        return None
    pairs = read_parallel(cfg.data.dev, cfg.data)
    keep = [i for i, (s, t) in enumerate(zip(pairs.src, pairs.tgt, strict=True)) if s and t]
    if not keep:
        log.warning("%s: no usable dev pairs; training runs without validation", cfg.data.dev)
        return None
    as_read = read_parallel(cfg.data.dev, cfg.data, normalize=False)
    raw = dict(zip(as_read.line_numbers, as_read.tgt, strict=True))
    references = [reference_text(raw[pairs.line_numbers[i]]) for i in keep]

    def build() -> TokenizedCorpus:
        # encode_src converts Chinese to the model's script (data.zh_script) as translate
        # does, so dev BLEU scores what translate would give; references stay as written.
        # zh_script is part of the key (the whole data config is), and auto's script follows
        # from the vocabulary files, which the key hashes.
        src = [processor.encode_src(pairs.src[i]) for i in keep]
        tgt = [processor.encode_tgt(pairs.tgt[i]) for i in keep]
        return TokenizedCorpus.from_lists(src, tgt)

    key = _dev_key(cfg, cfg.data.dev)
    return DevSet(cached_corpus(Path(cfg.run_dir) / "cache", "dev", key, build), references)
