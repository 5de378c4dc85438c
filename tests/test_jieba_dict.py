"""nmt.datautil.jieba_dict: the cached, lazily built prefix dictionary segments as jieba does."""

from __future__ import annotations

import array
import os
from pathlib import Path

import jieba
import pytest

import nmt.datautil.jieba_dict as jd
from nmt.datautil.jieba_dict import (
    PrefixDict,
    load_prefix_dict,
    prefix_dict_path,
    read_prefix_dict,
    write_prefix_dict,
)

SENTENCES = [
    "我爱北京天安门",
    "汤姆在波士顿住了三年。",
    "他们明天要去上海参加一个国际会议。",
    "Tom在New York住了3.5年，你知道吗？",
    "这本书比那本书有意思得多。",
    "我们应该尊重每个人的意见。",
    "小明硕士毕业于中国科学院计算所，后在日本京都大学深造",
]
SMALL = {"北京": 5, "北": 3, "天安门": 7, "天安": 0, "天": 2, "门": 1}


def _jieba_own() -> jieba.Tokenizer:
    tok = jieba.Tokenizer()
    tok.initialize()
    return tok


@pytest.fixture(scope="module")
def reference() -> jieba.Tokenizer:
    """A tokenizer initialised by jieba itself, the segmentation to match."""
    return _jieba_own()


def _lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> jieba.Tokenizer:
    monkeypatch.setenv("NMT_CACHE_DIR", str(tmp_path))
    first = jieba.Tokenizer()
    load_prefix_dict(first)  # no cache yet: jieba's own loading, then the cache is written
    assert isinstance(first.FREQ, dict)
    tok = jieba.Tokenizer()
    load_prefix_dict(tok)
    assert isinstance(tok.FREQ, PrefixDict)  # from the cache, not built yet
    return tok


def test_cached_dictionary_segments_exactly_as_jieba(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: jieba.Tokenizer
) -> None:
    tok = _lazy(tmp_path, monkeypatch)
    assert tok.total == reference.total
    for text in SENTENCES:
        assert list(tok.cut(text, HMM=True)) == list(reference.cut(text, HMM=True))
        assert list(tok.cut(text, HMM=False)) == list(reference.cut(text, HMM=False))
        assert list(tok.cut_for_search(text)) == list(reference.cut_for_search(text))


def test_dictionary_is_built_after_enough_lookups_and_replaces_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: jieba.Tokenizer
) -> None:
    tok = _lazy(tmp_path, monkeypatch)
    monkeypatch.setattr(jd, "BUILD_AFTER_LOOKUPS", 50)
    lazy = tok.FREQ
    assert list(tok.cut(SENTENCES[2])) == list(reference.cut(SENTENCES[2]))
    assert type(tok.FREQ) is dict and tok.FREQ == reference.FREQ  # handed to the tokenizer
    assert lazy.build() is tok.FREQ  # built once
    assert len(lazy) == len(reference.FREQ) and lazy.get("北京") == reference.FREQ["北京"]
    for text in SENTENCES:
        assert list(tok.cut(text)) == list(reference.cut(text))


def test_user_words_added_before_and_after_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = _lazy(tmp_path, monkeypatch)
    own = _jieba_own()
    for t in (tok, own):
        t.add_word("北京天安门", 100000)
    assert list(tok.cut("我爱北京天安门")) == list(own.cut("我爱北京天安门")) == [
        "我", "爱", "北京天安门"
    ]
    tok.FREQ.build()
    for t in (tok, own):
        t.add_word("爱北", 3)
    assert tok.FREQ == own.FREQ and tok.total == own.total


def test_mapping_answers_like_a_dict() -> None:
    words = sorted(SMALL)
    lazy = PrefixDict([w.encode() for w in words], array.array("q", [SMALL[w] for w in words]))
    for word in [*SMALL, "上海", "", "北京天", "天安门广场", "\ud800"]:
        assert (word in lazy) == (word in SMALL)
        assert lazy.get(word) == SMALL.get(word)
        assert lazy.get(word, -1) == SMALL.get(word, -1)
        if word in SMALL:
            assert lazy[word] == SMALL[word]
        else:
            with pytest.raises(KeyError):
                lazy[word]
    lazy["上海"] = 9
    assert lazy["上海"] == 9 and "上海" in lazy and len(lazy) == len(SMALL) + 1
    assert lazy.build() == {**SMALL, "上海": 9}
    assert 42 not in lazy
    with pytest.raises(ValueError, match="frequencies"):
        PrefixDict([w.encode() for w in words], array.array("q", [1]))


def test_cache_file_round_trip_and_damage(tmp_path: Path) -> None:
    path = tmp_path / "prefix.bin"
    write_prefix_dict(path, dict(SMALL), 18)
    words, freqs, total = read_prefix_dict(path)
    assert [w.decode() for w in words] == sorted(SMALL)
    assert dict(zip(sorted(SMALL), freqs, strict=True)) == SMALL
    assert total == 18
    data = path.read_bytes()
    path.write_bytes(data[:-3])  # truncated
    with pytest.raises(ValueError):
        read_prefix_dict(path)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped
    with pytest.raises(ValueError, match="checksum"):
        read_prefix_dict(path)
    path.write_bytes(b"something else\n")
    with pytest.raises(ValueError, match="not a prefix"):
        read_prefix_dict(path)
    with pytest.raises(ValueError, match="newline"):
        write_prefix_dict(path, {"a\nb": 1}, 1)


def test_damaged_cache_falls_back_to_jieba_and_is_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: jieba.Tokenizer
) -> None:
    monkeypatch.setenv("NMT_CACHE_DIR", str(tmp_path))
    path = prefix_dict_path(Path(jieba.__file__).with_name("dict.txt"))
    path.write_bytes(b"nmt-jieba-prefix-dict 2\n1 2 3 deadbeef\nxyz")
    old_format = tmp_path / "jieba-prefix-0.42.1-0123456789abcdef.bin"
    other_version = tmp_path / "jieba-prefix-9.9-0123456789abcdef.v2.bin"
    old_format.write_bytes(b"old")
    other_version.write_bytes(b"other")
    tok = jieba.Tokenizer()
    load_prefix_dict(tok)
    assert tok.FREQ == reference.FREQ
    assert read_prefix_dict(path)[2] == reference.total  # rewritten, sound
    assert not old_format.exists() and other_version.exists()


def test_cache_is_keyed_on_content_not_time_stamp(tmp_path: Path) -> None:
    first, copy, other = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    first.write_text("中国 100 ns\n", encoding="utf-8")
    copy.write_text("中国 100 ns\n", encoding="utf-8")
    os.utime(copy, ns=(1, 1))  # another venv's copy of the same file, another time stamp
    other.write_text("中国 101 ns\n", encoding="utf-8")
    assert prefix_dict_path(first) == prefix_dict_path(copy)
    assert prefix_dict_path(first) != prefix_dict_path(other)
