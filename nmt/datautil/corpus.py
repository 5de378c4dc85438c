"""Parallel corpus readers: Tatoeba/Anki TSV and two line-aligned files, plain or compressed.

Reading is a stream of :class:`RawChunk` objects (raw Chinese/English lines with their 1-based
line numbers), so a corpus of any size is read in bounded memory; :func:`read_parallel` collects
the stream into a :class:`ParallelCorpus` of normalized (source, target) sentences for the
small dev and test sets. Lines without the needed columns or with one side empty are skipped with
a warning (the first few are logged, then a total), or are an error under ``data.strict``; empty
lines are skipped and counted. Files ending in ``.gz``, ``.xz`` or ``.bz2`` are decompressed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from nmt.config import DataConfig, Lang
from nmt.datautil.normalize import Normalizer, normalizer_for
from nmt.errors import DataError
from nmt.fileio import iter_lines

log = logging.getLogger(__name__)

EMPTY_LINE = "empty line"
MISSING_COLUMN = "fewer than 2 TAB-separated columns"
EMPTY_SENTENCE = "one side empty"
_SHOWN_WARNINGS = 3  # per file and reason; the rest are only counted
CHUNK_PAIRS = 4096  # pairs per chunk: the unit of work of a tokenizing worker


@dataclass
class ParallelCorpus:
    """Sentence pairs in the configured direction.

    Attributes:
        src: source sentences (normalized unless read with ``normalize=False``).
        tgt: target sentences, aligned with ``src``.
        line_numbers: the 1-based line of each pair in the file(s) it came from.
        dropped: reason -> number of lines skipped for it.
        path: the file (TSV) or prefix (aligned) that was read.
    """

    src: list[str]
    tgt: list[str]
    line_numbers: list[int]
    dropped: dict[str, int] = field(default_factory=dict)
    path: str = ""

    def __len__(self) -> int:
        return len(self.src)

    @property
    def num_dropped(self) -> int:
        return sum(self.dropped.values())


@dataclass
class RawChunk:
    """Consecutive raw pairs of one corpus, as read (not normalized).

    Attributes:
        where: the file that messages name (the TSV file, or the ``.zh`` file of an aligned
            pair).
        line_numbers: the 1-based line of each pair.
    """

    where: str
    line_numbers: list[int]
    zh: list[str]
    en: list[str]

    def __len__(self) -> int:
        return len(self.zh)


class DropLog:
    """Lines and pairs skipped, per reason, with a warning for the first few of each reason
    per file (``fatal`` drops only: malformed input, as opposed to filtered pairs).

    Under ``strict`` a fatal drop raises instead.
    """

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.counts: dict[str, int] = {}
        self._warned: dict[tuple[str, str], int] = {}

    def drop(self, reason: str, where: str, detail: str, fatal: bool) -> None:
        if fatal and self.strict:
            raise DataError(f"{where}: {detail} (run without --strict to skip such lines)")
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if fatal:
            self.warn(reason, where, detail)

    def warn(self, reason: str, where: str, detail: str) -> None:
        """Log a skipped line (the first few per file and reason), without counting it:
        for drops already counted elsewhere, e.g. by a tokenizing worker."""
        key = (where.rsplit(":", 1)[0], reason)
        shown = self._warned.get(key, 0)
        if shown < _SHOWN_WARNINGS:
            log.warning("%s: %s; line skipped", where, detail)
        self._warned[key] = shown + 1

    def finish(self) -> None:
        """Log the totals of the reasons that had more warnings than were shown."""
        for (file, reason), n in sorted(self._warned.items()):
            if n > _SHOWN_WARNINGS:
                log.warning("%s: %d lines skipped in all: %s", file, n, reason)


def aligned_paths(prefix: str | Path) -> tuple[Path, Path]:
    """``PREFIX`` (or ``PREFIX.zh`` / ``PREFIX.en``, optionally compressed) ->
    ``(PREFIX.zh, PREFIX.en)``: ``c.zh.gz`` gives ``(c.zh.gz, c.en.gz)``."""
    text = str(prefix)
    compressed = ""
    for ext in (".gz", ".xz", ".bz2"):
        if text.endswith(ext):
            text, compressed = text[: -len(ext)], ext
            break
    for suffix in (".zh", ".en"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    return Path(text + ".zh" + compressed), Path(text + ".en" + compressed)


def _tsv_chunks(path: str | Path, drops: DropLog, chunk_pairs: int) -> Iterator[RawChunk]:
    name = str(path)
    chunk = RawChunk(name, [], [], [])
    for line_no, line in enumerate(iter_lines(path), start=1):
        if not line.strip():
            drops.drop(EMPTY_LINE, f"{name}:{line_no}", "empty line", fatal=False)
            continue
        cols = line.split("\t")
        if len(cols) < 2:
            drops.drop(MISSING_COLUMN, f"{name}:{line_no}",
                       "expected English<TAB>Chinese<TAB>attribution, found no TAB", fatal=True)
            continue
        chunk.line_numbers.append(line_no)
        chunk.zh.append(cols[1])
        chunk.en.append(cols[0])
        if len(chunk) == chunk_pairs:
            yield chunk
            chunk = RawChunk(name, [], [], [])
    if len(chunk):
        yield chunk


def _aligned_chunks(prefix: str | Path, drops: DropLog, chunk_pairs: int) -> Iterator[RawChunk]:
    zh_path, en_path = aligned_paths(prefix)
    # Both opened before the first line is read, so a missing side fails at once.
    zh_lines, en_lines = iter_lines(zh_path), iter_lines(en_path)
    zh_first, en_first = next(zh_lines, None), next(en_lines, None)
    name = str(zh_path)
    chunk = RawChunk(name, [], [], [])

    def lines(first: str | None, rest: Iterator[str]) -> Iterator[str]:
        if first is not None:
            yield first
            yield from rest

    line_no = 0
    for zh, en in zip_longest(lines(zh_first, zh_lines), lines(en_first, en_lines)):
        line_no += 1
        if zh is None or en is None:
            n_zh = line_no - 1 + (zh is not None) + sum(1 for _ in zh_lines)
            n_en = line_no - 1 + (en is not None) + sum(1 for _ in en_lines)
            raise DataError(
                f"{zh_path} has {n_zh} lines but {en_path} has {n_en}; "
                "aligned files need one sentence per line on both sides"
            )
        if not zh.strip() and not en.strip():
            drops.drop(EMPTY_LINE, f"{name}:{line_no}", "empty line", fatal=False)
            continue
        chunk.line_numbers.append(line_no)
        chunk.zh.append(zh)
        chunk.en.append(en)
        if len(chunk) == chunk_pairs:
            yield chunk
            chunk = RawChunk(name, [], [], [])
    if len(chunk):
        yield chunk


def iter_raw_chunks(
    path: str | Path, data_cfg: DataConfig, drops: DropLog, chunk_pairs: int = CHUNK_PAIRS
) -> Iterator[RawChunk]:
    """The raw pairs of one corpus in ``data_cfg.format``, ``chunk_pairs`` at a time.

    Malformed lines are dropped into ``drops`` (or raise under ``data.strict``).

    Raises:
        DataError: a missing/unreadable/damaged file, invalid UTF-8, aligned files of
            different lengths, or (strict) a malformed line.
    """
    if data_cfg.format == "aligned":
        return _aligned_chunks(path, drops, chunk_pairs)
    return _tsv_chunks(path, drops, chunk_pairs)


class PairCleaner:
    """Orients a raw pair to the configured direction, normalizes it and applies the
    empty-side rule shared by every reader (used in-process and in tokenizing workers)."""

    def __init__(self, data_cfg: DataConfig, normalize: bool = True) -> None:
        self.src_lang: Lang = data_cfg.src_lang
        self.norm: tuple[Normalizer, Normalizer] | None = None
        if normalize:
            self.norm = (normalizer_for(data_cfg, "src"), normalizer_for(data_cfg, "tgt"))

    def __call__(self, zh: str, en: str) -> tuple[str, str, str | None]:
        """``(src, tgt, None)``, or ``(src, tgt, detail)`` when a side is empty."""
        src, tgt = (zh, en) if self.src_lang == "zh" else (en, zh)
        if self.norm is not None:
            src, tgt = self.norm[0](src), self.norm[1](tgt)
        else:
            src, tgt = src.strip(), tgt.strip()
        if not src or not tgt:
            side = self.src_lang if not src else ("en" if self.src_lang == "zh" else "zh")
            return src, tgt, f"the {side} sentence is empty"
        return src, tgt, None


def read_parallel(
    path: str | Path, data_cfg: DataConfig, *, normalize: bool = True
) -> ParallelCorpus:
    """Read a whole corpus in ``data_cfg.format`` (``tsv`` file or ``aligned`` prefix) into
    memory: for dev and test sets. Training corpora are streamed (:mod:`nmt.datautil.stream`).

    Args:
        path: the TSV file, or the prefix of the aligned ``.zh``/``.en`` files.
        data_cfg: format, direction, normalization and strictness.
        normalize: apply the configured normalizers (off: sentences are only stripped).
    """
    drops = DropLog(data_cfg.strict)
    clean = PairCleaner(data_cfg, normalize)
    corpus = ParallelCorpus([], [], [], {}, str(path))
    for chunk in iter_raw_chunks(path, data_cfg, drops):
        for line_no, zh, en in zip(chunk.line_numbers, chunk.zh, chunk.en, strict=True):
            src, tgt, empty = clean(zh, en)
            if empty is not None:
                drops.drop(EMPTY_SENTENCE, f"{chunk.where}:{line_no}", empty, fatal=True)
                continue
            corpus.src.append(src)
            corpus.tgt.append(tgt)
            corpus.line_numbers.append(line_no)
    drops.finish()
    corpus.dropped = drops.counts
    return corpus


def read_tsv(path: str | Path, data_cfg: DataConfig, *, normalize: bool = True) -> ParallelCorpus:
    """Read ``English<TAB>Chinese[<TAB>attribution...]`` lines (the Tatoeba/Anki format)."""
    return read_parallel(path, _with_format(data_cfg, "tsv"), normalize=normalize)


def read_aligned(
    prefix: str | Path, data_cfg: DataConfig, *, normalize: bool = True
) -> ParallelCorpus:
    """Read the line-aligned pair ``PREFIX.zh`` / ``PREFIX.en``.

    Raises:
        DataError: a file is missing or unreadable, or the two differ in line count.
    """
    return read_parallel(prefix, _with_format(data_cfg, "aligned"), normalize=normalize)


def _with_format(data_cfg: DataConfig, fmt: str) -> DataConfig:
    from nmt.config import replace

    return data_cfg if data_cfg.format == fmt else replace(data_cfg, format=fmt)


def reference_text(raw_target: str) -> str:
    """A target sentence as a BLEU/chrF/TER reference: the text as the corpus has it (trailing
    whitespace dropped), never normalized, so every score of the toolkit (dev BLEU during
    training, ``nmt tune``, ``nmt evaluate``) is against the same references sacrebleu users
    would pass."""
    return raw_target.rstrip()
