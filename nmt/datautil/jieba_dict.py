"""jieba's prefix dictionary, cached in the user cache dir and read lazily.

jieba segments with a *prefix dictionary*: every dictionary word and every prefix of one,
mapped to the word's frequency (0 for a bare prefix), ~500k entries for the default
dictionary. jieba keeps it as a marshal file in the temp dir; loading that costs ~0.6 s of
CPU at every start, and even building a plain dict from a compact file costs ~0.2 s, most of a
one-sentence ``nmt translate``'s segmentation start-up.

So the table is kept in our own cache file (sorted words joined by newlines, then an int64
array of frequencies; no code), and :class:`PrefixDict` answers jieba's lookups from the
sorted list (of UTF-8 bytes: ~28 MB instead of ~44 MB of str) by binary search until enough
lookups have been made to repay building the dict; then it builds it and hands it to the
tokenizer (``on_build``), which uses it directly from then on. A one-sentence translation
never pays for the dict; a corpus pays once.
"""

from __future__ import annotations

import array
import bisect
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nmt.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

_FORMAT = 2
_MAGIC = f"nmt-jieba-prefix-dict {_FORMAT}\n".encode()
_SUFFIX = f".v{_FORMAT}.bin"
# A lookup by bisection costs ~0.5 us more than a dict's; building the dict ~0.2 s.
BUILD_AFTER_LOOKUPS = 200_000


