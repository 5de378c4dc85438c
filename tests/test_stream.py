"""nmt.datautil.stream: one tokenizing pass in worker processes, identical for any worker count;
bad input, dead workers and Ctrl-C leave nothing that a later run would trust."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, SAMPLE_DIR, TINY_TRAIN, tsv_text

from nmt.config import load_config
from nmt.datautil.build import build_vocab
from nmt.datautil.corpus import EMPTY_SENTENCE
from nmt.datautil.filters import DUPLICATE
from nmt.datautil.pipeline import INCOMPLETE_MARK, TextProcessor
from nmt.datautil.shards import ShardedCorpus
from nmt.datautil.stream import SideCounts, process_chunks, tokenize_stream
from nmt.errors import CheckpointError, DataError


def _files(run: Path) -> dict[str, bytes]:
    """Every file of a run's vocab/ and cache/ (names relative to the run), with its bytes."""
    return {str(p.relative_to(run)): p.read_bytes()
            for sub in ("vocab", "cache") for p in sorted((run / sub).rglob("*")) if p.is_file()}


def _build_in_subprocess(run: Path, workers: int, hashseed: str, *sets: str) -> None:
    cmd = [sys.executable, "-m", "nmt", "build-vocab", "--run-dir", str(run),
           "--train", str(SAMPLE_DIR / "train.tsv"), "--dev", str(SAMPLE_DIR / "dev.tsv"),
           "--workers", str(workers)]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{workers} tokenizing worker" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sets", [
    (),  # jieba + Moses
    ("data.src_tokenizer.type=sentencepiece", "data.tgt_tokenizer.type=sentencepiece",
     "data.joint_vocab=true", "data.src_tokenizer.sp_vocab_size=600",
     "data.tgt_tokenizer.sp_vocab_size=600", "data.sp_sample_sentences=300",
     "data.filters.dedup=true", "data.filters.max_ratio=3"),
], ids=["jieba-moses", "joint-spm-filters"])
def test_vocabulary_and_cache_are_byte_identical_for_1_and_3_workers(
    tmp_path: Path, sets: tuple[str, ...]
) -> None:
    _build_in_subprocess(tmp_path / "one", 1, "0", *sets)
    _build_in_subprocess(tmp_path / "three", 3, "4242", *sets)
    one, three = _files(tmp_path / "one"), _files(tmp_path / "three")
    assert any(name.startswith("cache/train-") for name in one)
    assert one.keys() == three.keys() and one == three


def _tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text(tsv_text(pairs), encoding="utf-8")
    return path


def test_the_cache_holds_exactly_the_ids_of_the_text_pipeline(tmp_path: Path) -> None:
    """What training reads is what TextProcessor.encode_* gives for each pair, in order."""
    cfg = load_config(None, [f"run_dir={tmp_path / 'run'}",
                             f"data.train={SAMPLE_DIR / 'train.tsv'}", "data.dev=null",
                             "data.max_len=8", "data.workers=2"])
    build_vocab(cfg)
    processor = TextProcessor.load(cfg.run_dir, cfg.data)
    from nmt.datautil.corpus import read_parallel

    pairs = read_parallel(cfg.data.train, cfg.data)  # type: ignore[arg-type]
    expected = [(processor.encode_src(s), processor.encode_tgt(t))
                for s, t in zip(pairs.src, pairs.tgt, strict=True)]
    expected = [(s, t) for s, t in expected if s and t and max(len(s), len(t)) <= 8]
    (cache,) = (tmp_path / "run" / "cache").glob("train-*")
    corpus = ShardedCorpus(cache, max_len=8)
    assert 0 < len(corpus) == len(expected) < len(pairs)  # max_len selects at load time
    got = [(corpus.src(i).tolist(), corpus.tgt(i).tolist()) for i in range(len(corpus))]
    assert got == expected
    assert corpus.src_lengths().tolist() == [len(s) for s, _ in expected]
    assert ShardedCorpus(cache, max_len=100).too_long == 0


