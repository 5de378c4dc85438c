"""The training corpus as a stream: read, normalize, filter, tokenize, count and encode in
chunks, in worker processes, in memory that does not grow with the corpus.

One pass over the corpus (:func:`tokenize_stream`) reads it in chunks of
:data:`~nmt.datautil.corpus.CHUNK_PAIRS` raw pairs. Each chunk is normalized, filtered and
tokenized by a worker (``data.workers`` processes; in this process for one), which returns
the chunk's distinct tokens and its pairs as ids into that short list. The main process keeps
the chunks in corpus order, removes duplicate pairs, gives every token a *provisional* id (its
order of first appearance) and appends the pairs, as provisional ids, to flat files in a
temporary directory, while counting tokens per side. Memory holds the counts (one entry per
distinct token), a few chunks in flight and, with ``filters.dedup``, 16 bytes per kept pair.

:meth:`TokenStream.write_cache` then maps the provisional ids to the vocabulary's ids, which is
a table lookup per token, and writes the memory-mapped shards of :mod:`nmt.datautil.shards`;
so ``build-vocab`` segments each sentence once, and the token cache it leaves is what
``nmt train`` reads. Nothing depends on the worker count or on hash order: chunks are cut by
line count and merged in order, tokens are numbered by first appearance, so the vocabulary
and the cache are byte-identical for any ``--workers``.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shutil
import signal
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nmt.config import DataConfig, train_paths
from nmt.datautil.cache import corpus_files
from nmt.datautil.corpus import EMPTY_SENTENCE, DropLog, PairCleaner, RawChunk, iter_raw_chunks
from nmt.datautil.filters import DUPLICATE, DigestSet, PairFilter, pair_digest
from nmt.datautil.tokenize import Tokenizer, build_tokenizer
from nmt.errors import DataError
from nmt.fileio import count_lines

log = logging.getLogger(__name__)

_MAX_WARNINGS_PER_CHUNK = 3


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_workers(data_cfg: DataConfig, workers: int | None = None) -> int:
    """``workers`` if given, else ``data.workers``; 0 means the number of usable cores."""
    n = data_cfg.workers if workers is None else workers
    return n if n > 0 else usable_cores()


# =========================================================================== worker side


@dataclass
class ChunkResult:
    """One chunk after cleaning (and tokenizing), as a worker returns it.

    Attributes:
        tokens: the chunk's distinct tokens in order of first appearance (tokenizing mode).
        src_ids / tgt_ids: the pairs' tokens as indices into ``tokens``, flat; a pair's length
            is in ``src_len`` / ``tgt_len``.
        src_text / tgt_text: the normalized sentences instead (text mode, for sentencepiece).
        digests: per kept pair, for duplicate removal (with ``filters.dedup``).
        raw_pairs: raw pairs the chunk held (kept or not), for progress.
    """

    where: str
    raw_pairs: int
    dropped: dict[str, int]
    warnings: list[tuple[str, str, str]]  # (reason, FILE:LINE, detail) of fatal drops
    tokens: list[str] = field(default_factory=list)
    src_ids: np.ndarray | None = None
    tgt_ids: np.ndarray | None = None
    src_len: np.ndarray | None = None
    tgt_len: np.ndarray | None = None
    src_text: list[str] | None = None
    tgt_text: list[str] | None = None
    digests: np.ndarray | None = None

    @property
    def pairs(self) -> int:
        if self.src_len is not None:
            return len(self.src_len)
        return len(self.src_text or [])


class ChunkProcessor:
    """Normalizes, filters and (unless ``tokenizers`` is None) tokenizes raw chunks.

    Args:
        data_cfg: direction, normalization, filters, strictness.
        tokenizers: source and target tokenizers; None returns normalized text instead.
    """

    def __init__(self, data_cfg: DataConfig, tokenizers: tuple[Tokenizer, Tokenizer] | None
                 ) -> None:
        self.strict = data_cfg.strict
        self.clean = PairCleaner(data_cfg)
        self.filter = PairFilter(data_cfg.filters, data_cfg.src_lang)
        self.dedup = data_cfg.filters.dedup
        self.tokenizers = tokenizers

    def __call__(self, chunk: RawChunk) -> ChunkResult:
        out = ChunkResult(chunk.where, len(chunk), {}, [])
        dropped = out.dropped
        srcs: list[str] = []
        tgts: list[str] = []
        for line_no, zh, en in zip(chunk.line_numbers, chunk.zh, chunk.en, strict=True):
            src, tgt, empty = self.clean(zh, en)
            if empty is not None:
                where = f"{chunk.where}:{line_no}"
                if self.strict:
                    raise DataError(f"{where}: {empty} (run without --strict to skip such lines)")
                dropped[EMPTY_SENTENCE] = dropped.get(EMPTY_SENTENCE, 0) + 1
                if len(out.warnings) < _MAX_WARNINGS_PER_CHUNK:
                    out.warnings.append((EMPTY_SENTENCE, where, empty))
                continue
            reason = self.filter.text_reason(src, tgt) if self.filter.active else None
            if reason is not None:
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            srcs.append(src)
            tgts.append(tgt)
        if self.tokenizers is None:
            out.src_text, out.tgt_text = srcs, tgts
            if self.dedup:
                out.digests = _digests(srcs, tgts)
            return out
        return self._tokenize(out, srcs, tgts)

    def _tokenize(self, out: ChunkResult, srcs: list[str], tgts: list[str]) -> ChunkResult:
        assert self.tokenizers is not None
        src_tok, tgt_tok = self.tokenizers
        src_flat: list[str] = []
        tgt_flat: list[str] = []
        src_len: list[int] = []
        tgt_len: list[int] = []
        kept_src: list[str] = []
        kept_tgt: list[str] = []
        for src, tgt in zip(srcs, tgts, strict=True):
            s, t = src_tok.tokenize(src), tgt_tok.tokenize(tgt)
            reason = self.filter.token_reason(s, t) if self.filter.active else None
            if reason is not None:
                out.dropped[reason] = out.dropped.get(reason, 0) + 1
                continue
            src_flat += s
            tgt_flat += t
            src_len.append(len(s))
            tgt_len.append(len(t))
            if self.dedup:
                kept_src.append(src)
                kept_tgt.append(tgt)
        # The chunk's distinct tokens in order of first appearance (source side first), and
        # every token as an index into them: dict.fromkeys and map run in C, where a loop
        # over the tokens in Python cost a tenth of the whole tokenizing time.
        out.tokens = list(dict.fromkeys(src_flat + tgt_flat))
        local = {tok: i for i, tok in enumerate(out.tokens)}
        out.src_ids = np.fromiter(map(local.__getitem__, src_flat), dtype=np.uint32,
                                  count=len(src_flat))
        out.tgt_ids = np.fromiter(map(local.__getitem__, tgt_flat), dtype=np.uint32,
                                  count=len(tgt_flat))
        out.src_len = np.array(src_len, dtype=np.uint32)
        out.tgt_len = np.array(tgt_len, dtype=np.uint32)
        if self.dedup:
            out.digests = _digests(kept_src, kept_tgt)
        return out


def _digests(srcs: Sequence[str], tgts: Sequence[str]) -> np.ndarray:
    return np.fromiter((pair_digest(s, t) for s, t in zip(srcs, tgts, strict=True)),
                       dtype=np.uint64, count=len(srcs))


def make_processor(data_cfg: DataConfig, spm: tuple[str | None, str | None] | None
                   ) -> ChunkProcessor:
    """The processor for ``data_cfg``: tokenizing with the given sentencepiece model paths
    (either may be None for other tokenizers), or text mode when ``spm`` is None."""
    if spm is None:
        return ChunkProcessor(data_cfg, None)
    src = build_tokenizer(data_cfg.src_tokenizer, data_cfg.src_lang, spm[0])
    tgt = build_tokenizer(data_cfg.tgt_tokenizer, data_cfg.tgt_lang, spm[1])
    return ChunkProcessor(data_cfg, (src, tgt))


_WORKER: ChunkProcessor | None = None


def _init_worker(data_cfg: DataConfig, spm: tuple[str | None, str | None] | None) -> None:
    global _WORKER
    # Ctrl-C goes to the whole process group: the main process alone handles it and shuts
    # the pool down, instead of every worker printing its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER = make_processor(data_cfg, spm)


def _work(chunk: RawChunk) -> ChunkResult:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER(chunk)


def _pool_context() -> Any:
    # Not fork: the caller may hold threads (torch's, tqdm's monitor) that a forked child
    # would inherit in an unknown state. The fork server starts clean, with this module
    # imported once, and forks each worker from there.
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["nmt.datautil.stream"])
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - Windows


def _unguarded_main() -> str:
    """A hint when the program is a script without ``if __name__ == "__main__":``: each worker
    imports the main script again (as multiprocessing does outside fork), which then starts
    the work again in the worker instead of the worker's own job, and the worker dies."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or getattr(main, "__spec__", None) is not None or not path:
        return ""
    try:
        source = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    if "__name__" in source:
        return ""
    return (f"; or: {path} starts the work at import, and each worker process imports it "
            f"again: put the calls under if __name__ == \"__main__\":")


