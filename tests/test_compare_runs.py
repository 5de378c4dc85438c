"""scripts/compare_runs.py: dev BLEU at given minutes from metrics.jsonl, best, steps/min."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_script

compare = load_script("compare_runs")


def write_run(path: Path, points: list[tuple[int, float, float]]) -> Path:
    path.mkdir(parents=True)
    lines = [json.dumps({"event": "valid", "step": s, "wall_s": 60 * m, "dev_bleu": b})
             for s, m, b in points]  # fmt: skip
    lines.append(json.dumps({"event": "train", "step": points[-1][0] + 5,
                             "wall_s": 60 * points[-1][1] + 30, "loss": 1.0}))
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n{torn", encoding="utf-8")
    return path


def test_bleu_at_takes_the_last_validation_by_then(tmp_path: Path) -> None:
    run = write_run(tmp_path / "a", [(100, 4.0, 1.0), (200, 8.5, 5.0), (300, 12.0, 4.5)])
    records = compare.read_metrics(run)
    assert compare.bleu_at(records, 3.9) is None
    assert compare.bleu_at(records, 8.5) == 5.0
    assert compare.bleu_at(records, 20) == 4.5
    row = compare.summary(records, [10.0])
    assert (row["best"], row["best_step"], row["best_minute"]) == (5.0, 200, 8.5)
    assert row["steps"] == 305 and row["steps_per_minute"] == pytest.approx(305 / 12.5)


def test_the_table_has_a_row_per_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path / "a", [(100, 5.0, 2.0)])
    b = write_run(tmp_path / "b", [(50, 5.0, 3.0), (90, 9.0, 6.0)])
    assert compare.main([str(a), f"wide={b}", "--at", "5,10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| run | dev BLEU @5 min | dev BLEU @10 min |")
    assert out[2].startswith("| a | 2.00 | 2.00 | 2.00 (100, 5.0) | 105 |")
    assert out[3].startswith("| wide | 3.00 | 6.00 | 6.00 (90, 9.0) | 95 |")
    assert compare.main([str(tmp_path / "missing")]) == 2
