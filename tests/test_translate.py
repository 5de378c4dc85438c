"""Translator: one output per input in order, batch independence, truncation, n-best, <unk>.

The run directories are real (vocabulary from data/sample, config.yaml, a safetensors
checkpoint) but the model is untrained: its output is deterministic garbage, which is all these
properties need. They are built without the trainer, once per session and model type.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import SAMPLE_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.checkpoint import save_checkpoint
from nmt.config import config_from_dict, dump_config
from nmt.datautil.build import build_vocab
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.vocab import BOS_ID, EOS_ID, UNK_ID
from nmt.errors import CheckpointError, ConfigError
from nmt.models.factory import build_model
from nmt.models.int8 import Int8Linear, int8_available
from nmt.perf import decode_workers, torch_threads
from nmt.translate import Translation, Translator

MODEL_TYPES = ("gru", "transformer")
MAX_LEN = 12  # data.max_len of the test runs: longer inputs are truncated
SPECIALS = ("<s>", "</s>", "<pad>")
_RUNS: dict[str, Path] = {}


def build_run(root: Path, kind: str) -> Path:
    """A complete run directory with a tiny random model of ``kind`` (cached per session)."""
    if kind in _RUNS:
        return _RUNS[kind]
    run = root / kind
    cfg = config_from_dict({
        "run_dir": str(run),
        "data": {"train": str(SAMPLE_DIR / "train.tsv"), "dev": None, "test": None,
                 "src_tokenizer": {"type": "char"}, "max_len": MAX_LEN},
        "model": {"type": kind, "d_model": 16, "hidden_size": 16, "enc_layers": 1,
                  "dec_layers": 1, "heads": 2, "ff_size": 32, "dropout": 0.0,
                  "max_positions": 64},
        # Short outputs keep the garbage cheap to decode.
        "decode": {"strategy": "beam", "beam_size": 3, "max_len_a": 0.5, "max_len_b": 3},
    })
    build_vocab(cfg)
    (run / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    processor = TextProcessor.load(run, cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, len(processor.src_vocab), len(processor.tgt_vocab), False)
    save_checkpoint(run, 1, model, None, {}, best=True)
    _RUNS[kind] = run
    return run


# Tiny models gain nothing from threads (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session", params=MODEL_TYPES)
def run_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.getbasetemp() / "translate-runs", request.param)


@pytest.fixture(scope="session")
def translator(run_dir: Path) -> Translator:
    return Translator.load(run_dir, device="cpu")


def dev_sources(n: int) -> list[str]:
    lines = (SAMPLE_DIR / "dev.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[1] for line in lines[:n]]


def force_unk_then_eos(translator: Translator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the model say <unk> first and </s> next, whatever the input."""
    step = translator.model.decode_step

    def forced(prev: torch.Tensor, state: Any) -> Any:
        logits, state, attn = step(prev, state)
        logits = logits.clone()
        column = torch.where(prev == BOS_ID, UNK_ID, EOS_ID)
        logits.scatter_(1, column.unsqueeze(1), 1e4)
        return logits, state, attn

    monkeypatch.setattr(translator.model, "decode_step", forced)


# --------------------------------------------------------------------------- line policy


def test_one_output_per_input_in_order(translator: Translator) -> None:
    sources = ["我喜欢茶。", "", "汤姆在哪里？", "   ", "\x07\x1b", "他很高兴。", ""]
    out = translator.translate(sources, strategy="greedy")
    assert len(out) == len(sources)
    assert [i for i, t in enumerate(out) if t == ""] == [1, 3, 4, 6]
    # Each sentence alone gives what it gave in the batch: order was restored.
    assert [translator.translate([s], strategy="greedy")[0] for s in sources] == out


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_output_does_not_depend_on_the_batch(translator: Translator, strategy: str) -> None:
    sources = dev_sources(14)
    outputs = [translator.translate(sources, strategy=strategy, batch_size=b) for b in (1, 7, 64)]
    assert outputs[0] == outputs[1] == outputs[2]


def test_no_special_tokens_in_output(translator: Translator) -> None:
    sources = dev_sources(10)
    for options in ({"strategy": "greedy"}, {"strategy": "beam"},
                    {"strategy": "sample", "temperature": 2.0}):
        for text in translator.translate(sources, **options):
            assert not any(s in text for s in SPECIALS), (options, text)
            assert "\n" not in text


def test_long_line_is_truncated_with_a_warning(
    translator: Translator, caplog: pytest.LogCaptureFixture
) -> None:
    long_line = "我喜欢茶" * 10
    with caplog.at_level(logging.WARNING, logger="nmt.translate"):
        out = translator.translate(["你好", long_line], return_details=True)
    assert "line 2" in caplog.text and "truncat" in caplog.text
    assert out[1].truncated and not out[0].truncated
    assert len(out[1].src_tokens) == MAX_LEN
    assert out[1].translation  # translated, not dropped


