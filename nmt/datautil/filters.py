"""Cleaning filters for web-crawled corpora (``data.filters``) and the duplicate detector.

The per-pair rules (:class:`PairFilter`) look at one normalized, tokenized pair and run in the
tokenizing workers; duplicate removal needs the pairs seen before, so it runs in the main
process over the ordered stream (:class:`DigestSet`). Both depend only on the pairs and their
order, never on how the corpus was split among workers, so every worker count keeps the same
pairs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from nmt.config import FilterConfig, Lang

TOO_LONG = "filter: longer than max_chars"
WRONG_SCRIPT = "filter: wrong script"
SAME_SIDES = "filter: source equals target"
LENGTH_RATIO = "filter: length ratio"
DUPLICATE = "filter: duplicate pair"

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")


def mostly_latin(text: str) -> bool:
    """At least one letter, and at least half of the letters Latin (``Tom在吗`` is not)."""
    letters = sum(1 for c in text if c.isalpha())
    return letters > 0 and len(_LATIN.findall(text)) * 2 >= letters


def has_han(text: str) -> bool:
    return _HAN.search(text) is not None


class PairFilter:
    """The per-pair rules of ``data.filters``, in the documented order.

    Args:
        cfg: the filter settings.
        src_lang: the source language (which side must be Chinese).
    """

    def __init__(self, cfg: FilterConfig, src_lang: Lang) -> None:
        self.cfg = cfg
        self.src_is_zh = src_lang == "zh"
        self.active = cfg.max_chars > 0 or cfg.script or cfg.same or cfg.max_ratio > 0

    def text_reason(self, src: str, tgt: str) -> str | None:
        """The rule that a normalized pair breaks before tokenizing, or None."""
        c = self.cfg
        if c.max_chars and max(len(src), len(tgt)) > c.max_chars:
            return TOO_LONG
        if c.script:
            zh, en = (src, tgt) if self.src_is_zh else (tgt, src)
            if not has_han(zh) or not mostly_latin(en):
                return WRONG_SCRIPT
        if c.same and src == tgt:
            return SAME_SIDES
        return None

    def token_reason(self, src_tokens: Sequence[str], tgt_tokens: Sequence[str]) -> str | None:
        """The rule that a tokenized pair breaks (the length ratio), or None."""
        if self.cfg.max_ratio > 0:
            short, long = sorted((len(src_tokens), len(tgt_tokens)))
            if long > self.cfg.max_ratio * max(short, 1):
                return LENGTH_RATIO
        return None


def pair_digest(src: str, tgt: str) -> int:
    """A 64-bit digest of a normalized pair (never 0: 0 marks an empty slot)."""
    h = hashlib.blake2b(src.encode("utf-8") + b"\0" + tgt.encode("utf-8"), digest_size=8)
    return int.from_bytes(h.digest(), "little") or 1


class DigestSet:
    """A set of 64-bit digests in an open-addressing numpy table: 16 bytes per pair at most
    (a Python set of ints takes about 60), vectorised over a chunk at a time.

    Two distinct pairs share a digest with probability about ``n^2 / 2^65`` (1e-7 for 3M
    pairs); such a pair would be dropped as a duplicate.
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._table = np.zeros(capacity, dtype=np.uint64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add_new(self, digests: np.ndarray) -> np.ndarray:
        """Insert ``digests`` in order; a bool mask of those not seen before (first occurrences
        within the array count as new, later ones as seen)."""
        digests = np.asarray(digests, dtype=np.uint64)
        new = np.zeros(len(digests), dtype=bool)
        if not len(digests):
            return new
        _, first = np.unique(digests, return_index=True)
        candidates = np.sort(first)  # the first occurrence of each distinct digest, in order
        while (self._size + len(candidates)) * 2 > len(self._table):
            self._grow()
        inserted = self._insert(digests[candidates])
        new[candidates[inserted]] = True
        return new

    def _insert(self, keys: np.ndarray) -> np.ndarray:
        """Insert distinct keys; True where a key was not in the table before."""
        table, mask = self._table, np.uint64(len(self._table) - 1)
        slot = keys & mask
        result = np.zeros(len(keys), dtype=bool)
        pending = np.arange(len(keys))
        while len(pending):
            k, s = keys[pending], slot[pending]
            current = table[s]
            found = current == k
            empty = current == 0
            # Claim the empty slots; when two keys claim one slot the last write wins and the
            # other sees a foreign key below and probes on.
            table[s[empty]] = k[empty]
            won = empty & (table[s] == k)
            result[pending[won]] = True
            self._size += int(won.sum())
            done = found | won
            pending = pending[~done]
            slot[pending] = (slot[pending] + np.uint64(1)) & mask
        return result

    def _grow(self) -> None:
        old = self._table[self._table != 0]
        self._table = np.zeros(len(self._table) * 2, dtype=np.uint64)
        self._size = 0
        self._insert(old)