def process_chunks(chunks: Iterator[RawChunk], data_cfg: DataConfig,
                   spm: tuple[str | None, str | None] | None, workers: int
                   ) -> Iterator[ChunkResult]:
    """The processed chunks in corpus order, from ``workers`` processes (here for one).

    At most ``2 * workers`` chunks are in flight, so reading never runs far ahead.

    Raises:
        DataError: a worker raised it (strict mode), or a worker process died.
    """
    if workers <= 1:
        processor = make_processor(data_cfg, spm)
        for chunk in chunks:
            yield processor(chunk)
        return
    pool = ProcessPoolExecutor(workers, mp_context=_pool_context(), initializer=_init_worker,
                               initargs=(data_cfg, spm))
    pending: deque[Future[ChunkResult]] = deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(_work, chunk))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        raise DataError(
            "a tokenizing worker process died (killed, or out of memory?); nothing was "
            "written: run again, with fewer --workers if memory is short" + _unguarded_main()
        ) from None
    finally:
        for f in pending:
            f.cancel()
        # Waits for the chunks still being tokenized (a second or so): a process that exits
        # with its pool still up leaks the pool's semaphores and prints a warning about them.
        pool.shutdown(wait=True, cancel_futures=True)


# =========================================================================== main side


def progress_bar(total: int | None, desc: str) -> tqdm:
    # disable=None: a bar only on a terminal, as everywhere in nmt.
    return tqdm(total=total, desc=desc, unit=" pairs", unit_scale=True, file=sys.stderr,
                disable=None, leave=False, mininterval=0.5, dynamic_ncols=True)