def test_shards_split_the_corpus_and_read_back_in_order(tmp_path: Path) -> None:
    from nmt.datautil.shards import write_shards
    from nmt.datautil.vocab import Vocabulary

    path = _tsv(tmp_path / "c.tsv", TINY_TRAIN * 5)
    cfg = load_config(None, [f"data.train={path}", "data.dev=null",
                             "data.tgt_tokenizer.type=space"])
    with tokenize_stream(cfg.data, (None, None), tmp_path / "cache", 1) as stream:
        src = Vocabulary.build(stream.counts("src"))
        tgt = Vocabulary.build(stream.counts("tgt"))
        out = write_shards(stream, src, tgt, tmp_path / "cache" / "train-k", "k", shard_pairs=7)
        tmp = stream.tmp_dir
    assert not tmp.exists()  # the provisional ids are gone
    corpus = ShardedCorpus(out, max_len=100, key="k")
    assert len(list(out.glob("shard-*.src.npy"))) == 6  # 40 pairs, 7 per shard
    assert [tgt.decode(corpus.tgt(i).tolist()) for i in range(len(corpus))] == [
        en.split() for en, _ in TINY_TRAIN * 5]
    from nmt.datautil.shards import CacheUnreadable

    with pytest.raises(CacheUnreadable):
        ShardedCorpus(out, max_len=100, key="other")
    (out / "shard-00003.tgt_off.npy").write_bytes(b"damaged")
    with pytest.raises(CacheUnreadable):
        ShardedCorpus(out, max_len=100)


def test_compressed_and_several_corpora_are_read_in_order(tmp_path: Path) -> None:
    first = tmp_path / "a.tsv.gz"
    with gzip.open(first, "wt", encoding="utf-8") as f:
        f.write(tsv_text(TINY_TRAIN[:5]))
    second = _tsv(tmp_path / "b.tsv", TINY_TRAIN[5:])
    plain = _tsv(tmp_path / "all.tsv", TINY_TRAIN)
    runs = {}
    for name, train in (("split", f"[{first}, {second}]"), ("plain", str(plain))):
        cfg = load_config(None, [f"run_dir={tmp_path / name}", f"data.train={train}",
                                 "data.dev=null"])
        report = build_vocab(cfg)
        runs[name] = report
    split, whole = runs["split"], runs["plain"]
    assert [p.pairs for p in split.train_parts] == [5, 3] and split.train.pairs == 8
    assert "part" in split.format() and str(first) in split.format()
    a = (tmp_path / "split" / "vocab" / "src.vocab").read_bytes()
    assert a == (tmp_path / "plain" / "vocab" / "src.vocab").read_bytes()
    assert split.src.lengths == whole.src.lengths


