"""The training token cache: memory-mapped ``.npy`` shards with a JSON index.

Layout of ``RUN_DIR/cache/train-KEY/`` (KEY hashes the corpora, the vocabulary files and the
settings that shape the ids; see :func:`nmt.training.data.train_cache_key`)::

    index.json               format, key, pair count, dtypes, the shards in order
    shard-00000.src.npy      source ids of the shard's pairs, flat (uint16 when they fit)
    shard-00000.src_off.npy  int64 offsets: pair i is src[off[i]:off[i + 1]]
    shard-00000.tgt*.npy     the same for the target side
    src_len.npy, tgt_len.npy every pair's lengths (uint16, or uint32 for longer sentences)

Why ``.npy`` and not Arrow: numpy is already a dependency, ``np.load(mmap_mode="r")`` maps a
file with no copy and no parsing, every process of a torchrun job maps the same pages, and
anyone can read the files back with two lines of numpy. The cache holds *every* pair that
``build-vocab`` kept; pairs empty after tokenizing or longer than ``data.max_len`` are left out
when it is opened, so changing ``max_len`` needs no new cache.

A cache directory is written under a temporary name and renamed into place once complete, so
an interrupted build never leaves anything that a later run takes for finished.
"""

from __future__ import annotations

import bisect
import json
import logging
import mmap
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from nmt.datautil.stream import TokenStream, new_temporary, progress_bar
from nmt.datautil.vocab import Vocabulary
from nmt.fileio import atomic_write_text, fsync_dir

log = logging.getLogger(__name__)

SHARD_FORMAT = "nmt-token-shards-v2"
SHARD_PAIRS = 1 << 18  # pairs per shard: bounds the memory of writing one
_BLOCK = 1 << 16  # pairs remapped at a time


def _ids_dtype(vocab: Vocabulary) -> np.dtype:
    return np.dtype(np.uint16 if len(vocab) <= 1 << 16 else np.int32)


def write_shards(stream: TokenStream, src_vocab: Vocabulary, tgt_vocab: Vocabulary,
                 directory: Path, key: str, shard_pairs: int = SHARD_PAIRS) -> Path:
    """Map the stream's provisional ids to vocabulary ids and write the cache at
    ``directory`` (replacing an older one there); return ``directory``."""
    mapping = {}
    for side, vocab in (("src", src_vocab), ("tgt", tgt_vocab)):
        mapping[side] = np.array([vocab.token_to_id(t) for t in stream.tokens],
                                 dtype=_ids_dtype(vocab))
    tmp = new_temporary(directory.parent)
    try:
        shards = _write(stream, mapping, tmp, shard_pairs)
        index = {"format": SHARD_FORMAT, "key": key, "pairs": stream.pairs,
                 "src_dtype": str(mapping["src"].dtype), "tgt_dtype": str(mapping["tgt"].dtype),
                 "shards": shards}
        atomic_write_text(tmp / "index.json", json.dumps(index, indent=1) + "\n")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
        fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _write(stream: TokenStream, mapping: dict[str, np.ndarray], out: Path, shard_pairs: int
           ) -> list[dict[str, Any]]:
    handles = {name: open(stream.files(name), "rb")  # noqa: SIM115
               for name in ("src_ids", "tgt_ids", "src_len", "tgt_len")}
    shards: list[dict[str, Any]] = []
    longest = max(len(stream.src.lengths), len(stream.tgt.lengths))  # histogram sizes
    len_dtype = np.uint16 if longest <= 1 << 16 else np.uint32
    all_lengths = {side: np.lib.format.open_memmap(out / f"{side}_len.npy", mode="w+",
                                                   dtype=len_dtype, shape=(stream.pairs,))
                   for side in ("src", "tgt")}
    bar = progress_bar(stream.pairs, "encode train")
    try:
        done = 0
        while done < stream.pairs:
            n = min(shard_pairs, stream.pairs - done)
            name = f"shard-{len(shards):05d}"
            entry: dict[str, Any] = {"name": name, "pairs": n}
            for side in ("src", "tgt"):
                lengths = np.fromfile(handles[f"{side}_len"], dtype=np.uint32, count=n)
                offsets = np.zeros(n + 1, dtype=np.int64)
                np.cumsum(lengths, out=offsets[1:])
                ids = np.empty(int(offsets[-1]), dtype=mapping[side].dtype)
                # Remap in blocks: the shard's provisional ids never sit in memory at once.
                for start in range(0, n, _BLOCK):
                    stop = min(n, start + _BLOCK)
                    a, b = int(offsets[start]), int(offsets[stop])
                    block = np.fromfile(handles[f"{side}_ids"], dtype=np.uint32, count=b - a)
                    ids[a:b] = mapping[side][block]
                np.save(out / f"{name}.{side}.npy", ids)
                np.save(out / f"{name}.{side}_off.npy", offsets)
                all_lengths[side][done : done + n] = lengths
                entry[f"{side}_tokens"] = int(offsets[-1])
            shards.append(entry)
            done += n
            bar.update(n)
        for lengths in all_lengths.values():
            lengths.flush()
    finally:
        bar.close()
        for f in handles.values():
            f.close()
        del all_lengths  # closes the maps
    return shards


