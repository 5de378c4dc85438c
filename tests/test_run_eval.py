"""`nmt evaluate --model RUN_DIR` without --src: the run's own test/dev split, read raw."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR
from test_translate import build_run
from typer.testing import CliRunner

from nmt import evaluate as ev
from nmt.cli import app
from nmt.config import dump_config, load_config
from nmt.errors import ConfigError
from nmt.run_eval import read_split, run_config
from nmt.translate import Translator

N_TEST, N_DEV = 6, 4


def split_run(tmp_path: Path) -> Path:
    """A copy of the tiny transformer run of test_translate, with small dev and test splits.

    The test split has an empty line and a line without a TAB (both skipped, as the corpus
    reader skips them) and a reference with a double space (kept: references are raw).
    """
    base = build_run(tmp_path.parent / "translate-runs", "transformer")
    run = Path(shutil.copytree(base, tmp_path / "run"))
    test = (SAMPLE_DIR / "test.tsv").read_text(encoding="utf-8").splitlines()[:N_TEST]
    test[0] = test[0].replace(" ", "  ", 1)
    (tmp_path / "test.tsv").write_text("\n".join([*test[:3], "", "no tab", *test[3:]]) + "\n",
                                       encoding="utf-8")
    dev = (SAMPLE_DIR / "dev.tsv").read_text(encoding="utf-8").splitlines()[:N_DEV]
    (tmp_path / "dev.tsv").write_text("\n".join(dev) + "\n", encoding="utf-8")
    cfg = load_config(run / "config.yaml", [f"data.test={tmp_path / 'test.tsv'}",
                                            f"data.dev={tmp_path / 'dev.tsv'}"])
    (run / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    return run


def test_read_split_keeps_raw_references(tmp_path: Path) -> None:
    run = split_run(tmp_path)
    data = read_split(run_config(run), "test")
    rows = [line.split("\t") for line in (SAMPLE_DIR / "test.tsv").read_text(
        encoding="utf-8").splitlines()[:N_TEST]]
    assert data.sources == [zh for _, zh, _ in rows]
    assert data.references[1:] == [en for en, _, _ in rows][1:]
    assert "  " in data.references[0]  # not normalized
    assert len(read_split(run_config(run), "dev").sources) == N_DEV


def test_evaluate_model_without_src_scores_the_test_split(tmp_path: Path) -> None:
    run = split_run(tmp_path)
    hyp = tmp_path / "hyp.txt"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--model", str(run), "--json", "--device", "cpu", "--strategy", "greedy",
         "--save-hyp", str(hyp)],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["sentences"] == N_TEST and out["decoding"]["sentences"] == N_TEST
    assert out["decoding"]["settings"]["checkpoint"] == "best"
    data = read_split(run_config(run), "test")
    hyps = hyp.read_text(encoding="utf-8").splitlines()
    translator = Translator.load(run, device="cpu")
    assert hyps == translator.translate(data.sources, strategy="greedy")
    direct = ev.score(hyps, [data.references], "13a")
    assert [m["score"] for m in out["metrics"]] == [round(s.score, 1) for s in direct.scores]


def test_evaluate_split_dev_and_option_errors(tmp_path: Path) -> None:
    run = split_run(tmp_path)
    runner = CliRunner()
    dev = runner.invoke(app, ["evaluate", "--model", str(run), "--split", "dev", "--device",
                              "cpu", "--strategy", "greedy"])
    assert dev.exit_code == 0, dev.output
    assert f"sentences: {N_DEV}" in dev.stdout and "decoding:" in dev.stdout
    ref = tmp_path / "ref.txt"
    ref.write_text("x\n", encoding="utf-8")
    for args, needle in (
        (["--ref", str(ref)], "--ref needs --src"),
        (["--src", str(ref), "--ref", str(ref), "--split", "dev"], "--split"),
        (["--split", "train"], "expected dev or test"),
    ):
        bad = runner.invoke(app, ["evaluate", "--model", str(run), *args])
        assert bad.exit_code == 2, bad.output
        assert needle in bad.output


def test_run_without_a_test_split_is_a_config_error(tmp_path: Path) -> None:
    run = split_run(tmp_path)
    cfg = load_config(run / "config.yaml", ["data.test=null"])
    with pytest.raises(ConfigError, match="data.test is not set"):
        read_split(cfg, "test")
