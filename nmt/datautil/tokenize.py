"""Tokenizers and their detokenizers, selectable per side (``data.*_tokenizer.type``).

Every tokenizer turns normalized text into tokens without whitespace (so tokens can be written
to ``token<TAB>count`` files) and has a detokenizer that returns plain text:

- ``jieba``: Chinese words, from our own ``jieba.Tokenizer`` instance (jieba's module-level
  tokenizer is global state shared with any other user of jieba in the process); joined
  without spaces except between Latin/digit words, so a space elsewhere (``Tom, Mary``) is
  kept as the token ``▁``;
- ``char``: characters; a space becomes the visible token ``▁`` so detokenizing is exact;
- ``moses``: sacremoses tokenizer/detokenizer (``escape=False``: no ``&apos;`` entities);
- ``space``: split on whitespace (pre-tokenized corpora);
- ``sentencepiece``: BPE or unigram subwords from a model that ``build-vocab`` trains.

:data:`TOKENIZERS` registers each type with what the rest of the code asks of it.
"""

from __future__ import annotations

import copy
import functools
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nmt.config import Lang, TokenizerConfig
from nmt.datautil.jieba_dict import load_prefix_dict
from nmt.datautil.normalize import is_cjk
from nmt.errors import ConfigError, DataError
from nmt.fileio import atomic_write_bytes, read_lines

log = logging.getLogger(__name__)

SPACE_MARK = "\u2581"  # "▁", as sentencepiece writes a word boundary


class Tokenizer(Protocol):
    """Splits one sentence into tokens and joins tokens back into plain text."""

    def tokenize(self, text: str) -> list[str]: ...

    def detokenize(self, tokens: Sequence[str]) -> str: ...


# --------------------------------------------------------------------------- Chinese spacing


@functools.cache  # called twice per token; the distinct characters are few
def _is_word_char(char: str) -> bool:
    return char.isalnum() and not is_cjk(char)


def _joined_with_space(left: str, right: str) -> bool:
    """:func:`join_chinese` puts a space between these two tokens (two Latin/digit words)."""
    return _is_word_char(left[-1]) and _is_word_char(right[0])


def join_chinese(tokens: Sequence[str]) -> str:
    """Join Chinese tokens without spaces, except between two Latin/digit words and where a
    ``▁`` token stands (see :func:`spaced_chinese_tokens`).

    ``["汤姆", "在", "波士顿"]`` -> ``汤姆在波士顿``; ``["Tom", "在", "New", "York"]`` ->
    ``Tom在New York``; ``["Tom", ",", "▁", "Mary", "和", "我"]`` -> ``Tom, Mary和我``.
    """
    out: list[str] = []
    space = False
    for tok in tokens:
        if tok == SPACE_MARK:
            space = bool(out)  # marks at the start or end are dropped, repeated ones give one
            continue
        if not tok:
            continue
        if out and (space or _joined_with_space(out[-1], tok)):
            out.append(" ")
        out.append(tok)
        space = False
    return "".join(out)


def spaced_chinese_tokens(pieces: Iterable[str]) -> list[str]:
    """A segmenter's pieces of one text (words and whitespace, in order) as tokens that
    :func:`join_chinese` joins back to exactly that text (single spaces, stripped ends, no
    ``▁`` in it).

    The joiner puts a space only between two Latin/digit words, so a space anywhere else
    (``Tom, Mary``, ``“谁？” “汤姆。”``) becomes a ``▁`` token, and a word the segmenter cut
    without a space (jieba's ``Bj|ö|rk``) is put back together. A text whose spaces all stand
    between Latin/digit words (most Chinese text) gets just the words.
    """
    out: list[str] = []
    spaced = False  # whitespace since the last word
    for piece in pieces:
        words = piece.split()
        if len(words) == 1 and len(words[0]) == len(piece):  # one word, jieba's usual piece
            _add_word(out, piece, spaced)
            spaced = False
        elif piece:  # whitespace, or (not from jieba) words with whitespace in or around them
            spaced = spaced or piece[0].isspace()
            for i, word in enumerate(words):
                _add_word(out, word, spaced or i > 0)
                spaced = False
            spaced = spaced or piece[-1].isspace()
    return out