class CacheUnreadable(ValueError):
    """A cache directory is incomplete, of another format or inconsistent (rebuild it)."""


class ShardedCorpus:
    """The pairs of a shard cache, memory-mapped, that training uses.

    Pairs with an empty side or longer than ``max_len`` tokens on either side are left out;
    example ``i`` is the ``i``-th pair kept. Same interface as
    :class:`nmt.datautil.batching.TokenizedCorpus`.

    Raises:
        CacheUnreadable: from the constructor, when the cache cannot be used.
    """

    def __init__(self, directory: str | Path, max_len: int, key: str | None = None) -> None:
        self.directory = Path(directory)
        try:
            index = json.loads((self.directory / "index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CacheUnreadable(f"no readable index.json ({e})") from None
        if index.get("format") != SHARD_FORMAT:
            raise CacheUnreadable(f"unknown cache format {index.get('format')!r}")
        if key is not None and index.get("key") != key:
            raise CacheUnreadable("the index names another key")
        self.key: str = str(index.get("key", ""))  # the cache key it was written under
        self.total_pairs = int(index["pairs"])
        self._src: list[np.ndarray] = []
        self._tgt: list[np.ndarray] = []
        self._src_off: list[np.ndarray] = []
        self._tgt_off: list[np.ndarray] = []
        starts: list[int] = []
        first = 0
        try:
            for shard in index["shards"]:
                name, n = shard["name"], int(shard["pairs"])
                for side, ids, offs in (("src", self._src, self._src_off),
                                        ("tgt", self._tgt, self._tgt_off)):
                    ids.append(self._map(f"{name}.{side}.npy"))
                    off = self._map(f"{name}.{side}_off.npy")
                    if len(off) != n + 1 or int(off[-1]) != len(ids[-1]):
                        raise CacheUnreadable(f"{name}.{side}: sizes do not match the index")
                    offs.append(off)
                starts.append(first)
                first += n
            src_len = self._map("src_len.npy", random=False)
            tgt_len = self._map("tgt_len.npy", random=False)
        except (OSError, ValueError, KeyError) as e:
            raise CacheUnreadable(str(e)) from None
        if first != self.total_pairs or len(src_len) != first or len(tgt_len) != first:
            raise CacheUnreadable("the shards do not add up to the pair count")
        self._starts = starts
        # Which pairs training uses, a block at a time (no per-pair temporaries).
        n_kept = n_usable = 0
        for a in range(0, first, 1 << 20):
            s, t = src_len[a : a + (1 << 20)], tgt_len[a : a + (1 << 20)]
            usable = (s > 0) & (t > 0)
            n_usable += int(usable.sum())
            n_kept += int((usable & (np.maximum(s, t) <= max_len)).sum())
        self.too_long = n_usable - n_kept
        self._n = n_kept
        # Example i -> pair: None while every pair is kept; the lengths then stay the
        # memory-mapped files (page cache, shared by every process of a torchrun job).
        self._kept: np.ndarray | None = None
        self._src_len, self._tgt_len = src_len, tgt_len
        if n_kept < first:
            ok = (src_len > 0) & (tgt_len > 0) & (np.maximum(src_len, tgt_len) <= max_len)
            index_dtype = np.int32 if first < 2**31 else np.int64
            self._kept = np.flatnonzero(ok).astype(index_dtype)
            self._src_len, self._tgt_len = src_len[self._kept], tgt_len[self._kept]

    def _map(self, name: str, random: bool = True) -> np.ndarray:
        mapped = np.load(self.directory / name, mmap_mode="r")
        # Batches read a few bytes here and there: without this hint the kernel reads ahead
        # and maps 36 neighbouring pages per access (145 KiB measured; 41 with it).
        raw = getattr(mapped, "_mmap", None)
        if random and raw is not None and hasattr(mmap, "MADV_RANDOM"):
            raw.madvise(mmap.MADV_RANDOM)
        # A plain ndarray view of the memory map: indexing it skips np.memmap's overhead.
        return mapped.view(np.ndarray)

    def __len__(self) -> int:
        return self._n

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < self._n:
            raise IndexError(i)
        g = i if self._kept is None else int(self._kept[i])
        shard = bisect.bisect_right(self._starts, g) - 1
        return shard, g - self._starts[shard]

    def src(self, i: int) -> np.ndarray:
        shard, j = self._locate(i)
        off = self._src_off[shard]
        return self._src[shard][off[j] : off[j + 1]]

    def tgt(self, i: int) -> np.ndarray:
        shard, j = self._locate(i)
        off = self._tgt_off[shard]
        return self._tgt[shard][off[j] : off[j + 1]]

    def src_lengths(self) -> np.ndarray:
        """``(n,)`` source lengths of the kept pairs (without ``</s>``)."""
        return self._src_len

    def tgt_lengths(self) -> np.ndarray:
        return self._tgt_len


def cache_size(directory: Path) -> int:
    """Bytes of the files of a cache directory."""
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
