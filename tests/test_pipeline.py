"""nmt.datautil.pipeline: the one text <-> ids path, loaded from a run directory."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from nmt.config import Config
from nmt.datautil.build import build_vocab
from nmt.datautil.pipeline import TextProcessor, vocab_layout
from nmt.datautil.tokenize import CharTokenizer
from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary
from nmt.errors import CheckpointError

MakeConfig = Callable[..., Config]


def load(cfg: Config) -> TextProcessor:
    build_vocab(cfg)
    return TextProcessor.load(cfg.run_dir, cfg.data)


def test_zh_to_en_round_trip(make_config: MakeConfig) -> None:
    tp = load(make_config(src="jieba", tgt="moses"))
    assert not tp.joint and tp.src_vocab is not tp.tgt_vocab
    assert tp.tokenize_src("我喜欢 咖啡!") == ["我", "喜欢", "咖啡", "！"]  # normalized first
    ids = tp.encode_src("我喜欢咖啡。")
    assert UNK_ID not in ids and BOS_ID not in ids and EOS_ID not in ids
    tgt = tp.encode_tgt("Tom likes coffee.")
    assert tp.decode_tgt([BOS_ID, *tgt, EOS_ID, PAD_ID]) == "Tom likes coffee."
    assert tp.tgt_tokens([*tgt, EOS_ID, *tgt]) == ["Tom", "likes", "coffee", "."]
    assert tp.decode_tgt([tp.tgt_vocab.token_to_id("Tom"), UNK_ID]) == "Tom <unk>"


def test_en_to_zh_detokenizes_chinese(make_config: MakeConfig) -> None:
    tp = load(make_config(src="moses", tgt="jieba", src_lang="en", tgt_lang="zh"))
    ids = tp.encode_tgt("汤姆 喜欢 茶。")
    assert tp.decode_tgt(ids) == "汤姆喜欢茶。"
    assert tp.decode_tgt(tp.encode_tgt("Tom住在纽约。")) == "Tom住在纽约。"


def test_display_tokens(make_config: MakeConfig) -> None:
    tp = load(make_config(src="jieba", tgt="moses"))
    labels = tp.src_tokens_for_display("医院在哪里？")
    assert labels == ["<unk>:医院", "在", "哪里", "？"]
    assert len(labels) == len(tp.encode_src("医院在哪里？"))


def test_sentencepiece_joint(make_config: MakeConfig) -> None:
    sp = {"sp_vocab_size": 80}
    tp = load(make_config(src="sentencepiece", tgt="sentencepiece", joint_vocab=True,
                          src_tokenizer=sp, tgt_tokenizer=sp))
    assert tp.joint and tp.src_vocab is tp.tgt_vocab
    assert tp.decode_tgt(tp.encode_tgt("Tom likes tea.")) == "Tom likes tea."
    assert all("▁" not in label for label in tp.src_tokens_for_display("我 喜欢茶"))


def test_missing_vocabulary_is_a_checkpoint_error(make_config: MakeConfig) -> None:
    cfg = make_config()
    with pytest.raises(CheckpointError, match="src.vocab not found; run 'nmt build-vocab'"):
        TextProcessor.load(cfg.run_dir, cfg.data)


@pytest.mark.parametrize(
    ("src", "tgt", "source_token", "target_token"),
    [
        ("sentencepiece", "moses", "▁Tom", "Tom"),
        ("jieba", "sentencepiece", "汤姆", "▁汤姆"),  # else it would glue to the word before
        ("moses", "jieba", "Tom", "Tom"),
        ("char", "sentencepiece", "▁", "▁▁"),  # a bare mark is its own surface
    ],
)
def test_source_token_as_target(make_config: MakeConfig, src: str, tgt: str,
                                source_token: str, target_token: str) -> None:
    cfg = make_config(src=src, tgt=tgt)
    vocab = Vocabulary([])
    tp = TextProcessor(cfg.data, CharTokenizer(), CharTokenizer(), vocab, vocab)
    assert tp.source_token_as_target(source_token) == target_token


def test_en_to_zh_keeps_spaces_of_mixed_text(make_config: MakeConfig) -> None:
    tp = load(make_config(src="moses", tgt="jieba", src_lang="en", tgt_lang="zh"))
    for text in ("Tom, Mary和我", "“谁？” “汤姆。”"):  # not in the tiny vocabulary: tokens
        assert tp.detokenize_tgt(tp.tokenize_tgt(text)) == text


def test_a_space_mark_the_source_vocabulary_lacks_is_dropped(make_config: MakeConfig) -> None:
    # A run whose vocabulary predates jieba's ▁ tokens reads "Tom, Mary" as it was trained to,
    # not with an <unk> for the space; a vocabulary that has ▁ keeps it.
    cfg = make_config(src="jieba", tgt="moses")
    tp = load(cfg)
    assert "▁" not in tp.src_vocab
    text = "Tom, Mary和我"
    assert "▁" in tp.src_tokenizer.tokenize(tp.prepare_src(text))
    assert tp.tokenize_src(text) == ["Tom", ",", "Mary", "和", "我"]
    assert len(tp.src_tokens_for_display(text)) == len(tp.encode_src(text))
    with_mark = Vocabulary(["Tom", "▁", "Mary"])
    tp2 = TextProcessor(cfg.data, tp.src_tokenizer, tp.tgt_tokenizer, with_mark, tp.tgt_vocab)
    assert tp2.tokenize_src(text) == ["Tom", ",", "▁", "Mary", "和", "我"]


def test_with_source_words_joins_only_terms_the_vocabulary_has(make_config: MakeConfig
                                                                ) -> None:  # fmt: skip
    cfg = make_config(src="jieba", tgt="moses")
    tp = load(cfg)
    vocab = Vocabulary([*tp.src_vocab.tokens[4:], "汤姆猫"])  # 汤姆猫 known, 量子纠缠 not
    tp = TextProcessor(cfg.data, tp.src_tokenizer, tp.tgt_tokenizer, vocab, tp.tgt_vocab)
    assert tp.tokenize_src("汤姆猫喜欢量子纠缠") == ["汤姆", "猫", "喜欢", "量子", "纠缠"]
    glossary = tp.with_source_words(["汤姆猫", "量子纠缠", "喜欢"])
    assert glossary.tokenize_src("汤姆猫喜欢量子纠缠") == ["汤姆猫", "喜欢", "量子", "纠缠"]
    assert glossary.encode_src("汤姆猫喜欢")[0] == vocab.token_to_id("汤姆猫")
    assert tp.tokenize_src("汤姆猫") == ["汤姆", "猫"]  # the processor itself is unchanged
    assert tp.with_source_words(["量子纠缠", "喜欢"]) is tp  # nothing to add
    chars = TextProcessor(cfg.data, CharTokenizer(), tp.tgt_tokenizer, vocab, tp.tgt_vocab)
    assert chars.with_source_words(["汤姆猫"]) is chars  # a tokenizer without extra words


def test_layout_names(tmp_path: Path, make_config: MakeConfig) -> None:
    layout = vocab_layout(tmp_path, make_config(src="sentencepiece", tgt="moses").data)
    assert layout.src_spm == tmp_path / "vocab" / "src.spm.model" and layout.tgt_spm is None
    assert not layout.joint_spm and layout.tgt_vocab.name == "tgt.vocab"
    joint = vocab_layout(tmp_path, make_config(src="sentencepiece", tgt="sentencepiece",
                                               joint_vocab=True).data)
    assert joint.joint_spm and joint.src_vocab == joint.tgt_vocab


# --------------------------------------------------------------------------- data.zh_script


def test_traditional_source_is_read_in_the_vocabulary_script(make_config: MakeConfig) -> None:
    cfg = make_config(src="jieba", tgt="moses")  # the tiny corpus is Simplified
    tp = load(cfg)
    assert tp.prepare_src("這個問題很難。") == "这个问题很难。"
    assert tp.tokenize_src("車站在哪裡？") == tp.tokenize_src("车站在哪里？")
    assert UNK_ID not in tp.encode_src("銀行在哪裡？")
    keep = TextProcessor.load(cfg.run_dir, dataclasses.replace(cfg.data, zh_script="keep"))
    assert keep.prepare_src("這個問題很難。") == "這個問題很難。"
    assert UNK_ID in keep.encode_src("銀行在哪裡？")


def test_a_traditional_vocabulary_gets_traditional_input(tmp_path: Path,
                                                         make_config: MakeConfig) -> None:
    train = tmp_path / "traditional.tsv"
    train.write_text("I like tea.\t我喜歡茶。\tCC0\nWhere is the bank?\t銀行在哪裡？\tCC0\n",
                     encoding="utf-8")
    tp = load(make_config(train=str(train), dev=None))
    assert tp.prepare_src("银行在哪里？") == "銀行在哪裏？"  # OpenCC's standard Traditional
    assert UNK_ID not in tp.encode_src("我喜欢茶。")


def test_zh_script_leaves_the_training_corpus_alone(tmp_path: Path,
                                                    make_config: MakeConfig) -> None:
    """Vocabulary and training token cache are the same for every zh_script: only what the
    model reads at inference and validation is converted."""
    train = tmp_path / "mixed.tsv"
    train.write_text("I like tea.\t我喜欢茶。\tCC0\nWhere is the bank?\t銀行在哪裡？\tCC0\n"
                     "Where is the station?\t车站在哪里？\tCC0\n", encoding="utf-8")
    built = {}
    for setting in ("auto", "keep", "hant"):
        cfg = make_config(train=str(train), dev=None, zh_script=setting)
        cfg = dataclasses.replace(cfg, run_dir=str(tmp_path / setting))
        build_vocab(cfg)
        run = Path(cfg.run_dir)
        files = sorted((run / "vocab").iterdir()) + sorted((run / "cache").rglob("*"))
        built[setting] = {p.relative_to(run): p.read_bytes() for p in files if p.is_file()}
        assert "銀" in TextProcessor.load(run, cfg.data).src_vocab  # Traditional kept as read
    # The same bytes under the same names: the training cache's key ignores zh_script too.
    assert built["auto"] == built["keep"] == built["hant"]
    assert any(str(name).startswith("cache/train-") for name in built["auto"])
