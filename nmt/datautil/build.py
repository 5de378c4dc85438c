"""``nmt build-vocab``: corpus -> (sentencepiece models) -> vocabularies and the token cache.

Streams the training corpora once (:mod:`nmt.datautil.stream`: read, normalize, filter,
tokenize in worker processes, count), builds the vocabularies from the counts, and writes
``RUN_DIR/vocab/`` (see :func:`nmt.datautil.pipeline.vocab_layout`), the training token cache
that ``nmt train`` then opens instead of tokenizing again (:mod:`nmt.datautil.shards`), and the
resolved ``RUN_DIR/config.yaml`` (corpus paths made absolute). Every file is written atomically,
and nothing depends on hash-randomised iteration order or on the number of workers, so the same
inputs give byte-identical files. A run directory that holds checkpoints is refused: its model
belongs to its vocabulary. The dev corpus is small and read whole, for the OOV rate.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nmt.config import (
    Config,
    DataConfig,
    Lang,
    TokenizerConfig,
    dump_config,
    train_paths,
    with_absolute_paths,
)
from nmt.datautil.cache import (
    VOCAB_KEYS,
    remove_other_train_caches,
    train_cache_dir,
    train_cache_key,
)
from nmt.datautil.corpus import read_parallel
from nmt.datautil.directions import TAGS
from nmt.datautil.pipeline import INCOMPLETE_MARK, VocabLayout, vocab_layout
from nmt.datautil.shards import cache_size, write_shards
from nmt.datautil.stream import (
    CorpusCount,
    SideCounts,
    resolve_workers,
    sample_texts,
    tokenize_stream,
    usable_cores,
)
from nmt.datautil.tokenize import build_tokenizer, train_sentencepiece
from nmt.datautil.vocab import SPECIALS, Vocabulary
from nmt.errors import CheckpointError, DataError
from nmt.fileio import atomic_write_text

log = logging.getLogger(__name__)

_VOCAB_FILES = ("src.vocab", "tgt.vocab", "joint.vocab",
                "src.spm.model", "tgt.spm.model", "joint.spm.model")


@dataclass
class CorpusStats:
    """One corpus file as read: pairs kept and lines dropped per reason."""

    path: str
    pairs: int
    dropped: dict[str, int]


@dataclass
class SideStats:
    """One side (source or target) of the vocabulary summary."""

    lang: str
    tokenizer: str
    vocab_size: int
    train_tokens: int
    train_covered: int
    dev_tokens: int
    dev_oov: int
    lengths: tuple[int, int, int, int]  # train sentence length in tokens: p50, p90, p99, max

    @property
    def coverage(self) -> float:
        return self.train_covered / self.train_tokens if self.train_tokens else 1.0

    @property
    def dev_oov_rate(self) -> float:
        return self.dev_oov / self.dev_tokens if self.dev_tokens else 0.0


@dataclass
class VocabReport:
    """What :func:`build_vocab` did; :meth:`format` is the text ``nmt build-vocab`` prints."""

    run_dir: str
    train: CorpusStats  # all training corpora together
    dev: CorpusStats | None
    src: SideStats
    tgt: SideStats
    joint: bool
    files: list[str]
    max_len: int
    over_max_len: int
    seconds: float
    workers: int = 1
    cache: str = ""
    cache_bytes: int = 0
    sp_sampled: int = 0  # pairs the sentencepiece models were trained on (0: none trained)
    train_parts: list[CorpusStats] = dataclasses.field(default_factory=list)  # per corpus

    def format(self) -> str:
        """A human-readable summary, one fact per line."""
        s, t = self.src, self.tgt
        lines = [f"build-vocab: {s.lang} -> {t.lang}, run dir {self.run_dir}", "corpus"]
        parts = self.train_parts if len(self.train_parts) > 1 else []
        splits = [("train", self.train), *(("  part", p) for p in parts), ("dev", self.dev)]
        for split, stats in splits:
            if stats is not None:
                lines.append(f"  {split:<6}{stats.path}: {stats.pairs:,} pairs, "
                             f"dropped {_dropped(stats.dropped)}")
        if self.sp_sampled:
            lines.append(f"  sentencepiece trained on {self.sp_sampled:,} pairs")
        rows = [
            ("", f"src {s.lang} ({s.tokenizer})", f"tgt {t.lang} ({t.tokenizer})"),
            (f"vocab size ({len(SPECIALS)} specials" + (", joint)" if self.joint else ")"),
             f"{s.vocab_size:,}", f"{t.vocab_size:,}"),
            ("train tokens", f"{s.train_tokens:,}", f"{t.train_tokens:,}"),
            ("train coverage", _pct(s.coverage), _pct(t.coverage)),
        ]
        if self.dev is not None:
            rows += [
                ("dev tokens", f"{s.dev_tokens:,}", f"{t.dev_tokens:,}"),
                ("dev OOV rate", f"{_pct(s.dev_oov_rate)} ({s.dev_oov:,})",
                 f"{_pct(t.dev_oov_rate)} ({t.dev_oov:,})"),
            ]
        rows.append(("length p50/p90/p99/max", "/".join(map(str, s.lengths)),
                     "/".join(map(str, t.lengths))))
        lines.append("vocabulary")
        lines += [f"  {a:<32}{b:<24}{c}".rstrip() for a, b, c in rows]
        lines.append(f"  train pairs over max_len={self.max_len}: {self.over_max_len:,}"
                     " (training skips them)")
        if self.cache:
            lines.append(f"cache   {self.cache}: {self.cache_bytes / 2**20:,.1f} MiB "
                         "(the token ids nmt train reads)")
        lines.append(f"wrote   {', '.join(self.files)}")
        lines.append(f"time    {self.seconds:.1f} s, {self.workers} tokenizing "
                     f"worker{'s' if self.workers > 1 else ''}")
        return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _dropped(dropped: dict[str, int]) -> str:
    total = sum(dropped.values())
    if not total:
        return "0 lines"
    why = ", ".join(f"{reason}: {n:,}" for reason, n in sorted(dropped.items()))
    return f"{total:,} lines ({why})"


def percentiles(lengths: Sequence[int]) -> tuple[int, int, int, int]:
    """Nearest-rank p50, p90, p99 and the maximum (zeros for no data)."""
    side = SideCounts()
    side.add(np.zeros(0, dtype=np.int64), np.asarray(lengths, dtype=np.int64), 0)
    return side.percentiles()


def _train_sentencepiece(cfg: Config, layout: VocabLayout, workers: int) -> tuple[list[Path], int]:
    """Train the models the layout asks for on a seeded sample of the corpus; return the files
    written and the number of pairs sampled (0 when no model is needed)."""
    data = cfg.data
    if layout.src_spm is None and layout.tgt_spm is None:
        return [], 0
    src_texts, tgt_texts, seen = sample_texts(data, data.sp_sample_sentences, cfg.seed, workers)
    if not seen:
        raise DataError(f"{_train_name(data)}: no usable sentence pairs")
    jobs: list[tuple[Path, str, list[str], float]] = []
    if layout.joint_spm and layout.src_spm is not None:
        src, tgt = data.src_tokenizer, data.tgt_tokenizer
        if (src.sp_model_type, src.sp_vocab_size) != (tgt.sp_model_type, tgt.sp_vocab_size):
            log.warning("joint sentencepiece model: using the data.src_tokenizer settings")
        jobs.append((layout.src_spm, "src_tokenizer", src_texts + tgt_texts, 0.9995))
    else:
        for spm_path, side, texts, lang in (
            (layout.src_spm, "src_tokenizer", src_texts, data.src_lang),
            (layout.tgt_spm, "tgt_tokenizer", tgt_texts, data.tgt_lang),
        ):
            if spm_path is not None:
                # Chinese has thousands of rare characters; covering the last 0.05% of
                # them would spend pieces on characters seen once or twice.
                jobs.append((spm_path, side, texts, 1.0 if lang == "en" else 0.9995))
    for path, side, texts, coverage in jobs:
        tok_cfg: TokenizerConfig = getattr(data, side)
        log.info("training sentencepiece %s on %d sentences -> %s", tok_cfg.sp_model_type,
                 len(texts), path)
        try:
            train_sentencepiece(texts, path, model_type=tok_cfg.sp_model_type,
                                vocab_size=tok_cfg.sp_vocab_size, character_coverage=coverage,
                                seed=cfg.seed,
                                threads=data.sp_threads or usable_cores())
        except DataError as e:
            raise DataError(f"data.{side}.sp_vocab_size={tok_cfg.sp_vocab_size}: {e}") from None
    return [path for path, *_ in jobs], len(src_texts)


def _train_name(data: DataConfig) -> str:
    return ", ".join(train_paths(data))


def _side_stats(lang: Lang, tok_cfg: TokenizerConfig, vocab: Vocabulary, train: SideCounts,
                counts: dict[str, int], dev: list[list[str]] | None) -> SideStats:
    covered = sum(n for tok, n in counts.items() if tok in vocab)
    dev_tokens = sum(len(s) for s in dev) if dev is not None else 0
    dev_oov = sum(1 for s in dev for tok in s if tok not in vocab) if dev is not None else 0
    return SideStats(lang, tok_cfg.type, len(vocab), train.tokens, covered, dev_tokens, dev_oov,
                     train.percentiles())


def _remove_stale(layout: VocabLayout, written: list[Path]) -> None:
    """Drop vocabulary files of an earlier build with other settings (e.g. joint -> split)."""
    keep = {p.name for p in written}
    for name in _VOCAB_FILES:
        path = layout.directory / name
        if name not in keep and path.is_file():
            log.info("removing %s from an earlier build", path)
            path.unlink()


def vocab_change(built: DataConfig, wanted: DataConfig) -> tuple[str, Any, Any] | None:
    """The first vocabulary setting that differs, as ``(dotted key, built value, wanted
    value)`` (e.g. ``data.src_tokenizer.type``); None when the vocabulary still fits.

    Paths are compared as given: pass both configs through
    :func:`nmt.config.with_absolute_paths` first.
    """
    for name in VOCAB_KEYS:
        old, new = getattr(built, name), getattr(wanted, name)
        if old == new:
            continue
        if dataclasses.is_dataclass(old):  # a tokenizer: name the field inside it
            for f in dataclasses.fields(old):
                if getattr(old, f.name) != getattr(new, f.name):
                    return f"data.{name}.{f.name}", getattr(old, f.name), getattr(new, f.name)
        return f"data.{name}", old, new
    return None


def _refuse_trained_run(run_dir: Path) -> None:
    """A trained model's embeddings are indexed by its vocabulary: a new one (even of the same
    size) would silently scramble them, and a new size fails to load."""
    root = run_dir / "checkpoints"
    # Anything but leftovers of an interrupted save (.tmp-*/.trash-*) counts: step-*,
    # the latest/best pointers, averaged/.
    if root.is_dir() and any(not p.name.startswith(".") for p in root.iterdir()):
        raise CheckpointError(
            f"{run_dir} holds a trained model (checkpoints/); rebuilding its vocabulary would "
            "break it: use another --run-dir"
        )


def build_vocab(cfg: Config, workers: int | None = None) -> VocabReport:
    """Build and write the vocabularies and the training token cache a config describes;
    return the summary.

    Args:
        cfg: the config.
        workers: tokenizing processes (default ``data.workers``; 0 = the usable cores). More
            than one starts processes through multiprocessing's fork server, which imports
            the calling script again: guard a script with ``if __name__ == "__main__":``.

    Raises:
        CheckpointError: the run directory already holds checkpoints (nothing is written).
        DataError: unreadable/misaligned corpus, no usable pairs, sentencepiece failure, a
            worker that died. Nothing half-written is left for a later run to trust.
    """
    start = time.perf_counter()
    run_dir = Path(cfg.run_dir)
    _refuse_trained_run(run_dir)
    cfg = with_absolute_paths(cfg)  # the token cache key is computed from absolute paths
    data = cfg.data
    n_workers = resolve_workers(data, workers)
    dev = read_parallel(data.dev, data) if data.dev else None
    layout = vocab_layout(run_dir, data)
    # Until the end, the vocabulary directory says it is incomplete: an interrupted build
    # (Ctrl-C, a killed worker) leaves nothing that nmt train would take for finished.
    marker = layout.directory / INCOMPLETE_MARK
    atomic_write_text(marker, "nmt build-vocab is writing this directory\n")
    written, sampled = _train_sentencepiece(cfg, layout, n_workers)
    with tokenize_stream(data, layout.spm_paths, run_dir / "cache", n_workers) as stream:
        if not stream.pairs:
            raise DataError(f"{_train_name(data)}: no usable sentence pairs")
        counts = {"src": stream.counts("src"), "tgt": stream.counts("tgt")}
        if layout.joint:
            tags = sorted(TAGS.values()) if data.directions == "both" else []
            src_vocab = tgt_vocab = Vocabulary.build(stream.counts("both"), data.min_freq,
                                                     data.max_size, reserved=tags)
            src_vocab.save(layout.src_vocab)
            written.append(layout.src_vocab)
        else:
            src_vocab = Vocabulary.build(counts["src"], data.min_freq, data.max_size)
            tgt_vocab = Vocabulary.build(counts["tgt"], data.min_freq, data.max_size)
            src_vocab.save(layout.src_vocab)
            tgt_vocab.save(layout.tgt_vocab)
            written += [layout.src_vocab, layout.tgt_vocab]
        _remove_stale(layout, written)
        marker.unlink()  # the vocabulary is complete; the cache key hashes its files
        key = train_cache_key(cfg)
        cache = write_shards(stream, src_vocab, tgt_vocab, train_cache_dir(run_dir, key), key)
        remove_other_train_caches(run_dir, cache)
        config_path = run_dir / "config.yaml"
        atomic_write_text(config_path, dump_config(cfg))

        src_dev = tgt_dev = None
        if dev is not None:
            src_tok = build_tokenizer(data.src_tokenizer, data.src_lang, layout.src_spm)
            tgt_tok = build_tokenizer(data.tgt_tokenizer, data.tgt_lang, layout.tgt_spm)
            src_dev = [src_tok.tokenize(s) for s in dev.src]
            tgt_dev = [tgt_tok.tokenize(t) for t in dev.tgt]
        return VocabReport(
            run_dir=str(cfg.run_dir),
            train=_total(stream.corpora),
            train_parts=[CorpusStats(c.path, c.pairs, dict(c.dropped)) for c in stream.corpora],
            dev=CorpusStats(str(data.dev), len(dev), dict(dev.dropped))
            if dev is not None else None,
            src=_side_stats(data.src_lang, data.src_tokenizer, src_vocab, stream.src,
                            counts["src"], src_dev),
            tgt=_side_stats(data.tgt_lang, data.tgt_tokenizer, tgt_vocab, stream.tgt,
                            counts["tgt"], tgt_dev),
            joint=layout.joint,
            files=[str(p) for p in written] + [str(config_path)],
            max_len=data.max_len,
            over_max_len=stream.over_max_len,
            seconds=time.perf_counter() - start,
            workers=n_workers,
            cache=str(cache),
            cache_bytes=cache_size(cache),
            sp_sampled=sampled,
        )


def _total(counts: list[CorpusCount]) -> CorpusStats:
    dropped: dict[str, int] = {}
    for c in counts:
        for reason, n in c.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + n
    return CorpusStats(", ".join(c.path for c in counts), sum(c.pairs for c in counts), dropped)
