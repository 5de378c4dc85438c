"""Parallel corpus readers: Tatoeba/Anki TSV and two line-aligned files.

Both return a :class:`ParallelCorpus` of normalized (source, target) sentences in the
configured direction, with each pair's original 1-based line number (so later messages can
point into the file) and a count of dropped lines per reason. Lines without the needed
columns or with one side empty are skipped with a warning (the first few are logged, then a
total), or are an error under ``data.strict``; empty lines are skipped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from nmt.config import DataConfig, Lang
from nmt.datautil.normalize import Normalizer, normalizer_for
from nmt.errors import DataError
from nmt.fileio import read_lines

log = logging.getLogger(__name__)

EMPTY_LINE = "empty line"
MISSING_COLUMN = "fewer than 2 TAB-separated columns"
EMPTY_SENTENCE = "one side empty"
_SHOWN_WARNINGS = 3  # per file and reason; the rest are only counted


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


class _PairCollector:
    """Applies the normalizers and the drop rules shared by both readers."""

    def __init__(self, path: str, data_cfg: DataConfig, normalize: bool) -> None:
        self.path = path
        self.strict = data_cfg.strict
        self.src_lang: Lang = data_cfg.src_lang
        self.norm: dict[str, Normalizer] | None = None
        if normalize:
            self.norm = {side: normalizer_for(data_cfg, side) for side in ("src", "tgt")}
        self.corpus = ParallelCorpus([], [], [], {}, path)

    def drop(self, reason: str, where: str, detail: str, fatal: bool) -> None:
        if fatal and self.strict:
            raise DataError(f"{where}: {detail} (run without --strict to skip such lines)")
        n = self.corpus.dropped.get(reason, 0) + 1
        self.corpus.dropped[reason] = n
        if fatal and n <= _SHOWN_WARNINGS:
            log.warning("%s: %s; line skipped", where, detail)

    def add(self, zh: str, en: str, line_no: int, where: str) -> None:
        src, tgt = (zh, en) if self.src_lang == "zh" else (en, zh)
        if self.norm is not None:
            src, tgt = self.norm["src"](src), self.norm["tgt"](tgt)
        else:
            src, tgt = src.strip(), tgt.strip()
        if not src or not tgt:
            side = self.src_lang if not src else ("en" if self.src_lang == "zh" else "zh")
            self.drop(EMPTY_SENTENCE, where, f"the {side} sentence is empty", fatal=True)
            return
        self.corpus.src.append(src)
        self.corpus.tgt.append(tgt)
        self.corpus.line_numbers.append(line_no)

    def finish(self) -> ParallelCorpus:
        for reason, n in sorted(self.corpus.dropped.items()):
            if reason != EMPTY_LINE and n > _SHOWN_WARNINGS:
                log.warning("%s: %d lines skipped in all: %s", self.path, n, reason)
        return self.corpus


def read_tsv(path: str | Path, data_cfg: DataConfig, *, normalize: bool = True) -> ParallelCorpus:
    """Read ``English<TAB>Chinese[<TAB>attribution...]`` lines (the Tatoeba/Anki format)."""
    name = str(path)
    pairs = _PairCollector(name, data_cfg, normalize)
    for line_no, line in enumerate(read_lines(path), start=1):
        where = f"{name}:{line_no}"
        if not line.strip():
            pairs.drop(EMPTY_LINE, where, "empty line", fatal=False)
            continue
        cols = line.split("\t")
        if len(cols) < 2:
            pairs.drop(
                MISSING_COLUMN, where,
                "expected English<TAB>Chinese<TAB>attribution, found no TAB", fatal=True,
            )
            continue
        pairs.add(zh=cols[1], en=cols[0], line_no=line_no, where=where)
    return pairs.finish()


def aligned_paths(prefix: str | Path) -> tuple[Path, Path]:
    """``PREFIX`` (or ``PREFIX.zh`` / ``PREFIX.en``) -> ``(PREFIX.zh, PREFIX.en)``."""
    text = str(prefix)
    for suffix in (".zh", ".en"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    return Path(text + ".zh"), Path(text + ".en")


def read_aligned(
    prefix: str | Path, data_cfg: DataConfig, *, normalize: bool = True
) -> ParallelCorpus:
    """Read the line-aligned pair ``PREFIX.zh`` / ``PREFIX.en``.

    Raises:
        DataError: a file is missing or unreadable, or the two differ in line count.
    """
    zh_path, en_path = aligned_paths(prefix)
    zh_lines, en_lines = read_lines(zh_path), read_lines(en_path)
    if len(zh_lines) != len(en_lines):
        raise DataError(
            f"{zh_path} has {len(zh_lines)} lines but {en_path} has {len(en_lines)}; "
            "aligned files need one sentence per line on both sides"
        )
    pairs = _PairCollector(str(prefix), data_cfg, normalize)
    for line_no, (zh, en) in enumerate(zip(zh_lines, en_lines, strict=True), start=1):
        if not zh.strip() and not en.strip():
            pairs.drop(EMPTY_LINE, f"{zh_path}:{line_no}", "empty line", fatal=False)
            continue
        pairs.add(zh=zh, en=en, line_no=line_no, where=f"{zh_path}:{line_no}")
    return pairs.finish()


def read_parallel(
    path: str | Path, data_cfg: DataConfig, *, normalize: bool = True
) -> ParallelCorpus:
    """Read a corpus in ``data_cfg.format`` (``tsv`` file or ``aligned`` prefix).

    Args:
        path: the TSV file, or the prefix of the aligned ``.zh``/``.en`` files.
        data_cfg: format, direction, normalization and strictness.
        normalize: apply the configured normalizers (off: sentences are only stripped).
    """
    if data_cfg.format == "aligned":
        return read_aligned(path, data_cfg, normalize=normalize)
    return read_tsv(path, data_cfg, normalize=normalize)
