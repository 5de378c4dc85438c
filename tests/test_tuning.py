"""Length-penalty tuning on dev: one decode per value, the best one, and --write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer.main
from test_run_eval import N_DEV, split_run
from typer.testing import CliRunner

from nmt.cli import app
from nmt.config import load_config
from nmt.errors import ConfigError
from nmt.translate import Translator
from nmt.tuning import (
    DEFAULT_VALUES,
    TuneResult,
    parse_values,
    tune_length_penalty,
    write_length_penalty,
)


def test_best_is_the_first_highest_bleu() -> None:
    result = TuneResult((0.0, 0.6, 1.0), (10.0, 12.5, 12.5), "sig", 5, "dev", 3, 1.0)
    assert result.best == 0.6
    table = result.format_table()
    assert "0.6   12.50  <- best" in table and table.count("<- best") == 1
    assert result.to_dict()["bleu"] == {"0": 10.0, "0.6": 12.5, "1": 12.5}
    # A tie with the run's current value keeps it.
    assert TuneResult((0.0, 0.6, 1.0), (10.0, 12.5, 12.5), "sig", 5, "dev", 3, 1.0, 1.0).best == 1.0
    assert TuneResult((0.0, 0.6), (10.0, 12.5), "sig", 5, "dev", 3, 1.0, 0.0).best == 0.6


def test_parse_values() -> None:
    assert parse_values("0, 0.6,1,0.6") == (0.0, 0.6, 1.0)
    for bad in ("a", "-1", "nan", ""):
        with pytest.raises(ConfigError, match="--length-penalty"):
            parse_values(bad)


def _config_message(override: str) -> str:
    """What load_config says about ``--set override``, without the ``--set`` in front."""
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    return str(info.value).removeprefix(f"--set {override}: ")


def test_candidates_are_held_to_the_config_rule() -> None:
    """tune refuses exactly what decode.length_penalty refuses, with the same words."""
    rule = _config_message("decode.length_penalty=-1")
    assert rule == "decode.length_penalty: must be >= 0 (0 = raw log-probability)"
    with pytest.raises(ConfigError) as info:
        parse_values("0.5,-1")
    assert str(info.value) == f"--length-penalty -1: {rule}"
    assert parse_values("0") == (0.0,)  # the rule's boundary is a valid candidate


def test_tune_refuses_a_bad_candidate_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = split_run(tmp_path)
    calls: list[object] = []
    monkeypatch.setattr(Translator, "translate", lambda *a, **k: calls.append(k) or [])
    with pytest.raises(ConfigError, match=r"^--length-penalty -1\.0: decode\.length_penalty: "
                       r"must be >= 0"):
        tune_length_penalty(run, (0.0, -1.0), beam_size=2, device="cpu")
    assert calls == []  # the first value was not decoded either


def test_the_command_default_is_the_library_default() -> None:
    command = typer.main.get_command(app).get_command(None, "tune")  # type: ignore[attr-defined]
    default = next(p.default for p in command.params if p.name == "length_penalty")
    assert parse_values(default) == DEFAULT_VALUES


def test_tune_decodes_dev_once_per_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = split_run(tmp_path)
    seen: list[tuple[int, float]] = []
    translate = Translator.translate

    def spy(self: Translator, sentences: list[str], options: Any = None, **overrides: Any) -> Any:
        seen.append((len(sentences), overrides["length_penalty"]))
        return translate(self, sentences, options, **overrides)

    monkeypatch.setattr(Translator, "translate", spy)
    result = tune_length_penalty(run, (0.0, 2.0), beam_size=2, device="cpu")
    assert seen == [(N_DEV, 0.0), (N_DEV, 2.0)]
    assert result.values == (0.0, 2.0) and len(result.bleu) == 2
    assert result.sentences == N_DEV and result.beam_size == 2 and result.split.startswith("dev")
    assert "tok:13a" in result.signature


def test_tune_command_writes_the_best_value(tmp_path: Path) -> None:
    run = split_run(tmp_path)
    before = (run / "config.yaml").read_text(encoding="utf-8")
    result = CliRunner().invoke(app, ["tune", str(run), "--length-penalty", "0.3,2",
                                      "--beam-size", "2", "--device", "cpu", "--json", "--write"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["bleu"]) == {"0.3", "2"} and out["best"] in (0.3, 2.0)
    cfg = load_config(run / "config.yaml")
    assert cfg.decode.length_penalty == out["best"]
    # Nothing else changed.
    assert (run / "config.yaml").read_text(encoding="utf-8").replace(
        f"length_penalty: {out['best']}", "length_penalty: 1.0") == before


def test_write_refuses_invalid_values_and_missing_runs(tmp_path: Path) -> None:
    run = split_run(tmp_path)
    before = (run / "config.yaml").read_text(encoding="utf-8")
    for bad in (-1.0, float("nan")):
        with pytest.raises(ConfigError, match="decode.length_penalty: must be"):
            write_length_penalty(run, bad)
    assert (run / "config.yaml").read_text(encoding="utf-8") == before
    missing = CliRunner().invoke(app, ["tune", str(tmp_path / "nope")])
    assert missing.exit_code == 4 and "no config.yaml" in missing.output