def test_truncated_gzip_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv.gz"
    data = gzip.compress(tsv_text(TINY_TRAIN * 200).encode())
    path.write_bytes(data[: len(data) // 2])
    cfg = load_config(None, [f"run_dir={tmp_path / 'run'}", f"data.train={path}",
                             "data.dev=null"])
    with pytest.raises(DataError, match=rf"{path}:\d+: truncated or corrupt .gz file") as info:
        build_vocab(cfg)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run" / "vocab" / "src.vocab").exists()
    assert not list((tmp_path / "run" / "cache").iterdir())  # temporaries removed


def test_bad_lines_are_counted_once_for_any_worker_count(tmp_path: Path) -> None:
    pairs = [*TINY_TRAIN, ("", "空。"), *TINY_TRAIN, ("Empty.", " ")] * 700  # > 1 chunk
    path = _tsv(tmp_path / "c.tsv", pairs)
    reports = []
    for workers in (1, 2):
        cfg = load_config(None, [f"run_dir={tmp_path / str(workers)}", f"data.train={path}",
                                 "data.dev=null", f"data.workers={workers}",
                                 "data.filters.dedup=true"])
        reports.append(build_vocab(cfg))
    one, two = reports
    assert one.train.dropped == two.train.dropped == {
        EMPTY_SENTENCE: 1400, DUPLICATE: len(pairs) - 1400 - len(set(TINY_TRAIN))}
    assert one.train.pairs == len(set(TINY_TRAIN))
    strict = load_config(None, [f"run_dir={tmp_path / 's'}", f"data.train={path}",
                                "data.dev=null", "data.workers=2", "data.strict=true"])
    with pytest.raises(DataError, match=rf"{path}:9: the en sentence is empty"):
        build_vocab(strict)


def test_length_percentiles_from_the_histogram_match_the_sorted_list() -> None:
    from nmt.datautil.build import percentiles

    rng = np.random.default_rng(0)
    for n in (1, 7, 100, 1001):
        lengths = rng.integers(0, 40, n)
        side = SideCounts()
        for part in np.array_split(lengths, 3):
            side.add(np.zeros(0, dtype=np.uint32), part.astype(np.uint32), 1)
        assert side.percentiles() == percentiles(lengths.tolist())
    assert SideCounts().percentiles() == (0, 0, 0, 0)


def test_a_worker_error_reaches_the_caller(tmp_path: Path) -> None:
    path = _tsv(tmp_path / "c.tsv", [*TINY_TRAIN, ("Hi.", "  ")])
    cfg = load_config(None, [f"data.train={path}", "data.strict=true"])
    from nmt.datautil.stream import _Merger

    with pytest.raises(DataError, match=r"c\.tsv:9: the zh sentence is empty"):
        list(process_chunks(_Merger(cfg.data).chunks(), cfg.data, (None, None), 2))


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def _start_big_build(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    # Big enough that tokenizing outlasts the test's signal by seconds on a loaded machine
    # (10,000 copies finished first once, and the build rightly exited 0).
    corpus = _tsv(tmp_path / "big.tsv", [(f"[{i}] {en}", f"[{i}]{zh}")
                                         for i in range(40000) for en, zh in TINY_TRAIN])
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nmt", "build-vocab", "--run-dir", str(run), "--train",
         str(corpus), "--dev", str(SAMPLE_DIR / "dev.tsv"), "--workers", "2"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, run


def _wait_for_workers(proc: subprocess.Popen[str], n: int) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        # Workers are forked from the fork server (and so share its command line).
        servers = [p for p in _descendants(proc.pid)
                   if "forkserver" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
                   and _descendants(p)]
        workers = [w for server in servers[:1] for w in _descendants(server)]
        if len(workers) >= n:
            time.sleep(0.5)  # let them start on their chunks
            return workers
        time.sleep(0.1)
    raise AssertionError("no tokenizing workers appeared")


def _assert_nothing_trusted(run: Path) -> None:
    assert not list((run / "cache").glob("train-*"))
    assert not list((run / "cache").glob(".tmp-*"))
    vocab = run / "vocab"
    if vocab.exists():  # only the marker that says an earlier build did not finish
        assert (vocab / INCOMPLETE_MARK).exists()
        with pytest.raises(CheckpointError, match="did not finish; run it again"):
            TextProcessor.load(run, load_config(None).data)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_a_killed_worker_stops_the_build_with_one_line(tmp_path: Path) -> None:
    proc, run = _start_big_build(tmp_path)
    workers = _wait_for_workers(proc, 2)
    os.kill(workers[-1], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("INFO")]
    assert lines == ["nmt: error: a tokenizing worker process died (killed, or out of memory?); "
                     "nothing was written: run again, with fewer --workers if memory is short"]
    _assert_nothing_trusted(run)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_ctrl_c_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    proc, run = _start_big_build(tmp_path)
    _wait_for_workers(proc, 2)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in err, err[-2000:]
    _assert_nothing_trusted(run)
    assert not _descendants(proc.pid)


@pytest.mark.slow
def test_a_script_without_a_main_guard_is_told_why_its_workers_die(tmp_path: Path) -> None:
    corpus = _tsv(tmp_path / "big.tsv", [(f"[{i}] {en}", f"[{i}]{zh}")
                                         for i in range(10000) for en, zh in TINY_TRAIN])
    script = tmp_path / "unguarded.py"  # what a first script with the Python API looks like
    script.write_text(
        "from nmt.config import load_config\n"
        "from nmt.datautil.build import build_vocab\n"
        f"build_vocab(load_config(None, ['run_dir={tmp_path / 'run'}', 'data.train={corpus}', "
        f"'data.dev={SAMPLE_DIR / 'dev.tsv'}']), workers=2)\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode != 0
    assert f"{script} starts the work at import" in proc.stderr
    assert 'put the calls under if __name__ == "__main__":' in proc.stderr
