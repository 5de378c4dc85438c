"""nmt.datautil.filters: the cleaning rules on hand-written pairs, and the digest set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import tsv_text

from nmt.config import FilterConfig, load_config
from nmt.datautil.build import build_vocab
from nmt.datautil.filters import (
    DUPLICATE,
    LENGTH_RATIO,
    SAME_SIDES,
    TOO_LONG,
    WRONG_SCRIPT,
    DigestSet,
    PairFilter,
    mostly_latin,
    pair_digest,
)
from nmt.errors import ConfigError


def test_script_rule() -> None:
    zh_en = PairFilter(FilterConfig(script=True), "zh")
    assert zh_en.text_reason("我喜欢茶。", "I like tea.") is None
    assert zh_en.text_reason("Tom在吗？", "Is Tom here?") is None  # Latin names are fine
    assert zh_en.text_reason("I like tea.", "I like tea.") == WRONG_SCRIPT  # no Han character
    assert zh_en.text_reason("我喜欢茶。", "我喜欢茶。") == WRONG_SCRIPT  # not Latin
    assert zh_en.text_reason("2013年", "2013") == WRONG_SCRIPT  # no letter at all
    assert zh_en.text_reason("好。", "Привет, Tom.") == WRONG_SCRIPT  # mostly Cyrillic
    en_zh = PairFilter(FilterConfig(script=True), "en")
    assert en_zh.text_reason("I like tea.", "我喜欢茶。") is None  # sides follow the direction
    assert en_zh.text_reason("我喜欢茶。", "I like tea.") == WRONG_SCRIPT
    assert mostly_latin("Café au lait") and not mostly_latin("咖啡咖啡 ok")


def test_length_same_and_ratio_rules_in_order() -> None:
    f = PairFilter(FilterConfig(max_chars=10, same=True, max_ratio=3.0), "zh")
    assert f.text_reason("一二三四五六七八九十", "ten chars!") is None
    assert f.text_reason("一二三四五六七八九十一", "x") == TOO_LONG
    assert f.text_reason("x" * 11, "x" * 11) == TOO_LONG  # the first rule broken counts
    assert f.text_reason("OK", "OK") == SAME_SIDES
    assert f.token_reason(["a"], ["b", "c", "d"]) is None  # 3x is allowed
    assert f.token_reason(["a"], ["b", "c", "d", "e"]) == LENGTH_RATIO
    assert f.token_reason(["a"] * 4, ["b"]) == LENGTH_RATIO
    off = PairFilter(FilterConfig(), "zh")
    assert not off.active and off.text_reason("OK", "OK") is None
    assert off.token_reason(["a"], ["b"] * 50) is None


def test_digest_set_agrees_with_a_python_set() -> None:
    rng = np.random.default_rng(1)
    digests = DigestSet(capacity=8)  # forced to grow many times
    seen: set[int] = set()
    for _ in range(50):
        chunk = rng.integers(1, 3000, size=200).astype(np.uint64)
        new = digests.add_new(chunk)
        expected = []
        for x in chunk.tolist():
            expected.append(x not in seen)
            seen.add(x)
        assert new.tolist() == expected
    assert len(digests) == len(seen)
    assert pair_digest("a", "bc") != pair_digest("ab", "c") and pair_digest("", "") != 0


def _corpus(tmp_path: Path, pairs: list[tuple[str, str]]) -> Path:
    path = tmp_path / "web.tsv"
    path.write_text(tsv_text(pairs), encoding="utf-8")
    return path


def test_build_vocab_counts_each_filter(tmp_path: Path) -> None:
    pairs = [
        ("I like tea.", "我喜欢茶。"),
        ("I like tea.", "我喜欢茶。"),  # duplicate
        ("I like tea. ", "我喜欢茶。"),  # duplicate once normalized
        ("Copy.", "Copy."),  # wrong script (the zh side has no Han) before "same"
        ("A very long English sentence indeed.", "短。"),  # length ratio
        ("Hi.", "嗨" * 60),  # too long
        ("Tom is here.", "汤姆在这儿。"),
    ]
    sets = [f"run_dir={tmp_path / 'run'}", f"data.train={_corpus(tmp_path, pairs)}",
            "data.dev=null", "data.filters.dedup=true", "data.filters.max_chars=50",
            "data.filters.script=true", "data.filters.same=true", "data.filters.max_ratio=2.5",
            "data.workers=1"]
    report = build_vocab(load_config(None, sets))
    assert report.train.pairs == 2
    assert report.train.dropped == {DUPLICATE: 2, WRONG_SCRIPT: 1, LENGTH_RATIO: 1, TOO_LONG: 1}
    assert "filter: duplicate pair: 2" in report.format()
    plain = build_vocab(load_config(None, [*sets[:3], f"run_dir={tmp_path / 'plain'}"]))
    assert plain.train.pairs == len(pairs) and not plain.train.dropped


@pytest.mark.parametrize("setting, message", [
    ("data.filters.max_ratio=0.5", "must be >= 1"),
    ("data.filters.max_chars=-1", "must be >= 0"),
    ("data.filters.dedupe=true", "did you mean data.filters.dedup"),
    ("data.workers=-2", "data.workers: must be >= 0"),
])
def test_filter_settings_are_checked(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [setting])