def user_cache_dir() -> Path:
    """``$NMT_CACHE_DIR``, else ``$XDG_CACHE_HOME/nmt``, else ``~/.cache/nmt``."""
    explicit = os.environ.get("NMT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nmt"


class PrefixDict:
    """The mapping jieba reads as ``Tokenizer.FREQ``, backed by sorted words until it is built.

    Supports what jieba does with ``FREQ``: ``in``, ``[]``, ``get`` and assignment (user
    dictionary words). After :data:`BUILD_AFTER_LOOKUPS` lookups it builds a plain dict of
    everything and passes it to ``on_build`` (which puts it in the tokenizer's place).

    Args:
        words: every entry in UTF-8, sorted (bytewise, which is code point order).
        freqs: the frequency of each word, same order.
        on_build: called once with the plain dict.
    """

    def __init__(
        self, words: list[bytes], freqs: array.array[int],
        on_build: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        if len(words) != len(freqs):
            raise ValueError(f"{len(words)} words but {len(freqs)} frequencies")
        self._words, self._freqs, self._on_build = words, freqs, on_build
        self._added: dict[str, int] = {}  # assigned after loading (user dictionary words)
        self._built: dict[str, int] | None = None
        self._lookups = 0

    def _index(self, word: str) -> int:
        """Position of ``word`` in the sorted words, or -1 (call only before :meth:`build`)."""
        key = word.encode("utf-8", "surrogatepass")  # a lone surrogate matches no word
        i = bisect.bisect_left(self._words, key)
        return i if i < len(self._words) and self._words[i] == key else -1

    def _counted(self) -> None:
        self._lookups += 1
        if self._lookups >= BUILD_AFTER_LOOKUPS:
            self.build()

    def __contains__(self, word: object) -> bool:
        if self._built is not None:
            return word in self._built
        if not isinstance(word, str):
            return False
        found = word in self._added or self._index(word) >= 0
        self._counted()
        return found

    def get(self, word: str, default: Any = None) -> Any:
        if self._built is not None:
            return self._built.get(word, default)
        if word in self._added:
            return self._added[word]
        i = self._index(word)
        value = self._freqs[i] if i >= 0 else default
        self._counted()
        return value

    def __getitem__(self, word: str) -> int:
        value = self.get(word, _MISSING)
        if value is _MISSING:
            raise KeyError(word)
        return int(value)

    def __setitem__(self, word: str, freq: int) -> None:
        if self._built is not None:
            self._built[word] = freq
        else:
            self._added[word] = freq

    def __len__(self) -> int:
        if self._built is not None:
            return len(self._built)
        return len(self._words) + sum(1 for w in self._added if self._index(w) < 0)

    def build(self) -> dict[str, int]:
        """The plain dict of every entry (built once), also passed to ``on_build``."""
        if self._built is None:
            words = (word.decode("utf-8") for word in self._words)
            built = dict(zip(words, self._freqs, strict=True))
            built.update(self._added)
            self._built = built
            self._words, self._freqs, self._added = [], array.array("q"), {}  # ~28 MB
            if self._on_build is not None:
                self._on_build(built)
        return self._built


_MISSING = object()


def prefix_dict_path(dict_file: Path) -> Path:
    """Our cache of jieba's prefix dictionary, keyed on jieba's version and dictionary content.

    The content, not the file's time stamp: every new virtual environment (each CI run) has its
    own copy of the same dict.txt, and should find the one cache file (hashing its 5 MB took
    ~9 ms here, median of 5).
    """
    import jieba

    digest = hashlib.blake2b(dict_file.read_bytes(), digest_size=8).hexdigest()
    version = getattr(jieba, "__version__", "?")
    return user_cache_dir() / f"jieba-prefix-{version}-{digest}{_SUFFIX}"


def load_prefix_dict(tok: Any) -> None:
    """Initialise ``tok`` (a ``jieba.Tokenizer`` of the default dictionary) quickly.

    From our cache when it is there and sound; otherwise by jieba's own loading, after which
    the cache is (re)written. The cache is only ever a copy of jieba's data.
    """
    import jieba

    try:
        path: Path | None = prefix_dict_path(Path(jieba.__file__).with_name("dict.txt"))
    except OSError:  # no dict.txt beside jieba (a repackaged jieba): its own loading only
        path = None
    if path is not None:
        try:
            words, freqs, total = read_prefix_dict(path)
        except (OSError, ValueError, UnicodeDecodeError) as e:
            log.debug("no usable jieba prefix cache %s (%s); building it", path, e)
        else:
            tok.FREQ = PrefixDict(words, freqs, on_build=lambda built: setattr(tok, "FREQ", built))
            tok.total, tok.initialized = total, True
            return
    tok.initialize()
    if path is not None:
        try:
            write_prefix_dict(path, tok.FREQ, tok.total)
        except (OSError, ValueError, OverflowError) as e:  # a read-only home is fine
            log.debug("could not write the jieba prefix cache %s: %s", path, e)
        else:
            _remove_old_formats(path.parent)


def _remove_old_formats(folder: Path) -> None:
    """Delete prefix caches of older formats (~9 MB each), which this version never reads.
    Those of other jieba versions or dictionaries (other environments) are left alone."""
    for stale in folder.glob("jieba-prefix-*.bin"):
        if not stale.name.endswith(_SUFFIX):
            try:
                stale.unlink()
            except OSError as e:
                log.debug("could not remove %s: %s", stale, e)


def read_prefix_dict(path: Path) -> tuple[list[bytes], array.array[int], int]:
    """Sorted words (UTF-8), their frequencies and jieba's total from a cache file.

    Raises:
        ValueError: not such a file, or damaged (the payload's checksum is verified).
    """
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError("not a prefix dictionary cache")
    header_end = data.index(b"\n", len(_MAGIC))
    fields = data[len(_MAGIC) : header_end].split()
    if len(fields) != 4:
        raise ValueError("bad header")
    count, total, n_bytes = map(int, fields[:3])
    payload = memoryview(data)[header_end + 1 :]
    if hashlib.blake2b(payload, digest_size=16).hexdigest().encode() != fields[3]:
        raise ValueError("checksum mismatch")
    words = bytes(payload[:n_bytes]).split(b"\n")
    freqs = array.array("q")
    freqs.frombytes(payload[n_bytes:])
    if len(words) != count or len(freqs) != count:
        raise ValueError("truncated prefix dictionary cache")
    return words, freqs, total


def write_prefix_dict(path: Path, freq: dict[str, int], total: int) -> None:
    """Write jieba's ``FREQ`` table and ``total`` as :func:`read_prefix_dict` reads them."""
    if any("\n" in w for w in freq):
        raise ValueError("a dictionary word contains a newline")
    words = sorted(freq)
    text = "\n".join(words).encode("utf-8")
    payload = text + array.array("q", (freq[w] for w in words)).tobytes()
    checksum = hashlib.blake2b(payload, digest_size=16).hexdigest()
    header = f"{len(words)} {total} {len(text)} {checksum}\n".encode()
    atomic_write_bytes(path, _MAGIC + header + payload)
