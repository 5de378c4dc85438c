"""nmt.datautil.pipeline: the one text <-> ids path, loaded from a run directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nmt.config import Config
from nmt.datautil.build import build_vocab
from nmt.datautil.pipeline import TextProcessor, vocab_layout
from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
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


def test_layout_names(tmp_path: Path, make_config: MakeConfig) -> None:
    layout = vocab_layout(tmp_path, make_config(src="sentencepiece", tgt="moses").data)
    assert layout.src_spm == tmp_path / "vocab" / "src.spm.model" and layout.tgt_spm is None
    assert not layout.joint_spm and layout.tgt_vocab.name == "tgt.vocab"
    joint = vocab_layout(tmp_path, make_config(src="sentencepiece", tgt="sentencepiece",
                                               joint_vocab=True).data)
    assert joint.joint_spm and joint.src_vocab == joint.tgt_vocab