def total_lines(data_cfg: DataConfig) -> int | None:
    """Lines of all training corpora for the progress bar (None when any is compressed)."""
    total = 0
    for path in train_paths(data_cfg):
        files = corpus_files(data_cfg, path)
        n = count_lines(files[0])
        if n is None:
            return None
        total += n
    return total


@dataclass
class CorpusCount:
    """One corpus of ``data.train`` as streamed: pairs kept and dropped per reason."""

    path: str
    pairs: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


class _Merger:
    """Shared bookkeeping of both passes: per-corpus counts, warnings, duplicates."""

    def __init__(self, data_cfg: DataConfig) -> None:
        self.data_cfg = data_cfg
        self.corpora: dict[str, CorpusCount] = {}
        self.line_drops: dict[str, DropLog] = {}
        self.digests = DigestSet() if data_cfg.filters.dedup else None
        self._warn = DropLog(strict=False)
        self._corpus_of: dict[str, str] = {}  # file named in messages -> corpus path

    def chunks(self) -> Iterator[RawChunk]:
        for path in train_paths(self.data_cfg):
            self.corpora[path] = CorpusCount(path)
            drops = self.line_drops[path] = DropLog(self.data_cfg.strict)
            for chunk in iter_raw_chunks(path, self.data_cfg, drops):
                self._corpus_of[chunk.where] = path
                yield chunk
            drops.finish()

    def keep_mask(self, result: ChunkResult) -> np.ndarray | None:
        """Account for a chunk's drops; the mask of pairs to keep (None = all)."""
        count = self.corpora[self._corpus_of[result.where]]
        for reason, n in result.dropped.items():
            count.dropped[reason] = count.dropped.get(reason, 0) + n
        for reason, where, detail in result.warnings:
            self._warn.warn(reason, where, detail)
        keep = None
        if self.digests is not None and result.digests is not None:
            keep = self.digests.add_new(result.digests)
            dup = int(len(keep) - keep.sum())
            if dup:
                count.dropped[DUPLICATE] = count.dropped.get(DUPLICATE, 0) + dup
        count.pairs += result.pairs if keep is None else int(keep.sum())
        return keep

    def finish(self) -> list[CorpusCount]:
        self._warn.finish()
        for path, drops in self.line_drops.items():
            merged = self.corpora[path].dropped
            for reason, n in drops.counts.items():
                merged[reason] = merged.get(reason, 0) + n
        return list(self.corpora.values())