def test_control_characters_are_dropped(translator: Translator) -> None:
    clean, dirty = translator.translate(["我喜欢茶", "我\x00喜\u200b欢\x7f茶"], return_details=True)
    assert dirty.src_tokens == clean.src_tokens and dirty.translation == clean.translation


@settings(max_examples=10, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=20), st.just(""), st.just(" \t "), st.text("\x00\x07\x1b\u200b", max_size=5),
    st.text(alphabet="我你他好茶abc 1", min_size=40, max_size=60),
), max_size=8))
def test_random_unicode_keeps_the_line_count(translator: Translator, lines: list[str]) -> None:
    out = translator.translate(lines, strategy="greedy")
    assert len(out) == len(lines)
    assert all("\n" not in t for t in out)


# --------------------------------------------------------------------------- options


def test_sampling_is_reproducible(translator: Translator) -> None:
    sources = dev_sources(8)
    options: dict[str, Any] = {"strategy": "sample", "temperature": 3.0}
    first = translator.translate(sources, seed=7, **options)
    assert translator.translate(sources, seed=7, **options) == first
    assert translator.translate(sources, seed=8, **options) != first


def test_details_nbest_sorted(translator: Translator) -> None:
    out = translator.translate(dev_sources(3) + [""], strategy="beam", beam_size=4, n_best=3,
                               return_details=True, with_attention=True)
    for t in out[:3]:
        assert isinstance(t, Translation) and len(t.nbest) == 3
        norms = [e.norm_score for e in t.nbest]
        assert norms == sorted(norms, reverse=True)
        assert (t.translation, t.score, t.tokens) == (
            t.nbest[0].translation, t.nbest[0].score, t.nbest[0].tokens)
        assert t.attention is not None
        assert tuple(t.attention.shape) == (len(t.tokens), len(t.src_tokens))
        assert math.isfinite(t.score)
    assert out[3].translation == "" and out[3].nbest[0].translation == ""
    json.dumps([t.to_dict() for t in out], allow_nan=False)


