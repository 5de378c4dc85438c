"""Smoke test of scripts/benchmark.py: --quick on the sample corpus writes sane JSON and markdown.

Not a timing test: it only checks that every section runs and reports positive figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

from nmt.models.int8 import int8_available

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"

TINY = """\
run_dir: unused
data:
  train: {sample}/train.tsv
  dev: {sample}/dev.tsv
  test: {sample}/test.tsv
  max_len: 50
model:
  type: {type}
  d_model: 32
  hidden_size: 32
  heads: 2
  ff_size: 64
  enc_layers: 1
  dec_layers: 1
train:
  batch_tokens: 512
"""


@pytest.mark.slow
def test_quick_benchmark_reports_every_section(tmp_path: Path) -> None:
    configs = []
    for kind in ("transformer", "gru"):
        path = tmp_path / f"tiny_{kind}.yaml"
        path.write_text(TINY.format(sample=SAMPLE, type=kind), encoding="utf-8")
        configs += ["--config", str(path)]
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--quick", *configs,
           "--out", str(out), "--threads", "1", "--precisions", "fp32", "--skip", "startup"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    assert results["mode"] == "quick" and results["skipped"] == []
    assert results["peak"]["fp32"]["best_gflops"] > 0 and results["peak"]["bf16"]["best_gflops"] > 0
    models = results["models"]
    assert set(models) == {"tiny_transformer", "tiny_gru"}
    for name, m in models.items():
        (train,) = m["train"]
        for key in ("tgt_tokens_per_s", "src_tgt_tokens_per_s", "achieved_gflops",
                    "train_flops_per_tgt_token", "peak_rss_mib"):
            assert train[key] > 0, (name, key)
        rows = m["decode"]["rows"]
        cached = [r for r in rows if r["cache"] and r["precision"] == "fp32"]
        assert {(r["strategy"], r["batch"]) for r in cached} == {
            (s, b) for s in ("greedy", "beam", "sample") for b in (1, 64)
        }
        assert any(not r["cache"] for r in rows) == (name == "tiny_transformer")
        assert all(r["sent_per_s"] > 0 and r["tokens_per_s"] > 0 for r in rows)
        assert m["translate"]["seconds"] > 0 and m["translate"]["peak_rss_mib"] > 0
        assert "startup_s" not in m
        quantized = {(r["strategy"], r["batch"]) for r in rows if r["precision"] == "int8"}
        assert quantized == ({("greedy", 64), ("beam", 64)} if int8_available() else set())
        assert ("translate_int8" in m) == int8_available()
        serve = m["serve"]  # the server answered every request, from each client count
        assert [r["clients"] for r in serve["rows"]] == [1, 8, 64] * 2
        assert [r["mode"] for r in serve["rows"]] == ["continuous"] * 3 + ["batch by batch"] * 3
        assert all(r["errors"] == 0 and r["sentences_per_s"] > 0 for r in serve["rows"])
        assert serve["offline_b64_sent_per_s"] > 0 and serve["server_exit"] == [0, 0]
        if name == "tiny_transformer":  # exported and decoded by CTranslate2 too
            engines = {r["engine"] for r in m["ctranslate2"]["rows"]}
            assert {"nmt fp32", "ctranslate2 fp32", "ctranslate2 int8"} <= engines
            greedy = [r for r in m["ctranslate2"]["rows"]
                      if r["engine"] == "ctranslate2 fp32" and r["strategy"] == "greedy"]
            assert greedy and greedy[0]["same_as_nmt_fp32"] >= 0.9
            assert not any(r["torch_loaded"] for r in m["ctranslate2"]["rows"]
                           if r["engine"].startswith("ctranslate2"))  # fmt: skip
            assert m["translate_ct2_int8"]["seconds"] > 0
        else:
            assert "ctranslate2" not in m  # CTranslate2 has no attention GRU
    table = (out / "benchmark.md").read_text(encoding="utf-8")
    assert "`nmt serve`, greedy" in table and "`--engine ctranslate2` (int8 export)" in table
    assert "| tiny_gru | fp32 |" in table and "MFU" in table
    assert ("`--precision int8`" in table) == int8_available()


def test_missing_data_is_skipped_with_a_message(tmp_path: Path) -> None:
    config = tmp_path / "absent.yaml"
    config.write_text(TINY.format(sample=tmp_path / "nowhere", type="gru"), encoding="utf-8")
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--quick", "--config",
           str(config), "--out", str(tmp_path / "out"), "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipping absent" in done.stderr and "not found" in done.stderr
    results = json.loads((tmp_path / "out" / "benchmark.json").read_text(encoding="utf-8"))
    assert results["models"] == {} and len(results["skipped"]) == 1


@pytest.mark.skipif(not hasattr(__import__("os"), "wait4"), reason="peak RSS needs os.wait4")
def test_a_childs_peak_memory_is_its_own(tmp_path: Path) -> None:
    # Linux starts a child's ru_maxrss at its parent's RSS; the benchmark must not report ours.
    benchmark = load_script("benchmark")
    held = bytearray(400 * 2**20)
    held[:: 4096] = b"\x01" * len(held[:: 4096])  # touch every page: 400 MiB resident here
    small = [sys.executable, "-c", "print('small')"]
    wall, rss, code = benchmark._run_measured(small, tmp_path / "small.log")
    assert code == 0 and wall > 0 and (tmp_path / "small.log").read_text() == "small\n"
    assert 0 < rss < 100, rss  # a bare interpreter: tens of MiB, not our 400+
    grow = [sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'1' * len(b[::4096])"]
    _, grown, _ = benchmark._run_measured(grow, tmp_path / "grow.log")
    assert 200 < grown < 300, grown  # what the child itself touched
    _, _, failed = benchmark._run_measured([sys.executable, "-c", "raise SystemExit(3)"],
                                           tmp_path / "fail.log")
    assert failed == 3
    del held