def sample_texts(data_cfg: DataConfig, size: int, seed: int, workers: int
                 ) -> tuple[list[str], list[str], int]:
    """A seeded uniform sample of at most ``size`` cleaned pairs (reservoir sampling), in
    corpus order: ``(sources, targets, pairs seen)``. When the corpus has at most ``size``
    pairs the sample is the whole corpus, in order."""
    merger = _Merger(data_cfg)
    rng = np.random.default_rng([seed % 2**32, 7])
    positions: list[int] = []  # corpus position of each reservoir entry
    src: list[str] = []
    tgt: list[str] = []
    seen = 0
    bar = progress_bar(total_lines(data_cfg), "read for sentencepiece")
    try:
        for result in process_chunks(merger.chunks(), data_cfg, None, workers):
            keep = merger.keep_mask(result)
            s_texts, t_texts = result.src_text or [], result.tgt_text or []
            idx = range(len(s_texts)) if keep is None else np.flatnonzero(keep).tolist()
            for i in idx:
                if len(src) < size:
                    positions.append(seen)
                    src.append(s_texts[i])
                    tgt.append(t_texts[i])
                else:
                    j = int(rng.integers(0, seen + 1))
                    if j < size:
                        positions[j], src[j], tgt[j] = seen, s_texts[i], t_texts[i]
                seen += 1
            bar.update(result.raw_pairs)
    finally:
        bar.close()
    merger.finish()
    order = sorted(range(len(positions)), key=positions.__getitem__)
    return [src[i] for i in order], [tgt[i] for i in order], seen


@dataclass
class SideCounts:
    """Token counts of one side by provisional id, and a histogram of sentence lengths."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def add(self, ids: np.ndarray, lengths: np.ndarray, vocab_size: int) -> None:
        self.counts = _grown(self.counts, vocab_size)
        self.counts += np.bincount(ids, minlength=len(self.counts))[: len(self.counts)]
        hist = np.bincount(lengths)
        self.lengths = _grown(self.lengths, len(hist))
        self.lengths[: len(hist)] += hist

    @property
    def tokens(self) -> int:
        return int(self.counts.sum())

    def percentiles(self) -> tuple[int, int, int, int]:
        """Nearest-rank p50, p90, p99 and the maximum sentence length (zeros for none)."""
        n = int(self.lengths.sum())
        if not n:
            return (0, 0, 0, 0)
        cum = np.cumsum(self.lengths)

        def rank(p: float) -> int:  # the k-th smallest length, k = ceil(p/100 * n) - 1
            k = max(0, math.ceil(p / 100 * n) - 1)
            return int(np.searchsorted(cum, k + 1))

        return (rank(50), rank(90), rank(99), int(np.flatnonzero(self.lengths)[-1]))


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    if len(a) >= size:
        return a
    out = np.zeros(max(size, 2 * len(a)), dtype=a.dtype)
    out[: len(a)] = a
    return out


class TokenStream:
    """The training corpus after one tokenizing pass: counts, statistics and the pairs as
    provisional ids in a temporary directory (removed by :meth:`close`).

    Attributes:
        tokens: every distinct token, by provisional id.
        src, tgt: counts and length histograms per side.
        corpora: pairs kept and dropped per corpus.
        pairs: pairs kept in all.
        over_max_len: of those, pairs longer than ``data.max_len`` on a side.
    """

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self.tokens: list[str] = []
        self.src = SideCounts()
        self.tgt = SideCounts()
        self.corpora: list[CorpusCount] = []
        self.pairs = 0
        self.over_max_len = 0

    def counts(self, side: str) -> dict[str, int]:
        """token -> count on one side (``"src"``, ``"tgt"``, or ``"both"`` for a joint
        vocabulary)."""
        if side == "both":
            c = _grown(self.src.counts, len(self.tokens))[: len(self.tokens)] + _grown(
                self.tgt.counts, len(self.tokens))[: len(self.tokens)]
        else:
            c = getattr(self, side).counts
        n = min(len(c), len(self.tokens))
        return {self.tokens[i]: int(c[i]) for i in np.flatnonzero(c[:n]).tolist()}

    def files(self, name: str) -> Path:
        return self.tmp_dir / f"{name}.u32"

    def close(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self) -> TokenStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_stale_temporaries(cache_dir: Path) -> None:
    """Temporary directories of runs that were killed (their process is gone)."""
    if not cache_dir.is_dir():
        return
    for tmp in cache_dir.glob(".tmp-*"):
        try:
            pid = int(tmp.name.split("-")[1])
        except (IndexError, ValueError):
            pid = -1  # not ours: a malformed name
        if pid == os.getpid() or (pid > 0 and _alive(pid)):
            continue  # this process's own, or a build still running
        shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


def new_temporary(cache_dir: Path) -> Path:
    """A fresh temporary directory under ``cache_dir`` named after this process."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(cache_dir)
    tmp = cache_dir / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def tokenize_stream(data_cfg: DataConfig, spm: tuple[str | None, str | None], cache_dir: Path,
                    workers: int, on_chunk: Callable[[int], None] | None = None) -> TokenStream:
    """Tokenize the training corpora once (see the module docstring).

    Args:
        data_cfg: the data settings (corpora, direction, tokenizers, filters).
        spm: the sentencepiece model of each side, where it uses one.
        cache_dir: where the temporary directory goes (``RUN_DIR/cache``).
        workers: tokenizing processes.
        on_chunk: called with the raw pairs of each chunk done (tests).

    Raises:
        DataError: unreadable, damaged or (strict) malformed input; a worker died. The
            temporary directory is removed on any error and on Ctrl-C.
    """
    stream = TokenStream(new_temporary(cache_dir))
    try:
        _fill(stream, data_cfg, spm, workers, on_chunk)
    except BaseException:
        stream.close()
        raise
    return stream


