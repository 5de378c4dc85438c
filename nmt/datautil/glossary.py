"""Glossaries: ``source term<TAB>target term`` per line, for terminology constraints.

A term of the glossary *occurs* in a source sentence when its text (normalized as the
sentence is) is a substring of the normalized sentence; for a Latin-script term the match must
also start and end at word boundaries. The same rule decides whether a target term appears in
a translation, for the term usage rate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt.errors import DataError
from nmt.fileio import read_lines

__all__ = ["Glossary", "read_glossary", "term_in", "term_usage"]

MAX_TERM_CHARS = 200  # a "term" longer than this is a misaligned line, not a term


@dataclass(frozen=True)
class Glossary:
    """Term pairs in file order, with the line each came from."""

    path: str
    entries: tuple[tuple[str, str], ...]
    lines: tuple[int, ...]

    def matches(self, sources: Sequence[str], normalize: Callable[[str], str] = str
                ) -> list[list[int]]:  # fmt: skip
        """Per source, the indices of the entries whose source term occurs in it (terms and
        sources normalized by ``normalize``; each term once, not once per sentence)."""
        terms = [normalize(src) for src, _ in self.entries]
        texts = (normalize(source) for source in sources)
        return [[i for i, term in enumerate(terms) if term_in(term, text)] for text in texts]


def read_glossary(path: str | Path) -> Glossary:
    """Read a glossary file (UTF-8; ``#`` lines and empty lines are skipped).

    Raises:
        DataError: a missing file, invalid UTF-8, or a line without exactly one tab, with an
            empty term or an absurdly long one, naming the file and line.
    """
    if not Path(path).is_file():
        raise DataError(f"{path}: glossary not found")
    entries: list[tuple[str, str]] = []
    numbers: list[int] = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{path}:{number}: expected 'source term<TAB>target term', got "
                            f"{len(parts) - 1} tabs")  # fmt: skip
        src, tgt = parts[0].strip(), parts[1].strip()
        if not src or not tgt:
            raise DataError(f"{path}:{number}: empty {'source' if not src else 'target'} term")
        if max(len(src), len(tgt)) > MAX_TERM_CHARS:
            raise DataError(f"{path}:{number}: a term longer than {MAX_TERM_CHARS} characters")
        entries.append((src, tgt))
        numbers.append(number)
    return Glossary(str(path), tuple(entries), tuple(numbers))


def _is_word_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def term_in(term: str, text: str) -> bool:
    """Whether ``term`` occurs in ``text`` (Latin words at word boundaries, case-insensitive)."""
    if not term:
        return False
    if not (_is_word_char(term[0]) or _is_word_char(term[-1])):
        return term in text
    pattern = re.escape(term)
    if _is_word_char(term[0]):
        pattern = r"(?<![A-Za-z0-9_])" + pattern
    if _is_word_char(term[-1]):
        pattern += r"(?![A-Za-z0-9_])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def term_usage(glossary: Glossary, sources: Sequence[str], hypotheses: Sequence[str],
               normalize: Callable[[str], str] = str) -> tuple[int, int]:  # fmt: skip
    """``(used, occurring)``: of the glossary terms that occur in the sources (each occurrence
    of a pair in a sentence counted once), how many have their target term in the hypothesis."""
    used = occurring = 0
    for matched, hyp in zip(glossary.matches(sources, normalize), hypotheses, strict=True):
        occurring += len(matched)
        used += sum(term_in(glossary.entries[index][1], hyp) for index in matched)
    return used, occurring
