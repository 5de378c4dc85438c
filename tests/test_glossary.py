"""nmt.datautil.glossary: reading (with errors naming the line), occurrence, term usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmt.datautil.glossary import Glossary, read_glossary, term_in, term_usage
from nmt.errors import DataError


def write(tmp_path: Path, data: bytes | str) -> Path:
    path = tmp_path / "glossary.tsv"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_reads_pairs_and_skips_comments(tmp_path: Path) -> None:
    g = read_glossary(write(tmp_path, "# names\n汤姆\tTom\n\n波士顿 \t Boston\n"))
    assert g.entries == (("汤姆", "Tom"), ("波士顿", "Boston")) and g.lines == (2, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [("汤姆\tTom\n玛丽 Mary\n", ":2: expected 'source term<TAB>target term', got 0 tabs"),
     ("汤姆\tTom\tx\n", ":1: expected 'source term<TAB>target term', got 2 tabs"),
     ("\tTom\n", ":1: empty source term"),
     ("汤姆\t \n", ":1: empty target term"),
     ("汤姆\t" + "a" * 300 + "\n", ":1: a term longer than 200 characters")],
)
def test_bad_lines_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=f"^{path}{message}"):
        read_glossary(path)


def test_invalid_utf8_and_missing_files(tmp_path: Path) -> None:
    path = write(tmp_path, "汤姆\tTom\n".encode() + b"\xff\tx\n")
    with pytest.raises(DataError, match=":2: invalid UTF-8"):
        read_glossary(path)
    with pytest.raises(DataError, match="glossary not found"):
        read_glossary(tmp_path / "nope.tsv")


def test_latin_terms_match_whole_words_only() -> None:
    assert term_in("Tom", "Where is Tom?") and term_in("tom", "TOM left.")
    assert not term_in("Tom", "Tomorrow is fine.") and not term_in("son", "a person")
    assert term_in("汤姆", "我是汤姆的朋友") and term_in("New York", "in New York.")


def test_term_usage_counts_occurring_terms_only() -> None:
    g = Glossary("g", (("汤姆", "Tom"), ("玛丽", "Mary"), ("北京", "Beijing")), (1, 2, 3))
    sources = ["汤姆和玛丽", "汤姆在北京", "你好"]
    hyps = ["Tom and Mary", "Tom is in Peking", "Hello"]
    assert term_usage(g, sources, hyps) == (3, 4)