def _fill(stream: TokenStream, data_cfg: DataConfig, spm: tuple[str | None, str | None],
          workers: int, on_chunk: Callable[[int], None] | None) -> None:
    merger = _Merger(data_cfg)
    provisional: dict[str, int] = {}
    max_len = data_cfg.max_len
    names = ("src_ids", "tgt_ids", "src_len", "tgt_len")
    outs = {name: open(stream.files(name), "wb") for name in names}  # noqa: SIM115
    bar = progress_bar(total_lines(data_cfg), f"tokenize train ({workers} worker"
                    f"{'s' if workers > 1 else ''})")
    try:
        for result in process_chunks(merger.chunks(), data_cfg, spm, workers):
            keep = merger.keep_mask(result)
            assert result.src_ids is not None and result.tgt_ids is not None
            assert result.src_len is not None and result.tgt_len is not None
            src_ids, tgt_ids = result.src_ids, result.tgt_ids
            src_len, tgt_len = result.src_len, result.tgt_len
            if keep is not None and not keep.all():
                src_ids = src_ids[np.repeat(keep, src_len)]
                tgt_ids = tgt_ids[np.repeat(keep, tgt_len)]
                src_len, tgt_len = src_len[keep], tgt_len[keep]
            # local id -> provisional id: one dict lookup per distinct token of the chunk.
            local_to_provisional = []
            for tok in result.tokens:
                i = provisional.get(tok)
                if i is None:
                    i = provisional[tok] = len(stream.tokens)
                    stream.tokens.append(tok)
                local_to_provisional.append(i)
            mapping = np.array(local_to_provisional, dtype=np.uint32)
            src_p, tgt_p = mapping[src_ids], mapping[tgt_ids]
            stream.src.add(src_p, src_len, len(provisional))
            stream.tgt.add(tgt_p, tgt_len, len(provisional))
            stream.pairs += len(src_len)
            stream.over_max_len += int((np.maximum(src_len, tgt_len) > max_len).sum())
            for name, arr in zip(names, (src_p, tgt_p, src_len, tgt_len), strict=True):
                arr.astype(np.uint32, copy=False).tofile(outs[name])
            bar.update(result.raw_pairs)
            if on_chunk is not None:
                on_chunk(result.raw_pairs)
    finally:
        bar.close()
        for f in outs.values():
            f.close()
    stream.corpora = merger.finish()
