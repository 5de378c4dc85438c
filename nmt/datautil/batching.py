"""Padding, masks, token-bucketed batches and the on-disk token cache.

Sequence layout (the one place it is decided, used by training, validation and translate):
the source is ``ids + [</s>]``; the decoder input is ``[<s>] + ids`` and the decoder output
``ids + [</s>]``. A tokenized corpus is kept as flat id arrays plus offsets
(:class:`TokenizedCorpus`), which is compact, fast to slice and saves as plain ``.npy`` data.

Batches are formed by :class:`TokenBatchSampler`: the examples are shuffled, cut into large
pools, sorted by length inside each pool (so neighbours have similar lengths and padding is
small) and packed greedily under a budget of ``batch_tokens`` *padded* tokens, counted as
``batch_size * max(longest source, longest target)`` (both with their ``</s>``/``<s>``). The
batch list of an epoch is a pure function of ``(seed, epoch)``, so a resumed run can continue
at batch ``k`` of epoch ``e`` exactly.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, overload

import numpy as np
import torch
from torch import Tensor

from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

CACHE_FORMAT = "nmt-token-cache-v1"
_BLOCK = 1 << 20  # examples read at a time where a whole pass would copy every length
_BLOCK_BATCHES = 1 << 14


# --------------------------------------------------------------------------- corpus storage


class PairSource(Protocol):
    """What batching needs of a corpus: an in-memory :class:`TokenizedCorpus` or the
    memory-mapped :class:`nmt.datautil.shards.ShardedCorpus`."""

    def __len__(self) -> int: ...

    def src(self, i: int) -> np.ndarray: ...

    def tgt(self, i: int) -> np.ndarray: ...

    def src_lengths(self) -> np.ndarray: ...

    def tgt_lengths(self) -> np.ndarray: ...


@dataclass(frozen=True)
class TokenizedCorpus:
    """Token ids of a parallel corpus: example ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.

    Ids carry no ``<s>``/``</s>``; :func:`collate` adds them.
    """

    src_ids: np.ndarray  # (total_src_tokens,) int32
    src_offsets: np.ndarray  # (n + 1,) int64
    tgt_ids: np.ndarray  # (total_tgt_tokens,) int32
    tgt_offsets: np.ndarray  # (n + 1,) int64

    @classmethod
    def from_lists(
        cls, src: Sequence[Sequence[int] | np.ndarray], tgt: Sequence[Sequence[int] | np.ndarray]
    ) -> TokenizedCorpus:
        """Pack id lists (one per example, the same number on both sides)."""
        if len(src) != len(tgt):
            raise ValueError(f"{len(src)} source but {len(tgt)} target examples")
        return cls(*_flatten(src), *_flatten(tgt))

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    def src(self, i: int) -> np.ndarray:
        return self.src_ids[self.src_offsets[i] : self.src_offsets[i + 1]]

    def tgt(self, i: int) -> np.ndarray:
        return self.tgt_ids[self.tgt_offsets[i] : self.tgt_offsets[i + 1]]

    def src_lengths(self) -> np.ndarray:
        """``(n,)`` source lengths without ``</s>``."""
        return np.diff(self.src_offsets)

    def tgt_lengths(self) -> np.ndarray:
        """``(n,)`` target lengths without ``<s>``/``</s>``."""
        return np.diff(self.tgt_offsets)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            format=np.array(CACHE_FORMAT),
            src_ids=self.src_ids,
            src_offsets=self.src_offsets,
            tgt_ids=self.tgt_ids,
            tgt_offsets=self.tgt_offsets,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TokenizedCorpus:
        """Inverse of :meth:`to_bytes`; raises ValueError on anything inconsistent."""
        # allow_pickle=False: a cache file is data, never code.
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if str(z["format"]) != CACHE_FORMAT:
                raise ValueError(f"unknown cache format {z['format']!r}")
            corpus = cls(z["src_ids"], z["src_offsets"], z["tgt_ids"], z["tgt_offsets"])
        for ids, off in (
            (corpus.src_ids, corpus.src_offsets),
            (corpus.tgt_ids, corpus.tgt_offsets),
        ):
            if off.ndim != 1 or len(off) == 0 or off[0] != 0 or off[-1] != len(ids):
                raise ValueError("offsets do not match the ids")
            if np.any(np.diff(off) < 0):
                raise ValueError("offsets are not monotonic")
        if len(corpus.src_offsets) != len(corpus.tgt_offsets):
            raise ValueError("source and target sizes differ")
        return corpus


def _flatten(seqs: Sequence[Sequence[int] | np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


# --------------------------------------------------------------------------- padding


@dataclass(frozen=True)
class Batch:
    """One padded training batch. Token counts are known on the host without a device sync."""

    src: Tensor  # (batch, src_len) long
    src_mask: Tensor  # (batch, src_len) bool, True at real tokens
    tgt_in: Tensor  # (batch, tgt_len) long: <s> y1 ... yn
    tgt_out: Tensor  # (batch, tgt_len) long: y1 ... yn </s>, PAD elsewhere
    n_src_tokens: int  # real source tokens, </s> included
    n_tgt_tokens: int  # real target tokens (the loss denominator), </s> included

    def to(self, device: torch.device) -> Batch:
        # non_blocking pays off only from pinned memory (CUDA); it is harmless elsewhere.
        nb = device.type == "cuda"
        return Batch(
            self.src.to(device, non_blocking=nb),
            self.src_mask.to(device, non_blocking=nb),
            self.tgt_in.to(device, non_blocking=nb),
            self.tgt_out.to(device, non_blocking=nb),
            self.n_src_tokens,
            self.n_tgt_tokens,
        )


def pad_sequences(
    seqs: Sequence[Sequence[int] | np.ndarray], prefix: int | None = None, suffix: int | None = None
) -> tuple[Tensor, Tensor]:
    """Pad id sequences into ``(batch, max_len)`` with optional prefix/suffix tokens.

    Returns:
        ``ids`` long and ``mask`` bool (True at real tokens), both ``(batch, max_len)``.
    """
    extra = (prefix is not None) + (suffix is not None)
    lengths = [len(s) + extra for s in seqs]
    width = max(lengths, default=0)
    out = np.full((len(seqs), width), PAD_ID, dtype=np.int64)
    start = int(prefix is not None)
    for row, (seq, n) in enumerate(zip(seqs, lengths, strict=True)):
        if prefix is not None:
            out[row, 0] = prefix
        out[row, start : start + len(seq)] = seq
        if suffix is not None:
            out[row, n - 1] = suffix
    ids = torch.from_numpy(out)
    return ids, ids != PAD_ID


def collate_src(seqs: Sequence[Sequence[int] | np.ndarray]) -> tuple[Tensor, Tensor]:
    """Source ids (no specials) -> ``(src, src_mask)`` as the models were trained on."""
    return pad_sequences(seqs, suffix=EOS_ID)


def collate(corpus: PairSource, indices: Sequence[int]) -> Batch:
    """Build the padded batch of the examples ``indices`` (in that order)."""
    return collate_pairs([corpus.src(i) for i in indices], [corpus.tgt(i) for i in indices])


def collate_pairs(
    srcs: Sequence[Sequence[int] | np.ndarray], tgts: Sequence[Sequence[int] | np.ndarray]
) -> Batch:
    """The padded batch of source and target id sequences (no specials), pair by pair."""
    src, src_mask = collate_src(srcs)
    tgt_in, _ = pad_sequences(tgts, prefix=BOS_ID)
    tgt_out, tgt_mask = pad_sequences(tgts, suffix=EOS_ID)
    return Batch(src, src_mask, tgt_in, tgt_out, int(src_mask.sum()), int(tgt_mask.sum()))


# --------------------------------------------------------------------------- batching


class EpochBatches(Sequence[list[int]]):
    """The batches of one epoch without a list per batch: the examples sorted within their
    pools (``order``), where each packed batch starts and ends in it (``bounds``), and the
    shuffled batch order (``perm``). Batch ``k`` is ``order[bounds[perm[k]]:bounds[perm[k] + 1]]``.

    Compact where a list of lists is not (4 bytes per example instead of about 36: at millions
    of pairs that difference would grow the trainer's memory with the corpus), and nothing is
    copied to put the batches in training order.
    """

    def __init__(self, order: np.ndarray, bounds: np.ndarray, perm: np.ndarray) -> None:
        self.order = order
        self.bounds = bounds
        self.perm = perm

    def __len__(self) -> int:
        return len(self.perm)

    @overload
    def __getitem__(self, k: int) -> list[int]: ...

    @overload
    def __getitem__(self, k: slice) -> list[list[int]]: ...

    def __getitem__(self, k: int | slice) -> list[int] | list[list[int]]:
        if isinstance(k, slice):
            return [self[i] for i in range(len(self))[k]]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        b = int(self.perm[k])
        return self.order[self.bounds[b] : self.bounds[b + 1]].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for k in range(len(self)):
            yield self[k]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EpochBatches):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other,
                                                                           strict=True))
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class TokenBatchSampler:
    """Length-bucketed batches under a padded-token budget, reshuffled per epoch.

    Args:
        src_lengths, tgt_lengths: ``(n,)`` lengths without specials.
        batch_tokens: budget of ``batch_size * max(src_len + 1, tgt_len + 1)`` per batch; an
            example longer than the budget on its own still gets a batch of one.
        seed: the run seed; epoch ``e`` is shuffled by ``(seed, e)``.
        pool_batches: examples are sorted by length within pools of about this many batches,
            which keeps padding small while batches still mix across the corpus.
    """

    def __init__(
        self,
        src_lengths: np.ndarray,
        tgt_lengths: np.ndarray,
        batch_tokens: int,
        seed: int,
        pool_batches: int = 100,
    ) -> None:
        # The lengths are read as given, pool by pool, never copied whole: for the shard
        # cache they are memory-mapped files, so the sampler adds no memory per example.
        self._src = np.asarray(src_lengths)
        self._tgt = np.asarray(tgt_lengths)
        if len(self._src) != len(self._tgt):
            raise ValueError(f"{len(self._src)} source but {len(self._tgt)} target lengths")
        self.batch_tokens = batch_tokens
        self.seed = seed
        total = 0
        for start in range(0, len(self._src), _BLOCK):
            total += int(self.costs(np.arange(start, min(start + _BLOCK, len(self._src))))
                         .sum(dtype=np.int64))
        mean = total / len(self._src) if len(self._src) else 1.0
        self.pool_size = max(1, int(pool_batches * batch_tokens / mean))

    def __len__(self) -> int:
        return len(self._src)

    def lengths(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source (with ``</s>``) and target (with ``<s>``/``</s>``) lengths of examples."""
        return (self._src[indices].astype(np.int64) + 1, self._tgt[indices].astype(np.int64) + 1)

    def costs(self, indices: np.ndarray) -> np.ndarray:
        """``max(source, target)`` length with specials: an example's cost per batch row."""
        s, t = self.lengths(indices)
        return np.maximum(s, t)

    @property
    def cost(self) -> np.ndarray:
        """Every example's cost (a new array: for inspection and tests)."""
        return self.costs(np.arange(len(self)))

    def epoch_batches(self, epoch: int) -> EpochBatches:
        """The batches (lists of example indices) of ``epoch``, in training order."""
        rng = np.random.default_rng([self.seed % 2**32, epoch])
        # Shuffling an int32 range draws the same permutation as rng.permutation(n), in half
        # the memory.
        index = np.int32 if len(self) < 2**31 else np.int64
        order = rng.permutation(np.arange(len(self), dtype=index))
        cuts = [0]
        for start in range(0, len(order), self.pool_size):
            pool = order[start : start + self.pool_size]
            cost = self.costs(pool)
            # lexsort is stable: ties keep the shuffled order, so equal lengths still mix.
            sort = np.lexsort((self.lengths(pool)[1], cost))
            order[start : start + len(pool)] = pool[sort]
            cuts.extend(start + c for c in self._pack(cost[sort]))
        bounds = np.asarray(cuts, dtype=np.int64)
        return EpochBatches(order, bounds, rng.permutation(len(bounds) - 1))

    def _pack(self, costs: np.ndarray) -> list[int]:
        """Greedy packing of a sorted pool: the end position of each batch within it."""
        cuts: list[int] = []
        size = 0
        longest = 0
        for pos, cost in enumerate(costs.tolist()):
            widest = max(longest, cost)
            if size and (size + 1) * widest > self.batch_tokens:
                cuts.append(pos)
                size, widest = 0, cost
            size += 1
            longest = widest
        if size:
            cuts.append(len(costs))
        return cuts

    def padding_fraction(self, batches: Sequence[Sequence[int]]) -> float:
        """Share of padding in the tensors of ``batches`` (source and target together)."""
        real = padded = 0
        if isinstance(batches, EpochBatches):
            # The padding of an epoch does not depend on the batch order: read the pools,
            # a block of batches at a time.
            bounds = batches.bounds
            for first in range(0, len(bounds) - 1, _BLOCK_BATCHES):
                b = bounds[first : first + _BLOCK_BATCHES + 1]
                s, t = self.lengths(batches.order[b[0] : b[-1]])
                starts = b[:-1] - b[0]
                real += int(s.sum() + t.sum())
                widest = np.maximum.reduceat(s, starts) + np.maximum.reduceat(t, starts)
                padded += int((np.diff(b) * widest).sum())
            return 1.0 - real / padded if padded else 0.0
        for batch in batches:
            s, t = self.lengths(np.asarray(list(batch), dtype=np.int64))
            real += int(s.sum() + t.sum())
            padded += len(batch) * int(s.max() + t.max())
        return 1.0 - real / padded if padded else 0.0


def shard_batches(batches: Sequence[list[int]], rank: int, world: int) -> Sequence[list[int]]:
    """This rank's share of an epoch: every rank gets the same number of batches and every
    example is used exactly once (for data-parallel training).

    Batches are dealt round-robin; the leftover batches (one more round when they hold fewer
    than ``world`` examples) are merged and re-split into ``world`` pieces, so no rank waits and
    no example is dropped. Only an epoch of fewer than ``world`` examples repeats some.
    """
    if world == 1:
        return batches
    full = len(batches) - len(batches) % world
    if full < len(batches) and full >= world and sum(len(b) for b in batches[full:]) < world:
        full -= world
    mine = [list(b) for b in batches[rank:full:world]]
    rest = [i for b in batches[full:] for i in b]
    if rest:
        while len(rest) < world:  # degenerate tiny epoch: repeat rather than leave a rank idle
            rest.extend(rest[: world - len(rest)])
        piece = np.array_split(np.asarray(rest, dtype=np.int64), world)[rank]
        mine.append(piece.tolist())
    return mine


# --------------------------------------------------------------------------- token cache


def cache_key(files: Sequence[str | Path], settings: str) -> str:
    """Hash of the files' contents (in order) and a settings string, e.g. the data config.

    Raises:
        DataError: a file is missing or unreadable (it names the file).
    """
    from nmt.datautil.cache import hash_files

    return hash_files(files, settings, CACHE_FORMAT)


def cached_corpus(
    cache_dir: str | Path, name: str, key: str, build: Callable[[], TokenizedCorpus]
) -> TokenizedCorpus:
    """Load ``cache_dir/NAME-KEY.npz`` or build the corpus and write it there atomically.

    A cache file that cannot be read is rebuilt (it is only ever a copy of derived data).
    """
    path = Path(cache_dir) / f"{name}-{key}.npz"
    if path.is_file():
        try:
            corpus = TokenizedCorpus.from_bytes(path.read_bytes())
            log.debug("token cache hit: %s", path)
            return corpus
        except (OSError, ValueError, KeyError) as e:
            log.warning("%s: unreadable token cache (%s); rebuilding it", path, e)
    corpus = build()
    atomic_write_bytes(path, corpus.to_bytes())
    for stale in path.parent.glob(f"{name}-*.npz"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return corpus
