"""``nmt build-vocab``: corpus -> (sentencepiece models) -> vocabularies, plus a summary.

Reads the training corpus (and the dev corpus, for the OOV rate), tokenizes it as the config
says, writes ``RUN_DIR/vocab/`` (see :func:`nmt.datautil.pipeline.vocab_layout`) and the
resolved ``RUN_DIR/config.yaml`` (corpus paths made absolute). Every file is written atomically,
and nothing depends on hash-randomised iteration order, so the same inputs give byte-identical
files. A run directory that holds checkpoints is refused: its model belongs to its vocabulary.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nmt.config import Config, DataConfig, Lang, TokenizerConfig, dump_config, with_absolute_paths
from nmt.datautil.corpus import ParallelCorpus, read_parallel
from nmt.datautil.pipeline import VocabLayout, vocab_layout
from nmt.datautil.tokenize import Tokenizer, build_tokenizer, train_sentencepiece
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
    train: CorpusStats
    dev: CorpusStats | None
    src: SideStats
    tgt: SideStats
    joint: bool
    files: list[str]
    max_len: int
    over_max_len: int
    seconds: float

    def format(self) -> str:
        """A human-readable summary, one fact per line."""
        s, t = self.src, self.tgt
        lines = [f"build-vocab: {s.lang} -> {t.lang}, run dir {self.run_dir}", "corpus"]
        for split, stats in (("train", self.train), ("dev", self.dev)):
            if stats is not None:
                lines.append(f"  {split:<6}{stats.path}: {stats.pairs:,} pairs, "
                             f"dropped {_dropped(stats.dropped)}")
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
        lines.append(f"wrote   {', '.join(self.files)}")
        lines.append(f"time    {self.seconds:.1f} s")
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
    if not lengths:
        return (0, 0, 0, 0)
    ordered = sorted(lengths)
    n = len(ordered)

    def rank(p: float) -> int:
        return ordered[max(0, math.ceil(p / 100 * n) - 1)]

    return (rank(50), rank(90), rank(99), ordered[-1])


def _tokenize_all(tok: Tokenizer, texts: Sequence[str], desc: str) -> list[list[str]]:
    """Tokenize with a progress bar on stderr (shown on a terminal only).

    Each distinct sentence is tokenized once: Tatoeba repeats a sentence for each of its
    translations, and Moses and jieba are the slow part of the build.
    """
    seen: dict[str, list[str]] = {}
    out = []
    for text in tqdm(texts, desc=desc, unit="sent", file=sys.stderr, disable=None, leave=False,
                     mininterval=0.5):
        tokens = seen.get(text)
        if tokens is None:
            tokens = seen[text] = tok.tokenize(text)
        out.append(tokens)
    return out


def _train_sentencepiece(cfg: Config, layout: VocabLayout, train: ParallelCorpus) -> list[Path]:
    """Train the models the layout asks for; return the files written."""
    data = cfg.data
    jobs: list[tuple[Path, str, list[str], float]] = []
    if layout.joint_spm and layout.src_spm is not None:
        src, tgt = data.src_tokenizer, data.tgt_tokenizer
        if (src.sp_model_type, src.sp_vocab_size) != (tgt.sp_model_type, tgt.sp_vocab_size):
            log.warning("joint sentencepiece model: using the data.src_tokenizer settings")
        jobs.append((layout.src_spm, "src_tokenizer", train.src + train.tgt, 0.9995))
    else:
        for spm_path, side, texts, lang in (
            (layout.src_spm, "src_tokenizer", train.src, data.src_lang),
            (layout.tgt_spm, "tgt_tokenizer", train.tgt, data.tgt_lang),
        ):
            if spm_path is not None:
                # Chinese has thousands of rare characters; covering the last 0.05% of
                # them would spend pieces on characters seen once or twice.
                jobs.append((spm_path, side, texts, 1.0 if lang == "en" else 0.9995))
    for path, side, texts, coverage in jobs:
        tok_cfg: TokenizerConfig = getattr(data, side)
        log.info("training sentencepiece %s -> %s", tok_cfg.sp_model_type, path)
        try:
            train_sentencepiece(texts, path, model_type=tok_cfg.sp_model_type,
                                vocab_size=tok_cfg.sp_vocab_size, character_coverage=coverage,
                                seed=cfg.seed)
        except DataError as e:
            raise DataError(f"data.{side}.sp_vocab_size={tok_cfg.sp_vocab_size}: {e}") from None
    return [path for path, *_ in jobs]


def _side_stats(lang: Lang, tok_cfg: TokenizerConfig, vocab: Vocabulary,
                train: list[list[str]], dev: list[list[str]] | None) -> SideStats:
    train_tokens = sum(len(s) for s in train)
    covered = sum(1 for s in train for tok in s if tok in vocab)
    dev_tokens = sum(len(s) for s in dev) if dev is not None else 0
    dev_oov = sum(1 for s in dev for tok in s if tok not in vocab) if dev is not None else 0
    return SideStats(lang, tok_cfg.type, len(vocab), train_tokens, covered, dev_tokens, dev_oov,
                     percentiles([len(s) for s in train]))


def _remove_stale(layout: VocabLayout, written: list[Path]) -> None:
    """Drop vocabulary files of an earlier build with other settings (e.g. joint -> split)."""
    keep = {p.name for p in written}
    for name in _VOCAB_FILES:
        path = layout.directory / name
        if name not in keep and path.is_file():
            log.info("removing %s from an earlier build", path)
            path.unlink()


# The data settings a vocabulary is built from. A model trained on it is tied to these values;
# the other data keys (max_len, dev, test, strict) can change at any time.
VOCAB_KEYS = ("format", "train", "src_lang", "tgt_lang", "src_tokenizer", "tgt_tokenizer",
              "joint_vocab", "min_freq", "max_size", "traditional_to_simplified")


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


def build_vocab(cfg: Config) -> VocabReport:
    """Build and write the vocabularies a config describes; return the summary.

    Raises:
        CheckpointError: the run directory already holds checkpoints (nothing is written).
        DataError: unreadable/misaligned corpus, no usable pairs, sentencepiece failure.
    """
    start = time.perf_counter()
    _refuse_trained_run(Path(cfg.run_dir))
    data = cfg.data
    train = read_parallel(data.train, data)
    if not len(train):
        raise DataError(f"{data.train}: no usable sentence pairs")
    dev = read_parallel(data.dev, data) if data.dev else None
    layout = vocab_layout(cfg.run_dir, data)
    written = _train_sentencepiece(cfg, layout, train)

    src_tok = build_tokenizer(data.src_tokenizer, data.src_lang, layout.src_spm)
    tgt_tok = build_tokenizer(data.tgt_tokenizer, data.tgt_lang, layout.tgt_spm)
    src_train = _tokenize_all(src_tok, train.src, f"tokenize train {data.src_lang}")
    tgt_train = _tokenize_all(tgt_tok, train.tgt, f"tokenize train {data.tgt_lang}")
    src_dev = tgt_dev = None
    if dev is not None:
        src_dev = _tokenize_all(src_tok, dev.src, f"tokenize dev {data.src_lang}")
        tgt_dev = _tokenize_all(tgt_tok, dev.tgt, f"tokenize dev {data.tgt_lang}")

    src_counts = Counter(tok for sent in src_train for tok in sent)
    tgt_counts = Counter(tok for sent in tgt_train for tok in sent)
    if layout.joint:
        src_vocab = tgt_vocab = Vocabulary.build(src_counts + tgt_counts, data.min_freq,
                                                 data.max_size)
        src_vocab.save(layout.src_vocab)
        written.append(layout.src_vocab)
    else:
        src_vocab = Vocabulary.build(src_counts, data.min_freq, data.max_size)
        tgt_vocab = Vocabulary.build(tgt_counts, data.min_freq, data.max_size)
        src_vocab.save(layout.src_vocab)
        tgt_vocab.save(layout.tgt_vocab)
        written += [layout.src_vocab, layout.tgt_vocab]
    _remove_stale(layout, written)
    config_path = Path(cfg.run_dir) / "config.yaml"
    atomic_write_text(config_path, dump_config(with_absolute_paths(cfg)))

    over = sum(1 for s, t in zip(src_train, tgt_train, strict=True)
               if max(len(s), len(t)) > data.max_len)
    return VocabReport(
        run_dir=cfg.run_dir,
        train=CorpusStats(str(data.train), len(train), dict(train.dropped)),
        dev=CorpusStats(str(data.dev), len(dev), dict(dev.dropped)) if dev is not None else None,
        src=_side_stats(data.src_lang, data.src_tokenizer, src_vocab, src_train, src_dev),
        tgt=_side_stats(data.tgt_lang, data.tgt_tokenizer, tgt_vocab, tgt_train, tgt_dev),
        joint=layout.joint,
        files=[str(p) for p in written] + [str(config_path)],
        max_len=data.max_len,
        over_max_len=over,
        seconds=time.perf_counter() - start,
    )