def _add_word(out: list[str], word: str, spaced: bool) -> None:
    """Append ``word`` (after a space when ``spaced``) so that ``join_chinese(out)`` stays
    the text so far."""
    if not out or spaced == _joined_with_space(out[-1], word):  # the joiner restores the gap
        out.append(word)
    elif spaced:
        out += [SPACE_MARK, word]
    else:
        out[-1] += word


# --------------------------------------------------------------------------- jieba


# jieba's own user-dictionary syntax: "word [freq] [tag]", freq and tag optional.
_USER_DICT_LINE = re.compile(r"^(.+?)(?: ([0-9]+))?(?: ([a-z]+))?$")


@functools.lru_cache(maxsize=4)
def _jieba_instance(user_dict: str | None, stamp: tuple[int, int]) -> Any:
    """A ready jieba tokenizer; cached because loading the dictionary takes about a second.

    ``stamp`` (mtime, size of the user dictionary) makes an edited dictionary load afresh.
    """
    return _new_jieba(user_dict)


def _new_jieba(user_dict: str | None) -> Any:
    """A jieba tokenizer of the default dictionary and ``user_dict``, owned by the caller."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # otherwise "Building prefix dict..." on every start
    tok = jieba.Tokenizer()
    load_prefix_dict(tok)
    if user_dict is not None:
        for line in read_lines(user_dict):
            match = _USER_DICT_LINE.match(line.strip())
            if match is None:
                continue
            word, freq, tag = match.groups()
            tok.add_word(word, int(freq) if freq else None, tag)
    return tok


class JiebaTokenizer:
    """Chinese word segmentation with jieba (deterministic: dictionary + HMM, no sampling).

    Args:
        user_dict: optional jieba user dictionary (``word [freq] [tag]`` per line).
    """

    def __init__(self, user_dict: str | None = None) -> None:
        stamp = (0, 0)
        if user_dict is not None:
            try:
                st = os.stat(user_dict)
            except OSError:
                raise DataError(f"{user_dict}: jieba user dictionary not found") from None
            stamp = (st.st_mtime_ns, st.st_size)
        self._user_dict = user_dict
        self._tok = _jieba_instance(user_dict, stamp)

    def with_words(self, words: Iterable[str]) -> JiebaTokenizer:
        """A copy that also segments each of ``words`` as one word (a glossary's source
        terms); this tokenizer, and every other one of the same dictionary, is left as it is
        (they share one cached jieba instance)."""
        extended = copy.copy(self)
        extended._tok = _new_jieba(self._user_dict)
        for word in words:
            extended._tok.add_word(word)  # jieba's suggested frequency: enough to be cut as one
        return extended

    def tokenize(self, text: str) -> list[str]:
        return spaced_chinese_tokens(self._tok.cut(text, HMM=True))

    def detokenize(self, tokens: Sequence[str]) -> str:
        return join_chinese(tokens)


# --------------------------------------------------------------------------- simple ones


class CharTokenizer:
    """One token per character; spaces become ``▁`` so that detokenizing is exact."""

    def tokenize(self, text: str) -> list[str]:
        return [SPACE_MARK if c == " " else c for c in text if not c.isspace() or c == " "]

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens).replace(SPACE_MARK, " ").strip()


class SpaceTokenizer:
    """Whitespace splitting, for corpora that are already tokenized."""

    def __init__(self, lang: Lang = "en") -> None:
        self.lang = lang

    def tokenize(self, text: str) -> list[str]:
        return text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        return join_chinese(tokens) if self.lang == "zh" else " ".join(tokens)


# Clock times stay one token: Moses splits "7:30" into "7 : 30" and detokenizes "7: 30".
_MOSES_PROTECTED = [r"\d{1,2}:\d{2}(?::\d{2})?"]


class MosesTokenizer:
    """sacremoses tokenizer with its matching detokenizer."""

    def __init__(self, lang: Lang = "en") -> None:
        from sacremoses import MosesDetokenizer
        from sacremoses import MosesTokenizer as _Moses

        self.lang = lang
        self._tok = _Moses(lang=lang)
        self._detok = MosesDetokenizer(lang=lang)

    def tokenize(self, text: str) -> list[str]:
        tokens = self._tok.tokenize(text, escape=False, protected_patterns=_MOSES_PROTECTED)
        return [t for t in tokens if t.strip()]

    def detokenize(self, tokens: Sequence[str]) -> str:
        text = self._detok.detokenize(list(tokens))
        return text if isinstance(text, str) else " ".join(text)


# --------------------------------------------------------------------------- sentencepiece


class SentencePieceTokenizer:
    """Subwords from a trained sentencepiece model (see :func:`train_sentencepiece`)."""

    def __init__(self, model_path: str | Path) -> None:
        import sentencepiece as spm

        if not Path(model_path).is_file():
            raise DataError(f"{model_path}: sentencepiece model not found; run nmt build-vocab")
        try:
            self._sp = spm.SentencePieceProcessor(model_file=str(model_path))
        except (OSError, RuntimeError) as e:
            raise DataError(f"{model_path}: not a sentencepiece model: {e}") from None

    def tokenize(self, text: str) -> list[str]:
        return [p for p in self._sp.encode(text, out_type=str) if p]

    def sample(self, text: str, alpha: float) -> list[str]:
        """One segmentation of ``text`` drawn at random (subword regularisation): a bpe model
        drops each merge with probability ``alpha`` (BPE-dropout), a unigram model samples
        from all segmentations with smoothing ``alpha``; ``alpha`` 0 with bpe is
        :meth:`tokenize`. The draw comes from sentencepiece's generator: seeding it with
        ``sentencepiece.set_random_generator_seed`` repeats the draws within this process
        (another process draws differently from the same seed).
        """
        pieces = self._sp.encode(text, out_type=str, enable_sampling=True, alpha=alpha,
                                 nbest_size=-1, num_threads=1)  # fmt: skip
        return [p for p in pieces if p]

    def detokenize(self, tokens: Sequence[str]) -> str:
        # The pieces concatenate to the text (identity normalization, see training), with "▁"
        # for spaces; joining by hand also keeps pieces that the model does not know, such as
        # "<unk>", which sentencepiece's own decoder would print as " ⁇ ".
        return "".join(tokens).replace(SPACE_MARK, " ").strip()


def train_sentencepiece(
    texts: Sequence[str],
    model_path: str | Path,
    *,
    model_type: str = "bpe",
    vocab_size: int = 8000,
    character_coverage: float = 1.0,
    seed: int = 1234,
    threads: int = 1,
) -> None:
    """Train a sentencepiece model on ``texts`` and write it atomically to ``model_path``.

    Deterministic (byte-identical files for the same input and thread count: the model
    depends on ``threads``): no input shuffling or sampling (callers pass a sample), a fixed
    seed. Identity normalization, because the texts are already
    normalized and the pieces must concatenate back to them exactly. ``vocab_size`` is an
    upper bound (``hard_vocab_limit=False``) so small corpora still train.

    Raises:
        DataError: sentencepiece refuses the input (e.g. no text, vocabulary size too small).
    """
    import sentencepiece as spm

    if not texts:
        raise DataError("cannot train sentencepiece on an empty corpus")
    spm.set_random_generator_seed(seed)
    buffer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=buffer,
            model_type=model_type,
            vocab_size=vocab_size,
            character_coverage=character_coverage,
            num_threads=threads,
            shuffle_input_sentence=False,
            input_sentence_size=0,
            hard_vocab_limit=False,
            normalization_rule_name="identity",
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            unk_id=0,
            minloglevel=2,
        )
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        first = first.split("] ", 1)[-1]  # drop "INTERNAL: src/trainer.cc(638) [condition]"
        raise DataError(
            f"sentencepiece training failed ({model_type}, vocab size {vocab_size}): {first}"
        ) from None
    atomic_write_bytes(model_path, buffer.getvalue())


# --------------------------------------------------------------------------- registry


Builder = Callable[[TokenizerConfig, Lang, Path | None], Tokenizer]


@dataclass(frozen=True)
class TokenizerKind:
    """What the rest of the code asks of one tokenizer type, declared once in :data:`TOKENIZERS`.

    Attributes:
        build: the tokenizer for one side's settings, that side's language and its trained
            model file (None for kinds without ``trained_model``).
        trained_model: ``nmt build-vocab`` trains a sentencepiece model for a side of this kind
            (``RUN_DIR/vocab/*.spm.model``); the tokenizer cannot be built without it.
        keeps_spaces: spaces in the text separate words (pre-tokenized corpora), so the Chinese
            normalizer keeps those next to Chinese characters.
        word_start: what a token that begins a word starts with (sentencepiece's ``▁``; the
            other kinds mark nothing), see :meth:`as_token`.
    """

    build: Builder
    trained_model: bool = False
    keeps_spaces: bool = False
    word_start: str = ""

    def as_token(self, word: str) -> str:
        """A word (no marks) spelled as a token of this kind, e.g. a source word copied into
        the output for ``<unk>``: without sentencepiece's mark it would glue to the left."""
        return self.word_start + word


def _build_sentencepiece(tok_cfg: TokenizerConfig, lang: Lang, model: Path | None) -> Tokenizer:
    if model is None:
        raise ConfigError("sentencepiece tokenizer needs a trained model; run nmt build-vocab")
    return SentencePieceTokenizer(model)


# Adding a tokenizer: its class above, its entry here, its name in nmt.config.TokenizerType
# (the config schema, which cannot import this module; a test keeps the two equal).
TOKENIZERS: dict[str, TokenizerKind] = {
    "jieba": TokenizerKind(lambda tok_cfg, lang, model: JiebaTokenizer(tok_cfg.user_dict)),
    "char": TokenizerKind(lambda tok_cfg, lang, model: CharTokenizer()),
    "moses": TokenizerKind(lambda tok_cfg, lang, model: MosesTokenizer(lang)),
    "space": TokenizerKind(lambda tok_cfg, lang, model: SpaceTokenizer(lang), keeps_spaces=True),
    "sentencepiece": TokenizerKind(_build_sentencepiece, trained_model=True,
                                   word_start=SPACE_MARK),
}


def tokenizer_kind(name: str) -> TokenizerKind:
    """The registered kind of a ``data.*_tokenizer.type``.

    Raises:
        ConfigError: no tokenizer of that name (the config schema normally catches it first).
    """
    kind = TOKENIZERS.get(name)
    if kind is None:
        raise ConfigError(f"unknown tokenizer type {name!r}; known: {', '.join(TOKENIZERS)}")
    return kind


def build_tokenizer(
    tok_cfg: TokenizerConfig, lang: Lang, sp_model: str | Path | None = None
) -> Tokenizer:
    """The tokenizer a config asks for.

    Args:
        tok_cfg: one side's tokenizer settings.
        lang: that side's language (Moses rules, how ``space`` tokens are joined).
        sp_model: the trained model file; required for kinds with ``trained_model``.

    Raises:
        ConfigError: unknown type, or a trained model needed but not given.
    """
    model = Path(sp_model) if sp_model is not None else None
    return tokenizer_kind(tok_cfg.type).build(tok_cfg, lang, model)
