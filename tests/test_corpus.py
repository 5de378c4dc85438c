"""nmt.datautil.corpus: TSV and aligned readers, direction, normalization and bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import TINY_TRAIN

from nmt.config import DataConfig
from nmt.datautil.corpus import (
    EMPTY_LINE,
    EMPTY_SENTENCE,
    MISSING_COLUMN,
    aligned_paths,
    read_aligned,
    read_parallel,
    read_tsv,
)
from nmt.errors import DataError

ZH_EN = DataConfig()
EN_ZH = DataConfig(src_lang="en", tgt_lang="zh")
ALIGNED = DataConfig(format="aligned")


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_tsv_direction_and_line_numbers(tiny_corpus: dict[str, Path]) -> None:
    zh_en = read_tsv(tiny_corpus["train"], ZH_EN)
    assert zh_en.src[0] == "我喜欢茶。" and zh_en.tgt[0] == "I like tea."
    assert zh_en.line_numbers == list(range(1, len(TINY_TRAIN) + 1))
    assert zh_en.dropped == {} and len(zh_en) == len(TINY_TRAIN)
    en_zh = read_parallel(tiny_corpus["train"], EN_ZH)
    assert en_zh.src == zh_en.tgt and en_zh.tgt == zh_en.src


def test_tsv_normalizes(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", "Hello， Tom！\t你好,汤姆!\tattr\n")
    corpus = read_tsv(path, ZH_EN)
    assert (corpus.src, corpus.tgt) == (["你好，汤姆！"], ["Hello, Tom!"])
    raw = read_tsv(path, ZH_EN, normalize=False)
    assert raw.src == ["你好,汤姆!"]


def test_tsv_bom_crlf_and_separators_inside_lines(tmp_path: Path) -> None:
    data = "\ufeffOne.\t一。\tx\r\nA\x85B.\t甲\u2028乙。\tx\r\nTwo.\t二。\tx\r\n".encode()
    corpus = read_tsv(write(tmp_path / "c.tsv", data), ZH_EN)
    assert corpus.tgt == ["One.", "A B.", "Two."]  # \x85 did not split the line
    assert corpus.src == ["一。", "甲乙。", "二。"]  # nor \u2028 (removed next to Chinese)
    assert corpus.line_numbers == [1, 2, 3]


def test_tsv_two_columns_is_enough(tmp_path: Path) -> None:
    corpus = read_tsv(write(tmp_path / "c.tsv", "Hi.\t嗨。\n"), ZH_EN)
    assert corpus.src == ["嗨。"]


def test_tsv_malformed_lines_counted_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = "A.\t甲。\tx\nno tab here\n\n   \nB.\t乙。\tx\n\t丙。\tx\n"
    path = write(tmp_path / "c.tsv", text)
    with caplog.at_level(logging.WARNING):
        corpus = read_tsv(path, ZH_EN)
    assert corpus.src == ["甲。", "乙。"] and corpus.line_numbers == [1, 5]
    assert corpus.dropped == {MISSING_COLUMN: 1, EMPTY_LINE: 2, EMPTY_SENTENCE: 1}
    assert corpus.num_dropped == 4
    assert f"{path}:2" in caplog.text and "no TAB" in caplog.text
    assert f"{path}:6" in caplog.text  # the empty English side


def test_tsv_strict_fails_on_first_malformed_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", "A.\t甲。\n\nno tab here\n")
    strict = DataConfig(strict=True)
    with pytest.raises(DataError, match=rf"{path}:3: expected English<TAB>Chinese") as info:
        read_tsv(path, strict)
    assert "\n" not in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent\.tsv: file not found"):
        read_parallel(tmp_path / "absent.tsv", ZH_EN)


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", "A.\t甲。\n".encode() + b"B.\t\xe4\xb9\n")
    with pytest.raises(DataError, match=r"c\.tsv:2: invalid UTF-8"):
        read_tsv(path, ZH_EN)


def test_aligned_reader(tiny_corpus: dict[str, Path]) -> None:
    prefix = tiny_corpus["aligned"]
    tsv = read_tsv(tiny_corpus["train"], ZH_EN)
    for given in (prefix, f"{prefix}.zh", f"{prefix}.en"):
        corpus = read_parallel(given, ALIGNED)
        assert (corpus.src, corpus.tgt) == (tsv.src, tsv.tgt)
    assert aligned_paths("data/x.en") == (Path("data/x.zh"), Path("data/x.en"))


def test_aligned_empty_lines_and_bom(tmp_path: Path) -> None:
    write(tmp_path / "c.zh", "\ufeff一。\r\n\r\n二。\r\n三。\n")
    write(tmp_path / "c.en", "One.\n\nTwo.\n\n")
    corpus = read_aligned(tmp_path / "c", ALIGNED)
    assert corpus.src == ["一。", "二。"] and corpus.line_numbers == [1, 3]
    assert corpus.dropped == {EMPTY_LINE: 1, EMPTY_SENTENCE: 1}


def test_aligned_length_mismatch_gives_both_counts(tmp_path: Path) -> None:
    write(tmp_path / "c.zh", "一。\n二。\n三。\n")
    write(tmp_path / "c.en", "One.\nTwo.\n")
    with pytest.raises(DataError) as info:
        read_aligned(tmp_path / "c", ALIGNED)
    message = str(info.value)
    assert f"{tmp_path / 'c.zh'} has 3 lines" in message
    assert f"{tmp_path / 'c.en'} has 2" in message


def test_aligned_line_separator_does_not_misalign(tmp_path: Path) -> None:
    # With str.splitlines() the \u2028 would make .zh one line longer than .en.
    write(tmp_path / "c.zh", "一\u2028二。\n三。\n")
    write(tmp_path / "c.en", "One two.\nThree.\n")
    corpus = read_aligned(tmp_path / "c", ALIGNED)
    assert corpus.src == ["一二。", "三。"]


def test_aligned_missing_side(tmp_path: Path) -> None:
    write(tmp_path / "c.zh", "一。\n")
    with pytest.raises(DataError, match=r"c\.en: file not found"):
        read_aligned(tmp_path / "c", ALIGNED)
