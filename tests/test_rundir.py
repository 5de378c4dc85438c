"""nmt.training.rundir: the vocabulary is reused, rebuilt or defended according to the settings
it was built with and whether a model was trained on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from nmt.checkpoint import save_checkpoint
from nmt.config import Config, load_config
from nmt.datautil.build import build_vocab
from nmt.datautil.vocab import Vocabulary
from nmt.errors import ConfigError
from nmt.training import rundir
from nmt.training.rundir import prepare_run_dir

MakeConfig = Callable[..., Config]


def src_vocab_size(cfg: Config) -> int:
    return len(Vocabulary.load(Path(cfg.run_dir) / "vocab" / "src.vocab"))


def no_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(cfg: Config) -> Any:
        raise AssertionError("the vocabulary was rebuilt")

    monkeypatch.setattr(rundir, "build_vocab", fail)


def test_same_settings_reuse_the_vocabulary(
    make_config: MakeConfig, tiny_corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    build_vocab(make_config())
    no_rebuild(monkeypatch)
    # Other data keys may change; a relative path naming the same file is the same setting.
    monkeypatch.chdir(tiny_corpus["train"].parent)
    cfg = make_config(train="train.tsv", max_len=20, dev=None)
    assert prepare_run_dir(cfg, resume=False) is None
    saved = load_config(Path(cfg.run_dir) / "config.yaml")
    assert saved.data.max_len == 20 and Path(saved.data.train).is_absolute()


def test_changed_setting_rebuilds_an_untrained_run(make_config: MakeConfig) -> None:
    build_vocab(make_config())
    before = src_vocab_size(make_config())
    cfg = make_config(min_freq=2)
    assert prepare_run_dir(cfg, resume=False) is None
    assert src_vocab_size(cfg) < before
    assert load_config(Path(cfg.run_dir) / "config.yaml").data.min_freq == 2


@pytest.mark.parametrize(("change", "key"), [
    ({"min_freq": 2}, "data.min_freq"), ({"src": "jieba"}, "data.src_tokenizer.type"),
    ({"joint_vocab": True}, "data.joint_vocab"),
])  # fmt: skip
def test_changed_setting_of_a_trained_run_is_refused(
    make_config: MakeConfig, change: dict[str, Any], key: str
) -> None:
    cfg = make_config()
    build_vocab(cfg)
    save_checkpoint(cfg.run_dir, 1, nn.Linear(1, 1), None, {})
    run = Path(cfg.run_dir)
    files = {p: p.read_bytes() for p in [run / "config.yaml", *(run / "vocab").iterdir()]}
    with pytest.raises(ConfigError, match=rf"^{key}: {run} was trained with {key}=") as info:
        prepare_run_dir(make_config(**change), resume=True)
    assert "\n" not in str(info.value)
    assert {p: p.read_bytes() for p in files} == files  # nothing rebuilt or rewritten
    assert prepare_run_dir(cfg, resume=True) == run / "checkpoints" / "step-000001"
