"""`nmt build-vocab` end to end: CliRunner on the typer app, and one real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from typer.testing import CliRunner

from nmt.cli import app

QUICKSTART = str(REPO_ROOT / "configs" / "quickstart.yaml")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(REPO_ROOT)  # the config's corpus paths are relative to the repository
    return CliRunner()


def test_sample_corpus_summary(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["build-vocab", "--config", QUICKSTART, "--run-dir",
                                 str(tmp_path), "--src-tokenizer", "char"])
    assert result.exit_code == 0, result.output
    assert "data/sample/train.tsv" in result.stdout and "dev OOV rate" in result.stdout
    assert "src zh (char)" in result.stdout and "tgt en (moses)" in result.stdout
    assert (tmp_path / "vocab" / "src.vocab").is_file()
    assert (tmp_path / "config.yaml").is_file()


def test_options_override_the_config(runner: CliRunner, tiny_corpus: dict[str, Path],
                                     tmp_path: Path) -> None:
    result = runner.invoke(app, [
        "build-vocab", "--config", QUICKSTART, "--run-dir", str(tmp_path / "run"),
        "--train", str(tiny_corpus["train"]), "--dev", str(tiny_corpus["dev"]),
        "--src-lang", "en", "--tgt-lang", "zh", "--src-tokenizer", "moses",
        "--tgt-tokenizer", "char", "--joint", "--min-freq", "2", "--max-size", "5",
    ])
    assert result.exit_code == 0, result.output
    assert "en -> zh" in result.stdout and "joint" in result.stdout
    assert (tmp_path / "run" / "vocab" / "joint.vocab").is_file()


def one_error_line(result: object) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("nmt: error: ")
    return str(lines[0])


def test_unknown_config_key(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  trian: x.tsv\n", encoding="utf-8")
    result = runner.invoke(app, ["build-vocab", "--config", str(bad)])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert str(bad) in line and "data.trian" in line and "did you mean data.train?" in line


def test_wrong_type_in_config(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  joint_vocab: maybe\n", encoding="utf-8")
    result = runner.invoke(app, ["build-vocab", "--config", str(bad)])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert str(bad) in line and "data.joint_vocab: expected bool" in line


def test_missing_corpus(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["build-vocab", "--config", QUICKSTART, "--run-dir",
                                 str(tmp_path), "--train", str(tmp_path / "nope.tsv")])
    assert result.exit_code == 3
    assert "nope.tsv: file not found" in one_error_line(result)


def test_trained_run_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "checkpoints" / "step-000001").mkdir(parents=True)
    result = runner.invoke(app, ["build-vocab", "--config", QUICKSTART, "--run-dir",
                                 str(tmp_path)])  # fmt: skip
    assert result.exit_code == 4
    assert "holds a trained model (checkpoints/)" in one_error_line(result)
    assert not (tmp_path / "vocab").exists()


def test_misaligned_files(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "c.zh").write_text("一。\n二。\n", encoding="utf-8")
    (tmp_path / "c.en").write_text("One.\n", encoding="utf-8")
    result = runner.invoke(app, ["build-vocab", "--config", QUICKSTART, "--run-dir",
                                 str(tmp_path / "run"), "--format", "aligned",
                                 "--train", str(tmp_path / "c"), "--dev", ""])
    assert result.exit_code == 3
    line = one_error_line(result)
    assert "c.zh has 2 lines" in line and "c.en has 1" in line


def test_strict_malformed_line(runner: CliRunner, tmp_path: Path) -> None:
    corpus = tmp_path / "c.tsv"
    corpus.write_text("A.\t甲。\nbroken line\n", encoding="utf-8")
    args = ["build-vocab", "--config", QUICKSTART, "--run-dir", str(tmp_path / "run"),
            "--train", str(corpus), "--src-tokenizer", "char"]
    lenient = runner.invoke(app, args)
    assert lenient.exit_code == 0 and "fewer than 2 TAB-separated columns: 1" in lenient.stdout
    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 3
    assert f"{corpus}:2: expected English<TAB>Chinese" in one_error_line(strict)


def test_invalid_utf8(runner: CliRunner, tmp_path: Path) -> None:
    corpus = tmp_path / "c.tsv"
    corpus.write_bytes(b"A.\t\xe7\x94\xb2\nB.\t\xff\n")
    result = runner.invoke(app, ["build-vocab", "--config", QUICKSTART, "--run-dir",
                                 str(tmp_path / "run"), "--train", str(corpus)])
    assert result.exit_code == 3
    assert f"{corpus}:2: invalid UTF-8" in one_error_line(result)


def test_python_m_nmt_subprocess(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nmt", "build-vocab", "--config", "configs/quickstart.yaml",
         "--run-dir", str(tmp_path), "--src-tokenizer", "char"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "dev OOV rate" in proc.stdout and "Traceback" not in proc.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "nmt", "build-vocab", "--config", "configs/quickstart.yaml",
         "--set", "data.min_freq=zero"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == (
        "nmt: error: --set data.min_freq=zero: data.min_freq: expected int, got 'zero'")
