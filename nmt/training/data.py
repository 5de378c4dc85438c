"""Corpora as token ids for training and validation, cached in ``RUN_DIR/cache``.

Tokenizing (jieba especially) is the slow part of start-up, so the ids are cached under a key
made of the corpus bytes, the vocabulary/tokenizer files and the data settings: change any of
them and the cache is rebuilt, otherwise a second run (or a resume) loads it in milliseconds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from nmt.config import Config, DataConfig, config_to_dict
from nmt.datautil.batching import TokenizedCorpus, cache_key, cached_corpus
from nmt.datautil.corpus import aligned_paths, read_parallel
from nmt.datautil.pipeline import TextProcessor, vocab_layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevSet:
    """Dev pairs as ids, and the target sentences (normalized text) as BLEU references."""

    corpus: TokenizedCorpus
    references: list[str]


def corpus_files(data_cfg: DataConfig, path: str) -> list[Path]:
    """The files a corpus setting reads (one TSV, or the two aligned files)."""
    if data_cfg.format == "aligned":
        return list(aligned_paths(path))
    return [Path(path)]


def _key(cfg: Config, path: str, split: str) -> str:
    layout = vocab_layout(cfg.run_dir, cfg.data)
    vocab_files = sorted(p for p in layout.directory.iterdir() if p.is_file())
    settings = json.dumps({"split": split, "data": config_to_dict(cfg.data)}, sort_keys=True)
    return cache_key([*corpus_files(cfg.data, path), *vocab_files], settings)


def load_train(cfg: Config, processor: TextProcessor) -> TokenizedCorpus:
    """Training pairs as ids; pairs empty on a side or longer than ``data.max_len`` dropped."""

    def build() -> TokenizedCorpus:
        # normalize=False: encode_src/encode_tgt normalize, once.
        pairs = read_parallel(cfg.data.train, cfg.data, normalize=False)
        src, tgt = [], []
        too_long = 0
        for s_text, t_text in zip(pairs.src, pairs.tgt, strict=True):
            s, t = processor.encode_src(s_text), processor.encode_tgt(t_text)
            if not s or not t:
                continue
            if max(len(s), len(t)) > cfg.data.max_len:
                too_long += 1
                continue
            src.append(s)
            tgt.append(t)
        if too_long:
            log.info(
                "%s: %d pairs longer than data.max_len=%d left out",
                cfg.data.train,
                too_long,
                cfg.data.max_len,
            )
        return TokenizedCorpus.from_lists(src, tgt)

    corpus = cached_corpus(
        Path(cfg.run_dir) / "cache", "train", _key(cfg, cfg.data.train, "train"), build
    )
    return corpus


def load_dev(cfg: Config, processor: TextProcessor) -> DevSet | None:
    """The dev set (None when ``data.dev`` is not set); every usable pair is kept."""
    if not cfg.data.dev:
        return None
    pairs = read_parallel(cfg.data.dev, cfg.data)
    keep = [i for i, (s, t) in enumerate(zip(pairs.src, pairs.tgt, strict=True)) if s and t]
    if not keep:
        log.warning("%s: no usable dev pairs; training runs without validation", cfg.data.dev)
        return None
    references = [pairs.tgt[i] for i in keep]

    def build() -> TokenizedCorpus:
        src = [processor.encode_src(pairs.src[i]) for i in keep]
        tgt = [processor.encode_tgt(pairs.tgt[i]) for i in keep]
        return TokenizedCorpus.from_lists(src, tgt)

    key = _key(cfg, cfg.data.dev, "dev")
    return DevSet(cached_corpus(Path(cfg.run_dir) / "cache", "dev", key, build), references)
