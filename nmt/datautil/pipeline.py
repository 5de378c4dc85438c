"""The one pre/post-processing path: text -> normalized -> tokens -> ids, and ids -> text.

Training, ``translate`` and ``evaluate`` all go through :class:`TextProcessor`, built from a
run directory, so a sentence is processed exactly as the vocabulary was built. Every method
takes raw text: normalization is idempotent, so already-normalized text is unchanged by it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from nmt.config import DataConfig
from nmt.datautil.directions import reversed_data, target_tag
from nmt.datautil.normalize import Normalizer, normalizer_for
from nmt.datautil.tokenize import SPACE_MARK, Tokenizer, build_tokenizer, tokenizer_kind
from nmt.datautil.vocab import Vocabulary
from nmt.datautil.zh_script import (
    OutputScript,
    Script,
    convert_zh_output,
    source_converter,
    vocab_script,
)
from nmt.errors import CheckpointError, ConfigError

VOCAB_DIR = "vocab"
# Present while build-vocab writes the directory; left behind by an interrupted build.
INCOMPLETE_MARK = ".incomplete"


@dataclass(frozen=True)
class VocabLayout:
    """Where a run keeps its vocabularies and sentencepiece models (``RUN_DIR/vocab/``)."""

    directory: Path
    joint: bool
    src_vocab: Path
    tgt_vocab: Path
    src_spm: Path | None
    tgt_spm: Path | None

    @property
    def spm_paths(self) -> tuple[str | None, str | None]:
        """The sentencepiece model of each side as a string (None where it uses none)."""
        return (str(self.src_spm) if self.src_spm else None,
                str(self.tgt_spm) if self.tgt_spm else None)

    @property
    def joint_spm(self) -> bool:
        """One sentencepiece model serves both sides."""
        return self.src_spm is not None and self.src_spm == self.tgt_spm


def vocab_layout(run_dir: str | Path, data_cfg: DataConfig) -> VocabLayout:
    """The file names for a config: ``joint.vocab`` or ``src.vocab``/``tgt.vocab``, and
    ``joint.spm.model`` (joint vocabulary with sentencepiece on both sides) or
    ``src.spm.model``/``tgt.spm.model``."""
    d = Path(run_dir) / VOCAB_DIR
    joint = data_cfg.joint_vocab
    src_sp = tokenizer_kind(data_cfg.src_tokenizer.type).trained_model
    tgt_sp = tokenizer_kind(data_cfg.tgt_tokenizer.type).trained_model
    src_spm: Path | None
    tgt_spm: Path | None
    if joint and src_sp and tgt_sp:
        src_spm = tgt_spm = d / "joint.spm.model"
    else:
        src_spm = d / "src.spm.model" if src_sp else None
        tgt_spm = d / "tgt.spm.model" if tgt_sp else None
    return VocabLayout(
        directory=d,
        joint=joint,
        src_vocab=d / ("joint.vocab" if joint else "src.vocab"),
        tgt_vocab=d / ("joint.vocab" if joint else "tgt.vocab"),
        src_spm=src_spm,
        tgt_spm=tgt_spm,
    )


class TextProcessor:
    """Normalizers, tokenizers and vocabularies of both sides of one run.

    Attributes:
        src_vocab, tgt_vocab: the vocabularies (the same object when ``joint``).
        joint: one vocabulary is shared by both sides.
        source_tag: the target-language tag every source starts with (a both-directions
            run, :mod:`nmt.datautil.directions`), or None.
    """

    def __init__(
        self,
        data_cfg: DataConfig,
        src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer,
        src_vocab: Vocabulary,
        tgt_vocab: Vocabulary,
    ) -> None:
        self.data_cfg = data_cfg
        self.src_normalizer: Normalizer = normalizer_for(data_cfg, "src")
        self.tgt_normalizer: Normalizer = normalizer_for(data_cfg, "tgt")
        self.src_tokenizer = src_tokenizer
        self.tgt_tokenizer = tgt_tokenizer
        self.src_vocab = src_vocab
        self.tgt_vocab = tgt_vocab
        self.joint = data_cfg.joint_vocab
        self.source_tag = target_tag(data_cfg)
        if self.source_tag is not None and self.source_tag not in src_vocab:
            raise CheckpointError(f"the vocabulary has no {self.source_tag} tag, which "
                                  "data.directions: both needs; run 'nmt build-vocab' again")

    @classmethod
    def load(cls, run_dir: str | Path, data_cfg: DataConfig) -> TextProcessor:
        """Read ``RUN_DIR/vocab/`` as written by ``nmt build-vocab`` for this ``data_cfg``.

        Raises:
            CheckpointError: a vocabulary or sentencepiece model is missing.
            DataError: a file is there but malformed.
        """
        layout = vocab_layout(run_dir, data_cfg)
        if (layout.directory / INCOMPLETE_MARK).exists():
            raise CheckpointError(
                f"{layout.directory}: an earlier nmt build-vocab did not finish; run it again"
            )
        needed = [layout.src_vocab, layout.tgt_vocab, layout.src_spm, layout.tgt_spm]
        for path in needed:
            if path is not None and not path.is_file():
                raise CheckpointError(
                    f"{path} not found; run 'nmt build-vocab' with this config first"
                )
        src_vocab = Vocabulary.load(layout.src_vocab)
        tgt_vocab = src_vocab if layout.joint else Vocabulary.load(layout.tgt_vocab)
        src_tok = build_tokenizer(data_cfg.src_tokenizer, data_cfg.src_lang, layout.src_spm)
        tgt_tok = build_tokenizer(data_cfg.tgt_tokenizer, data_cfg.tgt_lang, layout.tgt_spm)
        return cls(data_cfg, src_tok, tgt_tok, src_vocab, tgt_vocab)

    def reversed(self) -> TextProcessor:
        """The processor of the other direction of a both-directions run: sides, tokenizers
        and normalizers swapped, the other language's tag (the same vocabulary).

        Raises:
            ConfigError: the run has one direction only.
        """
        if self.data_cfg.directions != "both":
            raise ConfigError(f"the model translates {self.data_cfg.src_lang}->"
                              f"{self.data_cfg.tgt_lang} only (data.directions: one)")
        return TextProcessor(reversed_data(self.data_cfg), self.tgt_tokenizer,
                             self.src_tokenizer, self.tgt_vocab, self.src_vocab)  # fmt: skip

    # ------------------------------------------------------------------ source side

    def normalize_src(self, text: str) -> str:
        return self.src_normalizer(text)

    @cached_property
    def _src_script(self) -> Callable[[str], str] | None:
        # Detecting the vocabulary's script reads all of it: once per processor, on first use.
        return source_converter(self.data_cfg, self.src_vocab)

    def prepare_src(self, text: str) -> str:
        """Normalized source sentence in the script the model reads (``data.zh_script``).

        The training corpus does not come through here (build-vocab and the token cache
        tokenize it in :mod:`nmt.datautil.stream`), so its script is left as it is.
        """
        normalized = self.src_normalizer(text)
        convert = self._src_script
        return normalized if convert is None else convert(normalized)

    def tokenize_src(self, text: str) -> list[str]:
        """Normalized, converted (:meth:`prepare_src`), tokenized source sentence: the tokens
        the model reads, starting with the direction tag in a both-directions run (so every
        path from text to source ids, the CTranslate2 engine's included, has it); an empty
        sentence stays empty (nothing to translate)."""
        tokens = self._segment_src(text)
        return [self.source_tag, *tokens] if self.source_tag and tokens else tokens

    def _segment_src(self, text: str) -> list[str]:
        """The source sentence's words or pieces, without a tag.

        A bare ``▁`` (a space the joiner would not restore, see
        :func:`~nmt.datautil.tokenize.spaced_chinese_tokens`) is dropped when the source
        vocabulary lacks it: a run whose vocabulary was built before jieba kept such spaces
        would read it as ``<unk>``, where its tokenizer then produced nothing.
        """
        tokens = self.src_tokenizer.tokenize(self.prepare_src(text))
        if self._src_knows_space_mark:
            return tokens
        return [t for t in tokens if t != SPACE_MARK]

    @cached_property
    def _src_knows_space_mark(self) -> bool:
        return SPACE_MARK in self.src_vocab

    def with_source_words(self, terms: Iterable[str]) -> TextProcessor:
        """A processor whose source tokenizer also cuts each of ``terms`` as one word, for the
        terms it can: those the source vocabulary has as one token, when the tokenizer takes
        extra words (jieba). Others keep their segmentation: one token that the vocabulary
        lacks would read as ``<unk>``, where the pieces carry meaning. Returns ``self`` when
        nothing changes; this processor itself is never changed.
        """
        add = getattr(self.src_tokenizer, "with_words", None)
        if add is None:
            return self
        words = []
        for term in terms:
            word = self.prepare_src(term)
            if word in self.src_vocab and self._segment_src(word) != [word]:
                words.append(word)
        if not words:
            return self
        glossary_processor = copy.copy(self)  # shares vocabularies, normalizers, target side
        glossary_processor.src_tokenizer = add(words)
        return glossary_processor

    def encode_src(self, text: str) -> list[int]:
        """Source ids, without ``<s>``/``</s>`` (models add what they need)."""
        return self.src_vocab.encode(self.tokenize_src(text))

    def src_tokens_for_display(self, text: str) -> list[str]:
        """Source tokens as labels for attention plots: one per id of :meth:`encode_src`.

        Sentencepiece/char word-boundary marks are dropped (a bare mark stays visible), and
        tokens outside the vocabulary are shown as ``<unk>:token``.
        """
        labels = []
        for tok in self.tokenize_src(text):
            label = tok.replace(SPACE_MARK, "") or SPACE_MARK
            labels.append(label if tok in self.src_vocab else f"<unk>:{label}")
        return labels

    # ------------------------------------------------------------------ target side

    def normalize_tgt(self, text: str) -> str:
        return self.tgt_normalizer(text)

    def tokenize_tgt(self, text: str) -> list[str]:
        """Normalized, tokenized target sentence."""
        return self.tgt_tokenizer.tokenize(self.tgt_normalizer(text))

    def encode_tgt(self, text: str) -> list[int]:
        """Target ids, without ``<s>``/``</s>``."""
        return self.tgt_vocab.encode(self.tokenize_tgt(text))

    def tgt_tokens(self, ids: Iterable[int]) -> list[str]:
        """Target tokens for model output ids: stops at ``</s>``, drops ``<pad>``/``<s>``."""
        return self.tgt_vocab.decode(ids, strip_special=True)

    def detokenize_tgt(self, tokens: Sequence[str]) -> str:
        return self.tgt_tokenizer.detokenize(tokens)

    def source_token_as_target(self, source_token: str) -> str:
        """A source token in surface form, spelled as a target token of this run (a source
        word copied into the output in place of ``<unk>``)."""
        word = source_token.replace(SPACE_MARK, "") or source_token
        return tokenizer_kind(self.data_cfg.tgt_tokenizer.type).as_token(word)

    @cached_property
    def tgt_script(self) -> Script:
        """The script of the target vocabulary's Chinese (Simplified when it has none)."""
        return vocab_script(self.tgt_vocab) or "hans"

    def convert_tgt_script(self, text: str, script: OutputScript) -> str:
        """Chinese output text, written in :attr:`tgt_script`, converted to ``script``."""
        return convert_zh_output(text, script, self.tgt_script)

    def decode_tgt(self, ids: Iterable[int]) -> str:
        """Plain target text for model output ids (specials stripped, ``<unk>`` kept)."""
        return self.detokenize_tgt(self.tgt_tokens(ids))
