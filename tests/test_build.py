"""nmt.datautil.build: files written, the summary, sentencepiece, determinism, real data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO_ROOT, SHARED_DATA

from nmt.config import Config, load_config
from nmt.datautil.build import build_vocab, percentiles
from nmt.datautil.vocab import Vocabulary
from nmt.errors import CheckpointError, DataError

MakeConfig = Callable[..., Config]


def vocab_dir(cfg: Config) -> Path:
    return Path(cfg.run_dir) / "vocab"


def test_writes_vocabularies_and_config(make_config: MakeConfig) -> None:
    cfg = make_config(src="char", tgt="moses")
    report = build_vocab(cfg)
    src = Vocabulary.load(vocab_dir(cfg) / "src.vocab")
    tgt = Vocabulary.load(vocab_dir(cfg) / "tgt.vocab")
    assert "喜" in src and "tea" in tgt and "," not in src
    assert src.count("喜") == 4 and tgt.count(".") == 6
    assert load_config(Path(cfg.run_dir) / "config.yaml") == cfg
    assert sorted(p.name for p in vocab_dir(cfg).iterdir()) == ["src.vocab", "tgt.vocab"]
    assert report.train.pairs == 8 and report.dev is not None and report.dev.pairs == 2
    assert report.src.vocab_size == len(src) and report.tgt.vocab_size == len(tgt)
    assert report.src.coverage == 1.0


def test_report_contents(make_config: MakeConfig) -> None:
    report = build_vocab(make_config(src="jieba", tgt="moses"))
    # dev: "玛丽 喜欢 咖啡 。" and "医院 在 哪里 ？": only 医院 is new
    assert (report.src.dev_tokens, report.src.dev_oov) == (8, 1)
    # dev: "Mary likes coffee ." and "Where is the hospital ?": only hospital is new
    assert (report.tgt.dev_tokens, report.tgt.dev_oov) == (9, 1)
    text = report.format()
    for needle in ("zh -> en", "8 pairs", "dropped 0 lines", "vocab size", "train coverage",
                   "100.00%", "dev OOV rate", "12.50% (1)", "11.11% (1)",
                   "length p50/p90/p99/max", "src.vocab", "config.yaml"):
        assert needle in text, needle


def test_dropped_lines_are_reported(make_config: MakeConfig, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("A.\t甲。\tx\nno tab\n\nB.\t乙。\tx\n", encoding="utf-8")
    report = build_vocab(make_config(train=str(bad)))
    assert report.train.pairs == 2
    assert "dropped 2 lines (empty line: 1, fewer than 2 TAB-separated columns: 1)" in (
        report.format())


def test_min_freq_max_size_and_no_dev(make_config: MakeConfig) -> None:
    report = build_vocab(make_config(dev=None, min_freq=2, max_size=3))
    assert report.dev is None and report.src.vocab_size == 4 + 3
    assert report.src.coverage < 1.0 and "dev OOV" not in report.format()


def test_joint_vocab_and_stale_files(make_config: MakeConfig) -> None:
    build_vocab(make_config())
    cfg = make_config(joint_vocab=True)
    report = build_vocab(cfg)
    assert sorted(p.name for p in vocab_dir(cfg).iterdir()) == ["joint.vocab"]
    joint = Vocabulary.load(vocab_dir(cfg) / "joint.vocab")
    assert "喜" in joint and "tea" in joint and report.joint
    assert report.src.vocab_size == report.tgt.vocab_size == len(joint)


@pytest.mark.parametrize("joint", [False, True])
def test_sentencepiece_models(make_config: MakeConfig, joint: bool) -> None:
    sp = {"sp_vocab_size": 60}
    cfg = make_config(src="sentencepiece", tgt="sentencepiece", joint_vocab=joint,
                      src_tokenizer=sp, tgt_tokenizer=sp)
    build_vocab(cfg)
    names = sorted(p.name for p in vocab_dir(cfg).iterdir())
    expected = (["joint.spm.model", "joint.vocab"] if joint else
                ["src.spm.model", "src.vocab", "tgt.spm.model", "tgt.vocab"])
    assert names == expected


def test_sentencepiece_failure_names_the_key(make_config: MakeConfig) -> None:
    cfg = make_config(src="sentencepiece", src_tokenizer={"sp_vocab_size": 5,
                                                          "sp_model_type": "unigram"})
    with pytest.raises(DataError, match=r"data\.src_tokenizer\.sp_vocab_size=5: "):
        build_vocab(cfg)


def test_no_usable_pairs(make_config: MakeConfig, tmp_path: Path) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no usable sentence pairs"):
        build_vocab(make_config(train=str(empty)))


def test_aligned_format(make_config: MakeConfig, tiny_corpus: dict[str, Path]) -> None:
    cfg = make_config(format="aligned", train=str(tiny_corpus["aligned"]), dev=None)
    assert build_vocab(cfg).train.pairs == 8


def test_rebuild_is_byte_identical(make_config: MakeConfig) -> None:
    cfg = make_config(src="jieba", tgt="sentencepiece", tgt_tokenizer={"sp_vocab_size": 60})
    build_vocab(cfg)
    first = {p.name: p.read_bytes() for p in vocab_dir(cfg).iterdir()}
    build_vocab(cfg)
    assert {p.name: p.read_bytes() for p in vocab_dir(cfg).iterdir()} == first


def test_refuses_a_trained_run_before_writing_anything(make_config: MakeConfig) -> None:
    cfg = make_config()
    run = Path(cfg.run_dir)
    (run / "checkpoints" / ".tmp-step-000001").mkdir(parents=True)  # an interrupted save
    build_vocab(cfg)  # is no trained model
    shutil.rmtree(run / "vocab")
    shutil.rmtree(run / "cache")  # build-vocab leaves the training token cache too
    (run / "config.yaml").unlink()
    (run / "checkpoints" / "step-000001").mkdir()
    with pytest.raises(CheckpointError) as info:
        build_vocab(make_config(min_freq=2))
    assert str(info.value) == (f"{run} holds a trained model (checkpoints/); rebuilding its "
                               "vocabulary would break it: use another --run-dir")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints"]


def test_saved_config_has_absolute_paths(
    make_config: MakeConfig, tiny_corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_corpus["train"].parent)
    cfg = make_config(train="train.tsv", dev="dev.tsv")
    build_vocab(cfg)
    saved = load_config(Path(cfg.run_dir) / "config.yaml").data
    assert saved.dev is not None and Path(saved.train).is_absolute()
    assert Path(saved.train).samefile(tiny_corpus["train"])
    assert Path(saved.dev).samefile(tiny_corpus["dev"])


_BUILD = """
import sys
from nmt.config import load_config
from nmt.datautil.build import build_vocab
build_vocab(load_config(None, [f"run_dir={sys.argv[1]}", "data.src_tokenizer.type=char"]))
"""


def test_identical_across_hash_seeds(tmp_path: Path) -> None:
    """The sample corpus built under different PYTHONHASHSEED values gives the same bytes."""
    files = []
    for seed in ("1", "2"):
        run = tmp_path / seed
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", _BUILD, str(run)], env=env, check=True,
                       cwd=REPO_ROOT, capture_output=True)
        files.append({p.name: p.read_bytes() for p in (run / "vocab").iterdir()})
    assert files[0] == files[1] and set(files[0]) == {"src.vocab", "tgt.vocab"}


def test_percentiles() -> None:
    assert percentiles([]) == (0, 0, 0, 0)
    assert percentiles([5]) == (5, 5, 5, 5)
    assert percentiles(list(range(1, 101))) == (50, 90, 99, 100)
    assert percentiles([3, 1, 2]) == (2, 3, 3, 3)


@pytest.mark.data
@pytest.mark.parametrize(
    ("src", "tgt"), [("jieba", "moses"), ("char", "moses"), ("sentencepiece", "sentencepiece")]
)
def test_real_corpus(tmp_path: Path, src: str, tgt: str) -> None:
    if not (SHARED_DATA / "train.tsv").is_file():
        pytest.skip(f"real corpus not found at {SHARED_DATA} (../shared/data/cmn-eng)")
    cfg = load_config(REPO_ROOT / "configs" / "quickstart.yaml", [
        f"run_dir={tmp_path}", f"data.train={SHARED_DATA / 'train.tsv'}",
        f"data.dev={SHARED_DATA / 'dev.tsv'}",
        f"data.src_tokenizer.type={src}", f"data.tgt_tokenizer.type={tgt}",
    ])
    report = build_vocab(cfg)
    assert report.train.pairs > 20000 and report.dev is not None and report.dev.pairs >= 900
    for side in (report.src, report.tgt):
        assert side.dev_tokens > 0 and 0.0 < side.dev_oov_rate < 0.1
    assert "dev OOV rate" in report.format()
