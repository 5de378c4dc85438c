"""scripts/get_tatoeba.py: parsing and the leak-free split, offline on synthetic pairs."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO_ROOT


@pytest.fixture(scope="module")
def tatoeba() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "get_tatoeba", REPO_ROOT / "scripts" / "get_tatoeba.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """Pairs where many English sentences have several Chinese translations and vice versa."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cluster = rng.randrange(n // 3)  # pairs share sentences only within a cluster
        out.append((f"en{cluster}-{rng.randrange(2)}", f"zh{cluster}-{rng.randrange(2)}", f"#{i}"))
    return out


def test_parse_pairs(tatoeba: ModuleType) -> None:
    lines = ["Hi.\t嗨。\tCC-BY #1\r", "Hi.\t嗨。\tCC-BY #2", "broken", "", "Run!\t跑！\tx",
             "\t空\tx"]
    assert tatoeba.parse_pairs(lines) == [("Hi.", "嗨。", "CC-BY #1"), ("Run!", "跑！", "x")]


def test_split_keeps_shared_sentences_together(tatoeba: ModuleType) -> None:
    pairs = tatoeba.parse_pairs([f"{e}\t{z}\t{a}" for e, z, a in synthetic(600)])
    train, dev, test = tatoeba.split_pairs(pairs, dev_size=50, test_size=50, seed=3)
    assert len(train) + len(dev) + len(test) == len(pairs)
    assert 0 < len(dev) <= 50 and 0 < len(test) <= 50
    assert sorted(train + dev + test) == sorted(pairs)
    for a, b in ((train, dev), (train, test), (dev, test)):
        assert not {e for e, _, _ in a} & {e for e, _, _ in b}
        assert not {z for _, z, _ in a} & {z for _, z, _ in b}


def test_split_is_seeded(tatoeba: ModuleType) -> None:
    pairs = synthetic(300, seed=1)
    assert tatoeba.split_pairs(pairs, 20, 20, seed=5) == tatoeba.split_pairs(pairs, 20, 20, 5)
    assert tatoeba.split_pairs(pairs, 20, 20, seed=5) != tatoeba.split_pairs(pairs, 20, 20, 6)


def test_split_of_distinct_pairs_fills_sizes_exactly(tatoeba: ModuleType) -> None:
    pairs = [(f"e{i}", f"z{i}", "") for i in range(100)]
    train, dev, test = tatoeba.split_pairs(pairs, 10, 15, seed=0)
    assert (len(train), len(dev), len(test)) == (75, 10, 15)
    assert train == sorted(train, key=pairs.index)  # input order kept


def test_write_split(tatoeba: ModuleType, tmp_path: Path) -> None:
    tatoeba.write_split(tmp_path, "dev", [("Hi.", "嗨。", "CC-BY #1")])
    assert (tmp_path / "dev.tsv").read_text(encoding="utf-8") == "Hi.\t嗨。\tCC-BY #1\n"
    assert (tmp_path / "dev.zh").read_text(encoding="utf-8") == "嗨。\n"
    assert (tmp_path / "dev.en").read_text(encoding="utf-8") == "Hi.\n"
