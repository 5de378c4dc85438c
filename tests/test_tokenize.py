"""nmt.datautil.tokenize: each tokenizer and its detokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from conftest import SAMPLE_DIR
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nmt.config import TokenizerConfig, TokenizerType
from nmt.datautil.normalize import Normalizer
from nmt.datautil.tokenize import (
    SPACE_MARK,
    TOKENIZERS,
    CharTokenizer,
    JiebaTokenizer,
    MosesTokenizer,
    SentencePieceTokenizer,
    SpaceTokenizer,
    Tokenizer,
    build_tokenizer,
    join_chinese,
    spaced_chinese_tokens,
    tokenizer_kind,
    train_sentencepiece,
)
from nmt.errors import ConfigError, DataError
from nmt.fileio import read_lines

ENGLISH = [
    "I like drinking tea.",
    "Don't say \"hello\" to Tom's cat, it's 3.5 km away!",
    "Where is the station? It's at 7:30 p.m.",
    "Mary bought a red dress, two books and a pair of shoes.",
]


def test_jieba_known_sentence() -> None:
    assert JiebaTokenizer().tokenize("我爱北京天安门") == ["我", "爱", "北京", "天安门"]


def test_jieba_is_deterministic_and_drops_spaces() -> None:
    tok = JiebaTokenizer()
    text = "Tom在New York住了3.5年。"
    tokens = tok.tokenize(text)
    assert tokens == JiebaTokenizer().tokenize(text)
    assert all(t.strip() == t and t for t in tokens)
    assert tok.detokenize(tokens) == text


def test_jieba_user_dict(tmp_path: Path) -> None:
    assert JiebaTokenizer().tokenize("我爱北京天安门")[-2:] == ["北京", "天安门"]
    user_dict = tmp_path / "user.txt"
    user_dict.write_text("北京天安门 100000 ns\n", encoding="utf-8")
    assert JiebaTokenizer(str(user_dict)).tokenize("我爱北京天安门") == ["我", "爱", "北京天安门"]
    # The user dictionary lives in its own instance: the default one is unchanged.
    assert JiebaTokenizer().tokenize("我爱北京天安门")[-1] == "天安门"


def test_jieba_with_words_leaves_the_shared_tokenizer_alone(tmp_path: Path) -> None:
    user_dict = tmp_path / "user.txt"
    user_dict.write_text("北京天安门 100000 ns\n", encoding="utf-8")
    plain = JiebaTokenizer(str(user_dict))
    assert plain.tokenize("汤姆猫在北京天安门") == ["汤姆", "猫", "在", "北京天安门"]
    glossary = plain.with_words(["汤姆猫", "南京市长"])
    # the new words are one, the user dictionary still applies, and a suggested frequency
    # does not override a better cut ("南京市 | 长江大桥", not "南京市长 | 江大桥")
    assert glossary.tokenize("汤姆猫在北京天安门") == ["汤姆猫", "在", "北京天安门"]
    assert glossary.tokenize("南京市长江大桥") == ["南京市", "长江大桥"]
    assert plain.tokenize("汤姆猫") == ["汤姆", "猫"]
    assert JiebaTokenizer(str(user_dict)).tokenize("汤姆猫") == ["汤姆", "猫"]


def test_jieba_missing_user_dict(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="user dictionary not found"):
        JiebaTokenizer(str(tmp_path / "missing.txt"))


@pytest.mark.parametrize(
    ("tokens", "text"),
    [
        (["汤姆", "在", "波士顿"], "汤姆在波士顿"),
        (["Tom", "在", "New", "York", "。"], "Tom在New York。"),
        (["我", "有", "3", "个", "苹果"], "我有3个苹果"),
        (["2023", "年", "5", "月"], "2023年5月"),
        (["Tom", ",", "▁", "Mary", "和", "我"], "Tom, Mary和我"),
        (["▁", "”", "▁", "▁", "“", "▁"], "” “"),  # marks at the ends dropped, repeats merged
        (["New", "▁", "York"], "New York"),  # a mark where the joiner puts a space anyway
        ([], ""),
    ],
)
def test_join_chinese(tokens: list[str], text: str) -> None:
    assert join_chinese(tokens) == text


def test_char_round_trip() -> None:
    tok = CharTokenizer()
    assert tok.tokenize("我爱Tom") == ["我", "爱", "T", "o", "m"]
    for text in ("New York很大。", "It's 3 o'clock.", ""):
        assert tok.detokenize(tok.tokenize(text)) == text
    assert " " not in "".join(tok.tokenize("a b"))


@pytest.mark.parametrize("text", ENGLISH)
def test_moses_round_trip(text: str) -> None:
    tok = MosesTokenizer("en")
    tokens = tok.tokenize(text)
    assert "&apos;" not in tokens and "&quot;" not in tokens  # escape=False
    assert tok.detokenize(tokens) == text


def test_moses_splits_punctuation() -> None:
    assert MosesTokenizer("en").tokenize("Tom's cat, isn't it?") == [
        "Tom", "'s", "cat", ",", "isn", "'t", "it", "?"]


def test_space_tokenizer() -> None:
    assert SpaceTokenizer("en").tokenize(" a  b\tc ") == ["a", "b", "c"]
    assert SpaceTokenizer("en").detokenize(["a", "b"]) == "a b"
    assert SpaceTokenizer("zh").detokenize(["我", "爱", "Tom"]) == "我爱Tom"


@pytest.fixture(scope="module")
def sample_sentences() -> dict[str, list[str]]:
    rows = [line.split("\t") for line in read_lines(SAMPLE_DIR / "train.tsv")]
    return {"en": [r[0] for r in rows], "zh": [r[1] for r in rows]}


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece_train_encode_decode(
    tmp_path: Path, sample_sentences: dict[str, list[str]], model_type: str
) -> None:
    texts = sample_sentences["en"] + sample_sentences["zh"]
    model = tmp_path / "m.spm.model"
    train_sentencepiece(texts, model, model_type=model_type, vocab_size=700,
                        character_coverage=0.9995)
    tok = SentencePieceTokenizer(model)
    for text in texts[:50] + ["Tom在New York住了3年。"]:
        pieces = tok.tokenize(text)
        assert pieces and all(" " not in p for p in pieces)
        assert tok.detokenize(pieces) == text
    assert tok.detokenize(["▁I", "▁like", "<unk>", "."]) == "I like<unk>."


def test_sentencepiece_is_deterministic(
    tmp_path: Path, sample_sentences: dict[str, list[str]]
) -> None:
    for name in ("a", "b"):
        train_sentencepiece(sample_sentences["en"], tmp_path / name, model_type="unigram",
                            vocab_size=200)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_sentencepiece_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty corpus"):
        train_sentencepiece([], tmp_path / "m")
    with pytest.raises(DataError, match="sentencepiece training failed"):
        train_sentencepiece(["abcdefghij klmnop"] * 5, tmp_path / "m", vocab_size=3)
    with pytest.raises(DataError, match="model not found"):
        SentencePieceTokenizer(tmp_path / "missing.model")
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a sentencepiece model"):
        SentencePieceTokenizer(tmp_path / "junk.model")


def test_build_tokenizer() -> None:
    assert isinstance(build_tokenizer(TokenizerConfig("jieba"), "zh"), JiebaTokenizer)
    assert isinstance(build_tokenizer(TokenizerConfig("char"), "zh"), CharTokenizer)
    assert isinstance(build_tokenizer(TokenizerConfig("moses"), "en"), MosesTokenizer)
    assert isinstance(build_tokenizer(TokenizerConfig("space"), "en"), SpaceTokenizer)
    with pytest.raises(ConfigError, match="needs a trained model"):
        build_tokenizer(TokenizerConfig("sentencepiece"), "en")


# --------------------------------------------------------------------------- the registry


def test_registry_names_are_the_config_schema() -> None:
    # nmt.config cannot import datautil: the Literal is the schema, the registry the behaviour.
    assert sorted(TOKENIZERS) == sorted(get_args(TokenizerType))


def test_registry_declarations() -> None:
    assert [n for n, k in TOKENIZERS.items() if k.trained_model] == ["sentencepiece"]
    assert [n for n, k in TOKENIZERS.items() if k.keeps_spaces] == ["space"]
    assert tokenizer_kind("sentencepiece").as_token("Tom") == "▁Tom"
    assert tokenizer_kind("moses").as_token("Tom") == "Tom"
    assert tokenizer_kind("jieba").as_token("汤姆") == "汤姆"
    with pytest.raises(ConfigError, match="unknown tokenizer type 'bert'; known: jieba, char"):
        tokenizer_kind("bert")


# --------------------------------------------------------------------------- Chinese spacing


@pytest.mark.parametrize(
    ("pieces", "tokens"),
    [
        # Spaces only between Latin/digit words (most Chinese text): just the words, as before.
        (["Tom", "在", "New", " ", "York", "住", "了", "3.5", "年", "。"],
         ["Tom", "在", "New", "York", "住", "了", "3.5", "年", "。"]),
        (["Tom", ",", " ", "Mary", "和", "我"], ["Tom", ",", "▁", "Mary", "和", "我"]),
        (["”", " ", "“"], ["”", "▁", "“"]),
        (["Bj", "ö", "rk", "和", "caf", "é"], ["Björk", "和", "café"]),  # cut inside a word
        ([" ", "a", "  ", ",", "b ", " c", " "], ["a", "▁", ",", "b", "c"]),  # odd whitespace
        ([], []),
    ],
)
def test_spaced_chinese_tokens(pieces: list[str], tokens: list[str]) -> None:
    assert spaced_chinese_tokens(pieces) == tokens


ZH = Normalizer("zh")
# Examples whose spaces the Chinese joiner used to lose (or add), raw before normalization.
MIXED_EXAMPLES = [
    "Tom, Mary和我",
    "我用Python 3.11写代码。",
    "他说: OK.",
    "“谁在车里？” “汤姆。”",
    '"他是对的吗？" "我不这么认为。"',
    "我听Björk最新的歌曲。",
    "I said (yes) and 我走了!",
    "e.g. 3.5%, U.S.A., it's",
]


@pytest.fixture(scope="module")
def chinese_tokenizers(tmp_path_factory: pytest.TempPathFactory) -> list[Tokenizer]:
    rows = [line.split("\t") for line in read_lines(SAMPLE_DIR / "train.tsv")]
    model = tmp_path_factory.mktemp("spm") / "zh.spm.model"
    train_sentencepiece([ZH(r[1]) for r in rows] + [r[0] for r in rows], model,
                        vocab_size=600, character_coverage=0.9995)  # about 20 ms
    return [JiebaTokenizer(), CharTokenizer(), SentencePieceTokenizer(model)]


@pytest.mark.parametrize("raw", MIXED_EXAMPLES)
def test_chinese_round_trip_examples(raw: str, chinese_tokenizers: list[Tokenizer]) -> None:
    text = ZH(raw)
    for tok in chinese_tokenizers:
        assert tok.detokenize(tok.tokenize(text)) == text, type(tok).__name__


def test_jieba_keeps_the_space_after_latin_punctuation() -> None:
    tok = JiebaTokenizer()
    assert tok.tokenize("Tom, Mary和我") == ["Tom", ",", SPACE_MARK, "Mary", "和", "我"]
    assert tok.detokenize(tok.tokenize("Tom, Mary和我")) == "Tom, Mary和我"
    assert tok.tokenize(ZH("他说: OK.")) == ["他", "说", "：", "OK", "。"]  # no space left


# Han (common and rare), Latin with accents, digits, spaces, Latin and Chinese punctuation;
# never "▁", which the tokenizers reserve for a space.
MIXED_TEXT = st.text(
    alphabet=st.sampled_from(
        list("我你他是的了在和汤姆喜欢北京鱻齉恤 aeiTomMaryPyhonBjörkcafé0123 ,.!?:;()'\"-%&"
             "，。！？：；（）“”‘’《》、…")
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(raw=MIXED_TEXT)
@example(raw="a,b和a, b")
@example(raw="AT恤")
def test_chinese_round_trip_property(raw: str, chinese_tokenizers: list[Tokenizer]) -> None:
    text = ZH(raw)
    for tok in chinese_tokenizers:
        tokens = tok.tokenize(text)
        assert all(t and not any(c.isspace() for c in t) for t in tokens)
        assert tok.detokenize(tokens) == text, (type(tok).__name__, tokens)
