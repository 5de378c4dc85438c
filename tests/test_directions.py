"""One model for both directions: each pair served both ways with the target-language tag
first on the source side, one joint vocabulary with the tags, and the other direction reached
through ``to`` / ``--to``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from nmt.cli import app
from nmt.config import Config, config_from_dict, config_to_dict
from nmt.datautil.batching import TokenizedCorpus
from nmt.datautil.build import build_vocab
from nmt.datautil.directions import TAGS, BothDirections, config_toward, reversed_data
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.vocab import Vocabulary
from nmt.errors import ConfigError


def test_each_pair_is_served_both_ways_with_its_target_tag() -> None:
    corpus = TokenizedCorpus.from_lists([[5, 6], [7]], [[8], [9, 10, 11]])
    both = BothDirections(corpus, forward_tag=4, backward_tag=3)
    assert len(both) == 4
    assert [both.src(i).tolist() for i in range(4)] == [[4, 5, 6], [4, 7], [3, 8], [3, 9, 10, 11]]
    assert [both.tgt(i).tolist() for i in range(4)] == [[8], [9, 10, 11], [5, 6], [7]]
    assert both.src_lengths().tolist() == [3, 2, 2, 4]
    assert both.tgt_lengths().tolist() == [1, 3, 2, 1]
    assert both.src(0).dtype == corpus.src(0).dtype == np.asarray(corpus.src(0)).dtype


def test_reserved_tokens_come_first_whatever_their_counts() -> None:
    vocab = Vocabulary.build({"a": 5, "b": 1, "<2zh>": 1}, min_freq=2, max_size=1,
                             reserved=["<2en>", "<2zh>"])  # fmt: skip
    assert vocab.tokens == ["<pad>", "<unk>", "<s>", "</s>", "<2en>", "<2zh>", "a"]


def test_both_directions_need_a_joint_vocabulary(make_config: Callable[..., Config]) -> None:
    with pytest.raises(ConfigError, match="data.directions.*joint_vocab"):
        make_config(directions="both")
    make_config(directions="both", joint_vocab=True)


def test_the_other_direction_swaps_sides_and_only_a_both_run_has_one(
        make_config: Callable[..., Config]) -> None:  # fmt: skip
    cfg = make_config("jieba", "moses", directions="both", joint_vocab=True)
    back = config_toward(cfg, "zh")
    assert (back.data.src_lang, back.data.tgt_lang) == ("en", "zh")
    assert (back.data.src_tokenizer.type, back.data.tgt_tokenizer.type) == ("moses", "jieba")
    assert reversed_data(back.data) == cfg.data
    assert config_toward(cfg, "en") is cfg and config_toward(cfg, None) is cfg
    with pytest.raises(ConfigError, match="between zh and en"):
        config_toward(cfg, "fr")
    one = make_config("jieba", "moses")
    with pytest.raises(ConfigError, match=r"zh->en only"):
        config_toward(one, "zh")


def _both_run(make_config: Callable[..., Config], **train: Any) -> Config:
    cfg = make_config("jieba", "moses", directions="both", joint_vocab=True)
    raw = config_to_dict(cfg)
    raw["model"] = {"type": "transformer", "d_model": 32, "heads": 2, "ff_size": 64,
                    "enc_layers": 1, "dec_layers": 1, "dropout": 0.0}
    raw["train"] = {**raw["train"], "max_steps": 4, "valid_every": 4, "batch_tokens": 256,
                    "warmup_steps": 2, "log_every": 2, "threads": 1, **train}
    return config_from_dict(raw)


def test_a_both_directions_run_trains_and_translates_either_way(
        make_config: Callable[..., Config]) -> None:  # fmt: skip
    from nmt.training.session import TrainingSession
    from nmt.training.trainer import train
    from nmt.translate import Translator

    cfg = _both_run(make_config)
    build_vocab(cfg)
    processor = TextProcessor.load(cfg.run_dir, cfg.data)
    vocab = processor.src_vocab
    assert vocab.tokens[4:6] == sorted(TAGS.values())
    assert processor.encode_src("我爱你。")[0] == vocab.token_to_id("<2en>")
    back = processor.reversed()
    assert back.encode_src("I love you.")[0] == vocab.token_to_id("<2zh>")
    # English is segmented as English on the source side, after the tag.
    assert back.tokenize_src("I love you.") == ["<2zh>", *processor.tokenize_tgt("I love you.")]
    assert back.src_tokens_for_display("I love you.")[0] == "<2zh>"

    session = TrainingSession(cfg)
    pairs = len(session.corpus) // 2
    assert len(session.corpus) == 2 * pairs and pairs > 0  # every pair both ways
    result = train(cfg)
    assert result.step == 4

    forward = Translator.load(cfg.run_dir, device="cpu")
    backward = Translator.load(cfg.run_dir, device="cpu", to="zh")
    assert (backward.config.data.src_lang, backward.config.data.tgt_lang) == ("en", "zh")
    assert len(forward.translate(["我爱你。", "你好"], strategy="greedy")) == 2
    out = backward.translate(["I love you.", ""], strategy="greedy")
    assert len(out) == 2 and out[1] == ""
    assert out[0]
    # The tag reaches the model on the translate path too (not only in validation).
    for translator, tag in ((forward, "<2en>"), (backward, "<2zh>")):
        details = translator.translate(["我爱你。"], strategy="greedy", return_details=True)
        assert details[0].src_tokens[0] == tag
    # Output is detokenized as Chinese (no spaces between words), input tokenized as English.
    assert backward.processor.detokenize_tgt(["我", "爱", "你", "。"]) == "我爱你。"
    assert forward.processor.detokenize_tgt(["I", "love", "you", "."]) == "I love you."

    runner = CliRunner()
    got = runner.invoke(app, ["translate", "--model", cfg.run_dir, "--to", "zh",
                              "--strategy", "greedy"], input="I love you.\nHello\n")  # fmt: skip
    assert got.exit_code == 0, got.output
    assert got.stdout.splitlines() == backward.translate(["I love you.", "Hello"],
                                                         strategy="greedy")  # fmt: skip
    refused = runner.invoke(app, ["translate", "--model", cfg.run_dir, "--to", "fr", "hi"])
    assert refused.exit_code == 2 and "between zh and en" in refused.output


def test_a_one_direction_run_refuses_the_other_direction(make_config: Callable[..., Config]
                                                         ) -> None:  # fmt: skip
    cfg = dataclasses.replace(_both_run(make_config), data=make_config("jieba", "moses").data)
    build_vocab(cfg)
    with pytest.raises(ConfigError, match="only"):
        TextProcessor.load(cfg.run_dir, cfg.data).reversed()
    runner = CliRunner()
    refused = runner.invoke(app, ["evaluate", "--model", cfg.run_dir, "--to", "zh",
                                  "--split", "dev"])  # fmt: skip
    assert refused.exit_code == 2 and "zh->en only" in refused.output
