"""scripts/record_result.py: what a results file says about the run's checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from conftest import load_script

from nmt.config import dump_config, load_config


@pytest.fixture(scope="module")
def record_result() -> ModuleType:
    return load_script("record_result")


def write_state(run: Path, name: str, info: dict[str, object]) -> None:
    (run / "checkpoints" / name).mkdir(parents=True)
    (run / "checkpoints" / name / "state.json").write_text(json.dumps(info), encoding="utf-8")


def evaluation(bleu: float) -> dict[str, object]:
    return {"metrics": [{"name": "BLEU", "score": bleu, "signature": "nrefs:1|tok:13a"},
                        {"name": "chrF2", "score": 40.0, "signature": "nc:6"}]}  # fmt: skip


def test_budget_reads_steps_and_minutes_of_snapshots_and_step_checkpoints(
    record_result: ModuleType, tmp_path: Path
) -> None:
    # A snapshot keeps its own elapsed time; a training checkpoint keeps it in the train state.
    write_state(tmp_path, "minute-25", {"step": 1400, "state": {"elapsed_seconds": 1500.4}})
    write_state(tmp_path, "step-000900",
                {"step": 900, "state": {"train": {"elapsed_seconds": 930}}})
    rows = record_result.budget(tmp_path, {"minute-25": evaluation(24.5),
                                           "step-000900": evaluation(20.0)})  # fmt: skip
    assert [(r["checkpoint"], r["step"], r["training_minutes"]) for r in rows] == [
        ("step-000900", 900, 15.5), ("minute-25", 1400, 25.0)
    ]  # fmt: skip
    assert rows[1]["metrics"]["BLEU"] == {"score": 24.5, "signature": "nrefs:1|tok:13a"}


def test_precision_names_the_setting_and_what_it_meant(
    record_result: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "config.yaml").write_text(dump_config(load_config(None)), encoding="utf-8")
    # conftest pins CPU runs to fp32: auto means no autocast here.
    assert record_result.precision(tmp_path) == {"setting": "auto", "autocast": None}
    cfg = load_config(None, ["train.precision=bf16"])
    (tmp_path / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    assert record_result.precision(tmp_path) == {"setting": "bf16", "autocast": "bf16"}
