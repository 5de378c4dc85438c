"""Vocabulary: token <-> id with the four specials first, saved as readable ``token<TAB>count``.

The order is fixed by the counts alone (count descending, then token by code point), never by
set or dict iteration order, so a vocabulary file is byte-identical across runs and
``PYTHONHASHSEED`` values, and ids mean the same thing on every machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from nmt.errors import DataError
from nmt.fileio import atomic_write_text, read_lines

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class Vocabulary:
    """An ordered list of tokens; the position of a token is its id.

    Args:
        tokens: the non-special tokens in id order (ids start after the specials).
        counts: their training counts (kept for the saved file and for reports).
    """

    def __init__(self, tokens: Sequence[str], counts: Sequence[int] | None = None) -> None:
        if counts is not None and len(counts) != len(tokens):
            raise ValueError("tokens and counts differ in length")
        self._itos: list[str] = list(SPECIALS) + list(tokens)
        self._counts: list[int] = [0] * len(SPECIALS) + list(counts or [0] * len(tokens))
        self._stoi: dict[str, int] = {}
        for i, tok in enumerate(self._itos):
            if tok in self._stoi:
                raise ValueError(f"duplicate token {tok!r} in vocabulary")
            self._stoi[tok] = i

    @classmethod
    def build(cls, counts: Mapping[str, int], min_freq: int = 1, max_size: int = 0,
              reserved: Sequence[str] = ()) -> Vocabulary:  # fmt: skip
        """The tokens seen at least ``min_freq`` times, most frequent first.

        Args:
            counts: token -> number of occurrences in the training data.
            min_freq: tokens seen fewer times are left out (they encode as ``<unk>``).
            max_size: keep at most this many tokens besides the four specials (0 = all).
            reserved: tokens placed right after the specials whatever their counts (the
                direction tags of :mod:`nmt.datautil.directions`); not counted in max_size.
        """
        if min_freq < 1 or max_size < 0:
            raise ValueError("min_freq must be >= 1 and max_size >= 0")
        skip = set(SPECIALS) | set(reserved)
        kept = [(tok, n) for tok, n in counts.items() if n >= min_freq and tok not in skip]
        kept.sort(key=lambda item: (-item[1], item[0]))
        if max_size:
            kept = kept[:max_size]
        return cls([*reserved, *(tok for tok, _ in kept)],
                   [*(counts.get(tok, 0) for tok in reserved), *(n for _, n in kept)])

    # ------------------------------------------------------------------ lookup

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._itos == other._itos and self._counts == other._counts

    def __hash__(self) -> int:
        return hash(tuple(self._itos))

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, specials included (a copy)."""
        return list(self._itos)

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, or ``UNK_ID``."""
        return self._stoi.get(token, UNK_ID)

    def id_to_token(self, index: int) -> str:
        """The token with id ``index``; raises ValueError when out of range."""
        if not 0 <= index < len(self._itos):
            raise ValueError(f"token id {index} out of range for a vocabulary of {len(self)}")
        return self._itos[index]

    def count(self, token: str) -> int:
        """How often ``token`` occurred in the training data (0 for specials and unknowns)."""
        i = self._stoi.get(token)
        return 0 if i is None else self._counts[i]

    # ------------------------------------------------------------------ encode / decode

    def encode(
        self, tokens: Iterable[str], add_bos: bool = False, add_eos: bool = False
    ) -> list[int]:
        """Token ids; unknown tokens become ``UNK_ID``."""
        get = self._stoi.get
        ids = [get(tok, UNK_ID) for tok in tokens]
        if add_bos:
            ids.insert(0, BOS_ID)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def decode(self, ids: Iterable[int], strip_special: bool = True) -> list[str]:
        """Tokens for ``ids``.

        With ``strip_special`` (the default, for model output) decoding stops at the first
        ``</s>`` and drops ``<pad>`` and ``<s>``; ``<unk>`` is kept so that it stays visible.
        Without it every id is returned as its token, for debugging.
        """
        out: list[str] = []
        for index in ids:
            i = int(index)
            if strip_special:
                if i == EOS_ID:
                    break
                if i in (PAD_ID, BOS_ID):
                    continue
            out.append(self.id_to_token(i))
        return out

    # ------------------------------------------------------------------ files

    def to_text(self) -> str:
        """The file content: ``token<TAB>count`` per line, specials first, ``\\n`` endings."""
        lines = []
        for tok, n in zip(self._itos, self._counts, strict=True):
            if not tok or any(c in tok for c in "\t\n\r"):
                raise ValueError(f"token {tok!r} cannot be saved (empty or contains TAB/newline)")
            lines.append(f"{tok}\t{n}\n")
        return "".join(lines)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary atomically (see :meth:`to_text` for the format)."""
        atomic_write_text(path, self.to_text())

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a file written by :meth:`save`.

        Raises:
            DataError: missing file, a malformed line, missing specials or a duplicate token.
        """
        lines = read_lines(path)
        tokens: list[str] = []
        counts: list[int] = []
        for line_no, line in enumerate(lines, start=1):
            tok, sep, count = line.rpartition("\t")
            if not sep or not tok or not (count.isascii() and count.isdigit()):
                raise DataError(f"{path}:{line_no}: expected 'token<TAB>count', got {line!r}")
            tokens.append(tok)
            counts.append(int(count))
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise DataError(f"{path}: must start with the specials {' '.join(SPECIALS)}")
        try:
            return cls(tokens[len(SPECIALS) :], counts[len(SPECIALS) :])
        except ValueError as e:
            raise DataError(f"{path}: {e}") from None
