"""scripts/benchmark_data.py: the synthetic corpus and a small end-to-end run of the data arms.

Not a timing test: it checks that the corpus is what the figures claim (distinct pairs, a
vocabulary that does not grow with N) and that an arm runs and reports positive figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR, load_script


def test_generated_pairs_are_distinct_and_reuse_the_vocabulary(tmp_path: Path) -> None:
    bench = load_script("benchmark_data")
    source = SAMPLE_DIR / "train.tsv"
    base = [ln for ln in source.read_text(encoding="utf-8").split("\n") if ln.strip()]
    n = 3 * len(base) + 5
    path = bench.generate_corpus(n, tmp_path, source)
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [tuple(ln.split("\t")[:2]) for ln in lines]
    assert len(pairs) == n == len(set(pairs))
    assert pairs[len(base)][0].startswith("[1] ") and pairs[len(base)][1].startswith("[1]")
    prefixes = {en.split(" ", 1)[0] for en, _ in pairs}
    assert prefixes == {"[0]", "[1]", "[2]", "[3]"}  # one token per copy, not per pair
    assert bench.generate_corpus(n, tmp_path, source) == path  # reused, not rewritten


@pytest.mark.slow
def test_one_arm_runs_and_reports(tmp_path: Path) -> None:
    bench = load_script("benchmark_data")
    code = bench.main(["--sizes", "500,1000", "--workers", "1", "--out", str(tmp_path),
                       "--source", str(SAMPLE_DIR / "train.tsv")])
    assert code == 0
    results = json.loads((tmp_path / "benchmark_data.json").read_text(encoding="utf-8"))
    arm = results["arms"]["new-1000-w1"]
    assert arm["pairs"] == 1000 and arm["pairs_per_s"] > 0 and arm["cache_mib"] > 0
    assert arm["build_vocab_rss_mib"] > 10 and arm["train_rss_mib"] > arm["train_anon_mib"] > 10
    assert "1 worker(s): pairs/s at 1,000 / at 500" in results["ratios"]
    assert "| new-500-w1 | 500 | 1 |" in (tmp_path / "benchmark_data.md").read_text("utf-8")
