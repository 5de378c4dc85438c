"""nmt.datautil.zh_script: a vocabulary's script, source conversion, output conversion, and
the --zh-script option of `nmt translate` and `nmt evaluate`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR
from test_translate import build_run
from typer.testing import CliRunner, Result

from nmt.checkpoint import save_checkpoint
from nmt.cli import app
from nmt.config import config_from_dict, dump_config, load_config
from nmt.datautil.build import build_vocab
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.vocab import Vocabulary
from nmt.datautil.zh_script import (
    check_output_script,
    convert_zh_output,
    source_converter,
    vocab_script,
)
from nmt.errors import ConfigError
from nmt.models.factory import build_model

COUNTS = [9, 5, 7, 3, 20, 4, 6, 2]
SIMPLIFIED = Vocabulary(["这个", "问题", "很", "难", "。", "汤姆", "在", "哪里"], COUNTS)
TRADITIONAL = Vocabulary(["這個", "問題", "很", "難", "。", "湯姆", "在", "哪裡"], COUNTS)


def test_detects_the_script_of_each_vocabulary() -> None:
    assert vocab_script(SIMPLIFIED) == "hans"
    assert vocab_script(TRADITIONAL) == "hant"
    assert vocab_script(Vocabulary(["Tom", "likes", "tea", "."], [3, 2, 1, 4])) is None
    # Only characters both scripts write alike: nothing to convert to.
    assert vocab_script(Vocabulary(["我", "你", "很", "好"], [1, 1, 1, 1])) is None
    # Without counts (a Vocabulary built by hand) each token weighs one.
    assert vocab_script(Vocabulary(["這個", "問題", "汤"])) == "hant"


def test_the_counts_decide_not_the_number_of_characters() -> None:
    # Tatoeba's Simplified corpus holds a few Traditional sentences: three rare Traditional
    # characters must not outvote one frequent Simplified one.
    mostly_simplified = Vocabulary(["这", "個", "問", "題"], [100, 1, 1, 1])
    assert vocab_script(mostly_simplified) == "hans"
    assert vocab_script(Vocabulary(["这", "個", "問", "題"], [1, 100, 1, 1])) == "hant"


def _converted(setting: str, vocab: Vocabulary, text: str, **data: str) -> str:
    data_cfg = config_from_dict({"data": {"zh_script": setting, **data}}).data
    convert = source_converter(data_cfg, vocab)
    return text if convert is None else convert(text)


def test_source_conversion_per_setting() -> None:
    assert _converted("auto", SIMPLIFIED, "這個問題很難。") == "这个问题很难。"
    assert _converted("auto", TRADITIONAL, "汤姆在哪里？") == "湯姆在哪裏？"  # OpenCC standard
    assert _converted("keep", SIMPLIFIED, "這個問題很難。") == "這個問題很難。"
    assert _converted("hant", SIMPLIFIED, "这个问题很难。") == "這個問題很難。"
    assert _converted("hans", TRADITIONAL, "這個問題很難。") == "这个问题很难。"
    english = Vocabulary(["Tom", "."], [1, 1])
    assert _converted("auto", english, "這個問題很難。") == "這個問題很難。"
    # An English source is never converted, whatever the setting says.
    assert _converted("hans", SIMPLIFIED, "這個", src_lang="en", tgt_lang="zh") == "這個"


def test_output_conversion() -> None:
    assert convert_zh_output("这个问题很难。", "hans") == "这个问题很难。"
    assert convert_zh_output("這個問題很難。", "hans") == "这个问题很难。"
    assert convert_zh_output("这个问题很难。", "hant") == "這個問題很難。"
    assert convert_zh_output("汤姆在哪里？", "tw") == "湯姆在哪裡？"
    assert convert_zh_output("汤姆在哪里？", "hk") == "湯姆在哪裏？"
    # Output written in Traditional: Traditional stays, regional forms come from t2tw/t2hk.
    assert convert_zh_output("湯姆在哪裏？", "hant", written_in="hant") == "湯姆在哪裏？"
    assert convert_zh_output("湯姆在哪裏？", "tw", written_in="hant") == "湯姆在哪裡？"
    assert convert_zh_output("湯姆在哪裏？", "hans", written_in="hant") == "汤姆在哪里？"


def test_output_script_checks() -> None:
    assert check_output_script("tw", "zh") == "tw"
    with pytest.raises(ConfigError, match="expected one of hans, hant, tw, hk, got 'big5'"):
        check_output_script("big5", "zh")
    with pytest.raises(ConfigError, match="target language is en"):
        check_output_script("hans", "en")


# --------------------------------------------------------------------------- training


def _tsv(path: Path, zh_lines: list[str]) -> Path:
    path.write_text("".join(f"Sentence {i}.\t{zh}\tCC0\n" for i, zh in enumerate(zh_lines)),
                    encoding="utf-8")
    return path


def test_dev_sources_are_converted_and_keyed(tmp_path: Path) -> None:
    """Validation reads the dev set as translate would; its cache follows data.zh_script."""
    from nmt.training.data import load_dev

    train = _tsv(tmp_path / "train.tsv", ["这个问题很难。", "汤姆在哪里？", "我很好。"])
    dev = _tsv(tmp_path / "dev.tsv", ["這個問題很難。", "湯姆在哪裡？"])
    cfg = config_from_dict({"run_dir": str(tmp_path / "run"), "data": {
        "train": str(train), "dev": str(dev), "test": None, "src_tokenizer": {"type": "char"}}})
    build_vocab(cfg)
    ids = {}
    for setting in ("auto", "keep"):
        setting_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data,
                                                                        zh_script=setting))
        processor = TextProcessor.load(cfg.run_dir, setting_cfg.data)
        dev_set = load_dev(setting_cfg, processor)
        assert dev_set is not None
        ids[setting] = [dev_set.corpus.src(i).tolist() for i in range(len(dev_set.corpus))]
        assert dev_set.references == ["Sentence 0.", "Sentence 1."]
    simplified = TextProcessor.load(cfg.run_dir, cfg.data)
    assert ids["auto"] == [simplified.encode_src("这个问题很难。"),
                           simplified.encode_src("汤姆在哪里？")]
    assert ids["keep"] != ids["auto"]  # a cache keyed without zh_script would have served auto
    assert len(list((tmp_path / "run" / "cache").glob("dev-*.npz"))) == 1


# --------------------------------------------------------------------------- the CLI


def _en_zh_run(root: Path) -> Path:
    """A tiny random English -> Chinese model (Simplified target vocabulary)."""
    run = root / "en-zh"
    if run.is_dir():
        return run
    cfg = config_from_dict({
        "run_dir": str(run),
        "data": {"train": str(SAMPLE_DIR / "train.tsv"),
                 "dev": None, "test": None, "src_lang": "en", "tgt_lang": "zh",
                 "src_tokenizer": {"type": "moses"}, "tgt_tokenizer": {"type": "char"},
                 "max_len": 40},
        "model": {"type": "transformer", "d_model": 16, "enc_layers": 1, "dec_layers": 1,
                  "heads": 2, "ff_size": 32, "dropout": 0.0, "max_positions": 64},
        # Sampling at a high temperature: a random model's output holds many characters, some
        # of which Traditional writes differently.
        "decode": {"strategy": "sample", "temperature": 5.0, "max_len_a": 0.0,
                   "max_len_b": 30},
    })
    build_vocab(cfg)
    (run / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    processor = TextProcessor.load(run, cfg.data)
    model = build_model(cfg.model, len(processor.src_vocab), len(processor.tgt_vocab), False)
    save_checkpoint(run, 1, model, None, {}, best=True)
    return run


@pytest.fixture(scope="module")
def en_zh_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    return _en_zh_run(tmp_path_factory.mktemp("zh-script"))


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--device", "cpu"])


def _error_line(result: Result) -> str:
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nmt: error: "), result.stderr
    return lines[0]


SOURCES = ["Tom likes tea.", "Where is the station?", "I want to go to Paris next year."]


def test_translate_writes_the_chosen_script(en_zh_run: Path) -> None:
    plain = _invoke("translate", "--model", str(en_zh_run), "--seed", "1", *SOURCES)
    assert plain.exit_code == 0, plain.output
    lines = plain.stdout.splitlines()
    for script in ("hant", "tw", "hk"):
        converted = _invoke("translate", "--model", str(en_zh_run), "--seed", "1",
                            "--zh-script", script, *SOURCES)
        assert converted.exit_code == 0, converted.output
        expected = [convert_zh_output(line, script) for line in lines]
        assert converted.stdout.splitlines() == expected
    assert convert_zh_output(plain.stdout, "hant") != plain.stdout  # the test can fail
    jsonl = _invoke("translate", "--model", str(en_zh_run), "--seed", "1", "--format", "jsonl",
                    "--zh-script", "hant", *SOURCES)
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["translation"] for r in records] == [convert_zh_output(x, "hant") for x in lines]
    assert all(r["nbest"][0]["translation"] == r["translation"] for r in records)


def test_evaluate_scores_the_converted_output(en_zh_run: Path, tmp_path: Path) -> None:
    src, ref = tmp_path / "src.en", tmp_path / "ref.zh"
    src.write_text("".join(f"{s}\n" for s in SOURCES), encoding="utf-8")
    ref.write_text("湯姆喜歡茶。\n車站在哪裡？\n我明年想去巴黎。\n", encoding="utf-8")
    plain = _invoke("translate", "--model", str(en_zh_run), "--seed", "1", *SOURCES)
    saved = tmp_path / "hyp.zh"
    result = _invoke("evaluate", "--model", str(en_zh_run), "--src", str(src), "--ref",
                     str(ref), "--seed", "1", "--zh-script", "tw", "--save-hyp", str(saved))
    assert result.exit_code == 0, result.output
    expected = [convert_zh_output(line, "tw") for line in plain.stdout.splitlines()]
    assert saved.read_text(encoding="utf-8").splitlines() == expected


def test_zh_script_is_refused_for_an_english_target(tmp_path: Path) -> None:
    zh_en = build_run(tmp_path, "gru")
    message = "nmt: error: --zh-script converts Chinese output; this model's target language is en"
    assert _error_line(_invoke("translate", "--model", str(zh_en), "--zh-script", "hans",
                               "你好")) == message
    assert _error_line(_invoke("evaluate", "--model", str(zh_en), "--split", "dev",
                               "--zh-script", "hans")) == message


def test_zh_script_is_refused_without_a_model(tmp_path: Path) -> None:
    hyp = tmp_path / "hyp.zh"
    hyp.write_text("你好\n", encoding="utf-8")
    result = _invoke("evaluate", "--hyp", str(hyp), "--ref", str(hyp), "--tgt-lang", "zh",
                     "--zh-script", "hant")
    assert "--zh-script and --to belong to --model mode" in _error_line(result)


def test_translate_reads_traditional_input_as_simplified(tmp_path: Path) -> None:
    """The issue's case end to end: the zh->en model gets the ids of the Simplified form."""
    zh_en = build_run(tmp_path, "gru")
    cfg_data = load_config(zh_en / "config.yaml").data
    processor = TextProcessor.load(zh_en, cfg_data)
    keep = TextProcessor.load(zh_en, dataclasses.replace(cfg_data, zh_script="keep"))
    assert "<unk>:湯" in keep.src_tokens_for_display("湯姆在哪裡？")
    assert processor.encode_src("湯姆在哪裡？") == processor.encode_src("汤姆在哪里？")
    outputs = [_invoke("translate", "--model", str(zh_en), s).stdout
               for s in ("湯姆在哪裡？", "汤姆在哪里？")]
    assert outputs[0] == outputs[1] != ""
