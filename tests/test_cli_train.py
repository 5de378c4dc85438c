"""`nmt train` through Typer's CliRunner: one-line errors with their exit codes, and a tiny run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn
from typer.testing import CliRunner

from nmt.checkpoint import save_checkpoint
from nmt.cli import app
from nmt.config import Config, dump_config, load_config
from nmt.datautil.build import build_vocab

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("nmt: error: ")
    return lines[0]


def test_bad_config_key_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train:\n  lrr: 0.1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "--config", str(cfg)])
    assert result.exit_code == 2
    line = _error_line(result.output)
    assert "train.lrr" in line and "did you mean train.lr" in line and "bad.yaml" in line


def test_resume_of_missing_dir_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "nope")])
    assert result.exit_code == 4
    assert "nothing to resume" in _error_line(result.output)


def test_resume_with_config_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--resume", str(tmp_path), "--config", str(tmp_path / "x.yaml")]
    )
    assert result.exit_code == 2
    assert "--resume" in _error_line(result.output)


def test_train_then_resume_through_the_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = load_config(None, [
        f"run_dir={run}", f"data.train={SAMPLE / 'train.tsv'}", f"data.dev={SAMPLE / 'dev.tsv'}",
        "model.d_model=16", "model.enc_layers=1", "model.dec_layers=1", "model.heads=2",
        "model.ff_size=32", "train.batch_tokens=600", "train.valid_bleu_sentences=4",
        "decode.max_len_b=3",
    ])  # fmt: skip
    build_vocab(cfg)
    (tmp_path / "c.yaml").write_text(dump_config(cfg), encoding="utf-8")
    runner = CliRunner()
    first = runner.invoke(app, ["train", "--config", str(tmp_path / "c.yaml"), "--max-steps", "2",
                                "--seed", "7", "--device", "cpu"])  # fmt: skip
    assert first.exit_code == 0, first.output
    assert "training max_steps at step 2" in first.stdout
    again = runner.invoke(app, ["train", "--config", str(tmp_path / "c.yaml")])
    assert again.exit_code == 4 and "--resume" in again.output
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3"])
    assert resumed.exit_code == 0, resumed.output
    assert "at step 3" in resumed.stdout
    assert "seed: 7" in (run / "config.yaml").read_text()  # the run remembers its settings


def test_resume_of_a_dir_without_config_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 4 and "config.yaml" in _error_line(result.output)


def test_resume_refuses_a_set_that_changes_the_vocabulary(
    make_config: Callable[..., Config],
) -> None:
    cfg = make_config()
    build_vocab(cfg)
    save_checkpoint(cfg.run_dir, 1, nn.Linear(1, 1), None, {})  # stands for a trained model
    result = CliRunner().invoke(app, ["train", "--resume", cfg.run_dir, "--device", "cpu",
                                      "--set", "data.min_freq=2"])  # fmt: skip
    assert result.exit_code == 2
    assert _error_line(result.output).startswith(
        f"nmt: error: data.min_freq: {cfg.run_dir} was trained with data.min_freq=1, not 2"
    )