@pytest.mark.parametrize(("options", "name"), [
    ({"beam_size": 0}, "beam_size"), ({"top_p": 1.5}, "top_p"), ({"strategy": "best"}, "strategy"),
    ({"n_best": 9, "beam_size": 3}, "n_best"), ({"temperature": 0.0}, "temperature"),
    ({"max_len_a": -1.0}, "max_len_a"), ({"batch_size": 0}, "batch_size"),
])
def test_bad_options_name_the_option(
    translator: Translator, options: dict[str, Any], name: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        translator.translate(["你好"], **options)


# --------------------------------------------------------------------------- <unk> replacement


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_replace_unk_uses_the_most_attended_source_token(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    translator = Translator.load(run_dir, device="cpu")
    force_unk_then_eos(translator, monkeypatch)
    source = "汤姆喜欢茶"
    assert translator.translate([source], strategy=strategy) == ["<unk>"]
    (t,) = translator.translate([source], strategy=strategy, replace_unk=True,
                                return_details=True, with_attention=True)
    assert t.tokens == ["<unk>"] and t.attention is not None
    assert t.translation == t.src_tokens[int(t.attention[0].argmax())]
    assert t.translation in source


# --------------------------------------------------------------------------- loading


def test_public_import() -> None:
    from nmt import Translator as Exported

    assert Exported is Translator


def test_load_errors(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such run directory"):
        Translator.load(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="config.yaml"):
        Translator.load(tmp_path)
    empty = tmp_path / "untrained"
    empty.mkdir()
    (empty / "config.yaml").write_text((run_dir / "config.yaml").read_text(encoding="utf-8"))
    with pytest.raises(CheckpointError, match="vocab"):
        Translator.load(empty)
    (empty / "vocab").symlink_to(run_dir / "vocab")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Translator.load(empty)


def test_checkpoint_choice(run_dir: Path, translator: Translator) -> None:
    expected = translator.translate(["你好"])
    latest = Translator.load(run_dir, device="cpu", checkpoint="latest")
    explicit = Translator.load(run_dir, checkpoint=run_dir / "checkpoints" / "step-000001")
    assert latest.translate(["你好"]) == explicit.translate(["你好"]) == expected


def test_precision_defaults_to_the_run_and_can_be_chosen(run_dir: Path) -> None:
    assert Translator.load(run_dir, device="cpu").precision == "fp32"  # tests pin CPUs to fp32
    bf16 = Translator.load(run_dir, device="cpu", precision="bf16")
    assert bf16.precision == "bf16"
    sources = dev_sources(6)
    assert len(bf16.translate(sources, strategy="beam")) == len(sources)
    with pytest.raises(ConfigError, match="precision: expected one of auto, fp32, bf16, fp16"):
        Translator.load(run_dir, device="cpu", precision="fp64")


def test_bf16_decodes_on_bf16_weights_and_agrees_with_fp32(run_dir: Path) -> None:
    fp32 = Translator.load(run_dir, device="cpu", precision="fp32")
    bf16 = Translator.load(run_dir, device="cpu", precision="bf16")
    assert {p.dtype for p in fp32.model.parameters()} == {torch.float32}
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    sources = dev_sources(12)
    options: dict[str, Any] = dict(strategy="greedy", return_details=True, with_attention=True)
    ours, theirs = bf16.translate(sources, **options), fp32.translate(sources, **options)
    same = [(a, b) for a, b in zip(ours, theirs, strict=True) if a.tokens == b.tokens]
    assert len(same) >= len(sources) // 2  # an untrained model: some near-ties may flip
    for a, b in same:  # the same tokens scored and aligned alike (bf16: ~3 significant digits)
        assert a.score == pytest.approx(b.score, rel=0.05, abs=0.05 * len(a.tokens))
        assert a.attention is not None and b.attention is not None
        assert a.attention.dtype == torch.float32
        assert torch.allclose(a.attention, b.attention, atol=0.02)


@pytest.mark.parametrize(
    "options",
    [{"strategy": "greedy"}, {"strategy": "beam"}, {"strategy": "sample", "temperature": 2.0}],
)
def test_concurrent_batches_give_what_one_at_a_time_gives(
    translator: Translator, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = dev_sources(14)
    threads: set[str] = set()
    encode = translator.model.encode

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.add(threading.current_thread().name)
        return encode(*args, **kwargs)

    monkeypatch.setattr(translator.model, "encode", spy)
    with torch_threads(1):  # one intra-op thread: one batch at a time
        assert decode_workers(translator.device, 5) == 1
        alone = translator.translate(sources, batch_size=3, seed=5, **options)
    assert threads == {threading.main_thread().name}
    threads.clear()
    with torch_threads(2):  # two: two batches at once, one thread each
        assert decode_workers(translator.device, 5) == 2
        assert decode_workers(translator.device, 1) == 1
        together = translator.translate(sources, batch_size=3, seed=5, **options)
        assert torch.get_num_threads() == 2  # restored after decoding
    assert len(threads) == 2 and all(t.startswith("nmt-decode") for t in threads)
    assert together == alone


def test_an_error_in_one_batch_stops_the_others(
    translator: Translator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    encode = translator.model.encode

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("batch failed")
        time.sleep(0.05)  # the other worker is still busy when the error arrives
        return encode(*args, **kwargs)

    monkeypatch.setattr(translator.model, "encode", failing)
    with torch_threads(2), pytest.raises(RuntimeError, match="batch failed"):
        translator.translate(dev_sources(14), batch_size=1, strategy="greedy")
    # Of 14 batches: the failed one, the other worker's, and the two that the workers pick up
    # as those finish, before the main thread's cancel lands (measured: 2-5 of 14 calls, in 70
    # tries); one more for a slow main thread. Without the cancel, all 14 would run.
    assert len(calls) <= 6


# --------------------------------------------------------------------------- attention plots


def test_plot_attention_png_and_shape_check(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from nmt.attention_plot import plot_attention

    weights = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    path = plot_attention(["我", "喜欢", "茶"], ["I", "like"], weights, tmp_path / "a" / "x.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="does not match"):
        plot_attention(["a"], ["b"], weights, tmp_path / "y.png")


def test_missing_cjk_font_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("matplotlib")
    from nmt import attention_plot

    monkeypatch.setattr(attention_plot, "cjk_font", lambda: None)
    attention_plot._warn_no_cjk_font.cache_clear()
    with caplog.at_level(logging.WARNING, logger="nmt.attention_plot"):
        for name in ("1.png", "2.png"):
            attention_plot.plot_attention(["茶"], ["tea"], [[1.0]], tmp_path / name)
    assert caplog.text.count("no CJK font") == 1
    attention_plot._warn_no_cjk_font.cache_clear()


def test_plot_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nmt.attention_plot import plot_attention

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ConfigError, match=r"nmt\[viz\]"):
        plot_attention(["a"], ["b"], [[1.0]], tmp_path / "x.png")


@pytest.mark.skipif(not int8_available(), reason="this PyTorch build has no FBGEMM int8 kernels")
def test_int8_decodes_with_int8_layers_and_agrees_with_fp32(run_dir: Path) -> None:
    fp32 = Translator.load(run_dir, device="cpu", precision="fp32")
    quantized = Translator.load(run_dir, device="cpu", precision="int8")
    assert quantized.precision == "int8"
    layers = list(quantized.model.modules())
    assert any(isinstance(m, Int8Linear) for m in layers)
    assert not any(type(m) is torch.nn.Linear for m in layers)
    sources = dev_sources(12)
    options: dict[str, Any] = dict(strategy="greedy", return_details=True)
    ours, theirs = quantized.translate(sources, **options), fp32.translate(sources, **options)
    same = [(a, b) for a, b in zip(ours, theirs, strict=True) if a.tokens == b.tokens]
    assert len(same) >= len(sources) // 2  # an untrained model: some near-ties may flip
    for a, b in same:
        assert a.score == pytest.approx(b.score, rel=0.05, abs=0.05 * len(a.tokens))
    beams = quantized.translate(sources, strategy="beam")
    assert len(beams) == len(sources)


def test_int8_is_for_the_cpu(run_dir: Path) -> None:
    fp32 = Translator.load(run_dir, device="cpu", precision="fp32")
    with pytest.raises(ConfigError, match="precision: int8 decoding runs on the CPU, not meta"):
        Translator(fp32.config, fp32.processor, fp32.model, torch.device("meta"), "int8")


@pytest.mark.skipif(not int8_available(), reason="this PyTorch build has no FBGEMM int8 kernels")
def test_int8_concurrent_batches_give_what_one_at_a_time_gives(run_dir: Path) -> None:
    # The packed int8 weights are shared by the decoding threads: they must only be read.
    quantized = Translator.load(run_dir, device="cpu", precision="int8")
    sources = dev_sources(14)
    with torch_threads(1):
        alone = quantized.translate(sources, batch_size=3, strategy="beam")
    with torch_threads(2):
        assert decode_workers(quantized.device, 5) == 2
        together = quantized.translate(sources, batch_size=3, strategy="beam")
    assert together == alone


# --------------------------------------------------------------------------- steering


def test_options_object_and_keywords_agree(translator: Translator) -> None:
    sources = dev_sources(6)
    by_keywords = translator.translate(sources, strategy="greedy", max_len_b=4)
    by_mapping = translator.translate(sources, {"strategy": "greedy", "max_len_b": 4})
    by_config = translator.translate(sources, translator.decode_config(strategy="greedy",
                                                                       max_len_b=4))
    assert by_keywords == by_mapping == by_config
    # Keywords go on top of the object.
    assert translator.translate(sources, {"strategy": "beam"}, strategy="greedy",
                                max_len_b=4) == by_keywords  # fmt: skip
    with pytest.raises(TypeError, match="by keyword"):
        translator.translate(sources, "greedy")  # type: ignore[call-overload]


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_steering_off_changes_nothing(translator: Translator, strategy: str) -> None:
    sources = dev_sources(8)
    plain = translator.translate(sources, strategy=strategy, seed=2)
    off = translator.translate(sources, {"strategy": strategy, "no_repeat_ngram_size": 0,
                                         "repetition_penalty": 1.0, "min_length": 0,
                                         "banned_words": []},
                               prefixes=[None] * len(sources), seed=2)  # fmt: skip
    assert off == plain


def test_prefixes_start_the_translations(translator: Translator) -> None:
    sources = dev_sources(3)
    out = translator.translate(sources, strategy="beam", prefixes=["Tom is", None, ""],
                               return_details=True)  # fmt: skip
    assert out[0].translation.startswith("Tom is")
    plain = translator.translate(sources[1:], strategy="beam")
    assert [r.translation for r in out[1:]] == plain
    with pytest.raises(ConfigError, match="prefixes: 1 given for 3 sentences"):
        translator.translate(sources, prefixes=["x"])


def test_a_prefix_longer_than_the_model_outputs_is_refused(translator: Translator) -> None:
    if translator._max_len_cap is None:
        pytest.skip("the GRU has no position limit")
    with pytest.raises(ConfigError, match="line 1: the prefix has"):
        translator.translate(["你好"], prefixes=["a " * 100])


def test_a_banned_word_the_vocabulary_cannot_spell_is_skipped(
    translator: Translator, caplog: pytest.LogCaptureFixture
) -> None:
    sources = dev_sources(4)
    with caplog.at_level(logging.WARNING, logger="nmt.translate"):
        out = translator.translate(sources, strategy="greedy", banned_words=["Qwxyzzz"])
    assert "'Qwxyzzz' is not in the target vocabulary; ignored" in caplog.text
    assert out == translator.translate(sources, strategy="greedy")
