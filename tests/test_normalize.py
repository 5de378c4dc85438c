"""nmt.datautil.normalize: NFKC, whitespace, per-language punctuation, t2s, idempotence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.config import DataConfig, TokenizerConfig
from nmt.datautil.normalize import Normalizer, is_cjk, normalizer_for

ZH = Normalizer("zh")
EN = Normalizer("en")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("你好,世界!", "你好，世界！"),
        ("你好，世界！", "你好，世界！"),
        ("你是Tom?", "你是Tom？"),  # sentence-final after a Latin name
        ("我叫Tom.", "我叫Tom。"),
        ("我有3.5元.", "我有3.5元。"),  # decimal point kept
        ("他去了U.S.", "他去了U.S."),  # abbreviation kept
        ("我不知道...", "我不知道..."),  # ellipsis kept
        ("时间:7:30", "时间：7:30"),  # clock time kept
        ("我的朋友(Tom)来了", "我的朋友（Tom）来了"),
        ("1,000个人", "1,000个人"),
        ("汤姆 在 波士顿 。", "汤姆在波士顿。"),  # spaces next to Chinese dropped
        ("New  York 很大", "New York很大"),  # between Latin words kept
        ("ＡＢＣ１２３，你好", "ABC123，你好"),  # NFKC: full-width Latin/digits
        ("  前后空格\t ", "前后空格"),
        ("Hello, world!", "Hello, world!"),  # no Chinese: left alone
    ],
)
def test_chinese(raw: str, expected: str) -> None:
    assert ZH(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Don’t say “hello”。", "Don't say \"hello\"."),
        ("It's ３ o'clock！", "It's 3 o'clock!"),
        ("Tom  is\there.", "Tom is here."),
        ("Wait…", "Wait..."),
        ("Ｈｅｌｌｏ，ｗｏｒｌｄ？", "Hello,world?"),
    ],
)
def test_english(raw: str, expected: str) -> None:
    assert EN(raw) == expected


def test_control_and_invisible_characters() -> None:
    assert EN("a\x00b\u200bc\ufeffd\x07") == "abcd"
    assert EN("one\u2028two\x85three\u2029four") == "one two three four"
    assert ZH("你\u200d好\x1f吗") == "你好吗"


def test_traditional_to_simplified_only_when_asked() -> None:
    assert ZH("這是什麼？") == "這是什麼？"
    assert Normalizer("zh", traditional_to_simplified=True)("這是什麼?") == "这是什么？"
    assert Normalizer("en", traditional_to_simplified=True)("這") == "這"  # never on English


def test_lowercase() -> None:
    assert Normalizer("en", lowercase=True)("Tom ＬＩＫＥＳ Tea.") == "tom likes tea."


def test_normalizer_for_uses_side_settings() -> None:
    cfg = DataConfig(src_lang="en", tgt_lang="zh",
                     src_tokenizer=TokenizerConfig("moses", lowercase=True),
                     tgt_tokenizer=TokenizerConfig("jieba"), traditional_to_simplified=True)
    assert normalizer_for(cfg, "src")("Hello, WORLD") == "hello, world"
    assert normalizer_for(cfg, "tgt")("這,好") == "这，好"


def test_space_tokenizer_keeps_chinese_word_spaces() -> None:
    cfg = DataConfig(src_tokenizer=TokenizerConfig("space"))
    assert normalizer_for(cfg, "src")("我 爱 北京 ,") == "我 爱 北京 ，"
    assert Normalizer("zh", keep_spaces=False)("我 爱 北京 ,") == "我爱北京，"


def test_is_cjk() -> None:
    assert is_cjk("中") and is_cjk("。") and is_cjk("，") and is_cjk("ア")
    assert not is_cjk("a") and not is_cjk("1") and not is_cjk(",")


MIXED = st.text(
    alphabet=st.sampled_from(
        list("你好我是汤姆。，！？：；（）,.!?:;()... aZ09\t\u3000ＡＢ１２“”’'\"…\x85\u200b")
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(MIXED)
def test_idempotent_on_mixed_text(text: str) -> None:
    for norm in (ZH, EN, Normalizer("en", lowercase=True), Normalizer("zh", keep_spaces=True)):
        once = norm(text)
        assert norm(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_idempotent_on_any_text(text: str) -> None:
    for norm in (ZH, EN):
        once = norm(text)
        assert norm(once) == once
        assert once == once.strip() and "  " not in once
