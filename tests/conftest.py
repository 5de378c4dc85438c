"""Shared fixtures. Keep additions additive: one section per area.

A tiny corpus written here (not copied from anywhere) keeps the data-layer tests fast.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from nmt.config import Config, config_from_dict
from nmt.runtime import CPU_BF16_ENV

# precision "auto" is bf16 on CPUs with native bf16: pin CPU runs to fp32 so that every test
# computes the same numbers on every machine (subprocesses inherit this too). Tests of bf16
# ask for it explicitly.
os.environ[CPU_BF16_ENV] = "0"

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "data" / "sample"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "cmn-eng"

# --------------------------------------------------------------------------- data layer

TINY_TRAIN = [
    ("I like tea.", "我喜欢茶。"),
    ("I like coffee.", "我喜欢咖啡。"),
    ("Tom likes tea.", "汤姆喜欢茶。"),
    ("Mary likes milk.", "玛丽喜欢牛奶。"),
    ("Where is the station?", "车站在哪里？"),
    ("Where is the bank?", "银行在哪里？"),
    ("It is 3:30 now.", "现在3点半。"),
    ("Tom lives in New York.", "Tom住在纽约。"),
]
TINY_DEV = [
    ("Mary likes coffee.", "玛丽喜欢咖啡。"),
    ("Where is the hospital?", "医院在哪里？"),
]


def tsv_text(pairs: list[tuple[str, str]]) -> str:
    """Pairs in the Tatoeba TSV format (English first)."""
    return "".join(f"{en}\t{zh}\ttest corpus (CC0)\n" for en, zh in pairs)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> dict[str, Path]:
    """``train``/``dev`` TSV files and an aligned ``aligned/train`` prefix of the tiny corpus."""
    (tmp_path / "train.tsv").write_text(tsv_text(TINY_TRAIN), encoding="utf-8")
    (tmp_path / "dev.tsv").write_text(tsv_text(TINY_DEV), encoding="utf-8")
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    (aligned / "train.zh").write_text("".join(zh + "\n" for _, zh in TINY_TRAIN), encoding="utf-8")
    (aligned / "train.en").write_text("".join(en + "\n" for en, _ in TINY_TRAIN), encoding="utf-8")
    return {"train": tmp_path / "train.tsv", "dev": tmp_path / "dev.tsv",
            "aligned": aligned / "train"}


@pytest.fixture
def make_config(tmp_path: Path, tiny_corpus: dict[str, Path]) -> Callable[..., Config]:
    """``make_config(src="char", tgt="moses", **data_keys)`` -> a Config on the tiny corpus.

    The run directory is ``tmp_path/run``; ``src``/``tgt`` set the tokenizer types and other
    keyword arguments are ``data`` keys (``src_tokenizer``/``tgt_tokenizer`` as dicts merge).
    """

    def make(src: str = "char", tgt: str = "moses", **data: Any) -> Config:
        raw_data: dict[str, Any] = {
            "train": str(tiny_corpus["train"]),
            "dev": str(tiny_corpus["dev"]),
            "test": None,
            "src_tokenizer": {"type": src, **data.pop("src_tokenizer", {})},
            "tgt_tokenizer": {"type": tgt, **data.pop("tgt_tokenizer", {})},
        }
        raw_data.update(data)
        return config_from_dict({"run_dir": str(tmp_path / "run"), "data": raw_data})

    return make


# --------------------------------------------------------------------------- scripts/


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` imported as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- trained model


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of configs/quickstart.yaml on data/sample trained briefly (about 10 s on one
    thread), once per session: real translations for the tests that need a trained model."""
    import torch

    from nmt.config import load_config
    from nmt.datautil.build import build_vocab
    from nmt.training.trainer import train

    run = tmp_path_factory.mktemp("trained") / "quickstart"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_config(REPO_ROOT / "configs" / "quickstart.yaml", [
            f"run_dir={run}", f"data.train={SAMPLE_DIR / 'train.tsv'}",
            f"data.dev={SAMPLE_DIR / 'dev.tsv'}", f"data.test={SAMPLE_DIR / 'test.tsv'}",
            "train.max_epochs=20", "train.valid_every=80", "train.average_last=0",
        ])  # fmt: skip
        build_vocab(cfg)
        train(cfg)
    finally:
        torch.set_num_threads(before)
    return run


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a module's tests (``pytestmark =
    pytest.mark.usefixtures("one_torch_thread")``): tiny models gain nothing from threads, and
    on a busy machine the threads wait for each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
