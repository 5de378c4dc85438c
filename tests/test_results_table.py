"""scripts/results_table.py renders docs/results/*.json; nmt.plots draws the learning curve."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import load_script

from nmt.plots import dev_bleu_points, plot_dev_bleu


@pytest.fixture(scope="module")
def results_table() -> ModuleType:
    return load_script("results_table")


def synthetic(recipe: str, bleu: float) -> dict[str, Any]:
    return {
        "recipe": recipe, "direction": "zh-en",
        "test": {"sentences": 1000, "metrics": {
            "BLEU": {"score": bleu, "signature": "nrefs:1|tok:13a|version:2.6.0"},
            "chrF2": {"score": 45.25, "signature": "nrefs:1|nc:6|version:2.6.0"},
            "TER": {"score": 60.0, "signature": "ter-sig"}}},
        "training": {"wall_clock_minutes": 54.6, "steps": 6000,
                     "precision": {"setting": "auto", "autocast": "bf16"}},
        "budget": [{"checkpoint": "minute-25", "step": 1400, "training_minutes": 25.0,
                    "metrics": {"BLEU": {"score": bleu - 2.0, "signature": "s"}}}],
        "model": {"type": "transformer", "parameters": 9_612_288, "tokenizers": "jieba/moses"},
        "decoding": {"checkpoint": "averaged", "strategy": "beam", "beam_size": 5,
                     "length_penalty": 1.2, "sentences_per_second": 31.04},
        "machine": {"cpu": "AMD EPYC", "cpu_count": 16, "available_cores": 2, "threads": 2,
                    "device": "cpu", "torch": "2.13.0"},
    }  # fmt: skip


def test_render(results_table: ModuleType, tmp_path: Path) -> None:
    for name, bleu in (("b_recipe", 20.04), ("a_recipe", 26.35)):
        (tmp_path / f"{name}.json").write_text(json.dumps(synthetic(name, bleu)), encoding="utf-8")
    text = results_table.render(results_table.load(tmp_path))
    lines = text.splitlines()
    assert lines[0].startswith("| Recipe | Direction |") and lines[1].startswith("|---|")
    assert lines[2] == (
        "| `a_recipe` | zh-en | transformer (jieba/moses) | 9.6M | 26.4 (24.4 after 25 min) | "
        "45.2 | 60.0 | 55 min, bf16 | "
        "AMD EPYC, 2 cores, 2 threads, torch 2.13.0 | beam 5, lp 1.2, averaged | 31.0 sent/s |"
    )
    assert lines[3].startswith("| `b_recipe` |") and "| 20.0 (18.0 after 25 min) |" in lines[3]
    assert "- `a_recipe` BLEU: `nrefs:1|tok:13a|version:2.6.0`" in lines
    assert "- `a_recipe` TER: `ter-sig`" in lines  # an English TER is shown as recorded
    assert "TER left out" not in text


def test_missing_figures_show_a_dash(results_table: ModuleType) -> None:
    row = results_table.row({"recipe": "x"})
    assert row[0] == "`x`" and row[4] == "-" and row[5] == "-" and row[6] == "-"


WORD_TER = "nrefs:1|case:lc|tok:tercom|norm:no|punct:yes|asian:yes|version:2.6.0"
CHAR_TER = "nrefs:1|case:lc|tok:tercom|norm:yes|punct:yes|asian:yes|version:2.6.0"


def chinese_target(recipe: str, ter: float, signature: str) -> dict[str, Any]:
    data = synthetic(recipe, 33.4) | {"direction": "en-zh"}
    data["test"]["metrics"]["TER"] = {"score": ter, "signature": signature}
    return data


def test_a_word_level_chinese_ter_is_left_out_with_a_note(results_table: ModuleType) -> None:
    # The TER recorded before Chinese TER counted characters (asian:yes did nothing without
    # norm:yes): one "word" per unspaced sentence, so 91.9 compares with nothing.
    old, new = chinese_target("old", 91.9, WORD_TER), chinese_target("new", 41.3, CHAR_TER)
    assert results_table.row(old)[6] == "-" and results_table.row(new)[6] == "41.3"
    text = results_table.render([old, new])
    assert "91.9" not in text and WORD_TER not in text
    assert "TER left out (\"-\") for `old`: scored on whitespace-separated words" in text
    assert f"- `new` TER: `{CHAR_TER}`" in text.splitlines()
    # A zh->en TER without Asian support is right: its target is English.
    english = synthetic("zh_en", 30.0)
    english["test"]["metrics"]["TER"]["signature"] = WORD_TER.replace("asian:yes", "asian:no")
    assert results_table.row(english)[6] == "60.0"
    assert not results_table.word_level_chinese_ter(english)


def test_empty_directory_is_an_error(results_table: ModuleType, tmp_path: Path) -> None:
    assert results_table.main([str(tmp_path)]) == 1


def test_dev_bleu_curve(tmp_path: Path) -> None:
    records = [
        {"event": "train", "step": 10, "loss": 5.0, "wall_s": 30.0},
        {"event": "valid", "step": 50, "dev_bleu": 3.5, "wall_s": 120.0},
        {"event": "valid", "step": 100, "dev_bleu": 7.25, "wall_s": 240.0},
    ]
    assert dev_bleu_points(records) == ([2.0, 4.0], [3.5, 7.25])
    assert plot_dev_bleu({"run": [records[0]]}, tmp_path / "none.png") is None
    pytest.importorskip("matplotlib")
    out = plot_dev_bleu({"run": records}, tmp_path / "curve.png", title="t")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
