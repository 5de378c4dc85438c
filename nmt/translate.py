"""The Translator: run directory -> normalize, tokenize -> decode -> detokenize.

``nmt translate`` (arguments, files, stdin, the prompt), ``nmt evaluate --model`` and the Python
API all go through :meth:`Translator.translate`, so they never disagree::

    from nmt import Translator

    translator = Translator.load("runs/quickstart", device="cpu")
    translator.translate(["我喜欢茶。", ""], strategy="greedy")   # -> ["I like tea.", ""]

Input policy: exactly one output per input, in input order. A sentence with no tokens after
normalization (empty, whitespace or control characters only) gives ``""`` without reaching the
model. A sentence longer than the model takes is truncated to its first tokens, with a warning
naming the line; it is never dropped. Sentences are decoded longest first in batches of
similar length and put back in input order.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, overload

import torch
from torch import Tensor

from nmt.checkpoint import checkpoint_for_decoding, load_weights, read_model_weights
from nmt.config import Config, DecodeConfig, config_from_dict, config_to_dict, load_config
from nmt.datautil.batching import collate_src
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.tokenize import SPACE_MARK
from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.decoding import Hypothesis, search
from nmt.decoding.batches import length_sorted_batches
from nmt.errors import CheckpointError, ConfigError
from nmt.models.factory import build_model
from nmt.models.int8 import quantize_linears
from nmt.models.interface import Seq2Seq
from nmt.models.registry import model_kind, source_token_limit
from nmt.runtime import (
    autocast,
    precision_name,
    release_free_memory,
    resolve_precision,
    select_device,
    torch_threads,
)

__all__ = ["NBestEntry", "Translation", "Translator"]

log = logging.getLogger(__name__)

_NEWLINES = str.maketrans({"\n": " ", "\r": " "})  # one output line per input, always
_FEW_SENTENCES = 4  # translate() calls with at most this many decode on one CPU thread
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def _batch_seed(seed: int, index: int) -> int:
    """The sampling seed of batch ``index`` of a call with ``seed`` (batch 0 keeps ``seed``)."""
    return (seed + index * 0x9E3779B97F4A7C15) % 2**64  # a large odd step: no nearby overlaps


class NBestEntry(NamedTuple):
    """One hypothesis of an n-best list (a tuple ``(translation, score, norm_score, tokens)``)."""

    translation: str
    score: float  # summed log-probability
    norm_score: float  # score / GNMT length penalty; the ranking key
    tokens: list[str]  # target tokens as the model produced them (<unk> not replaced)


@dataclass(frozen=True)
class Translation:
    """A translated sentence with its details.

    Attributes:
        source: the input as given.
        translation: the best hypothesis as plain text (``nbest[0].translation``).
        score, norm_score: of the best hypothesis; 0.0 for an empty input.
        nbest: best first; one entry for greedy/sampling (and for an empty input).
        src_tokens: the source tokens the model read (after normalization and truncation).
        tokens: the best hypothesis' target tokens.
        attention: ``(len(tokens), len(src_tokens))`` float32 when requested, else None.
        truncated: the source was longer than the model takes and was cut.
    """

    source: str
    translation: str
    score: float
    norm_score: float
    nbest: list[NBestEntry]
    src_tokens: list[str]
    tokens: list[str]
    attention: Tensor | None = None
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``nmt translate --format jsonl`` (non-finite scores -> null)."""
        return {
            "source": self.source,
            "translation": self.translation,
            "score": _finite(self.score),
            "norm_score": _finite(self.norm_score),
            "nbest": [
                {"translation": e.translation, "score": _finite(e.score),
                 "norm_score": _finite(e.norm_score), "tokens": e.tokens}
                for e in self.nbest
            ],
            "src_tokens": self.src_tokens,
            "tokens": self.tokens,
            **({"truncated": True} if self.truncated else {}),
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class _Prepared:
    source: str
    tokens: list[str]
    ids: list[int]
    truncated: bool


class Translator:
    """A trained model with its text processing; build it with :meth:`load`."""

    def __init__(
        self, config: Config, processor: TextProcessor, model: Seq2Seq, device: torch.device,
        precision: str | None = None,
    ) -> None:
        self.config = config
        self.processor = processor
        self.model = model.to(device).eval()
        self.device = device
        if precision is not None and precision not in PRECISIONS:
            raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, "
                              f"got {precision!r}")  # fmt: skip
        self._int8 = precision == "int8"
        if self._int8:  # refused off the CPU
            quantize_linears(self.model)  # fp32 arithmetic around int8 matrix products
            release_free_memory()  # the fp32 weights it replaced
        self._dtype = resolve_precision(
            "fp32" if self._int8 else precision or config.train.precision, device
        )
        # bf16 decoding casts the weights once instead of running under autocast, which casts
        # every weight matrix again at every step: on a 2-core CPU with native bf16, greedy
        # search of the cmn-eng test set ran 1.37x and beam search 1.10x faster than under
        # autocast, with the same test BLEU (docs/performance.md). fp16 keeps autocast: its
        # range is too narrow for a residual stream kept in fp16.
        self._autocast_dtype = self._dtype
        if self._dtype == torch.bfloat16:
            self.model.to(torch.bfloat16)
            self._autocast_dtype = None
            if device.type == "cpu":
                release_free_memory()  # the fp32 copy
        # Longer sources are truncated (see nmt.decoding.batches), as validation does.
        self.max_src_tokens = source_token_limit(config.model, config.data.max_len)
        self._max_len_cap = model_kind(config.model).position_limit(config.model)

    @property
    def precision(self) -> str:
        """The arithmetic decoding runs in: ``fp32``, ``bf16`` (bf16 weights), ``fp16``
        (autocast) or ``int8`` (int8 matrix products, fp32 elsewhere; CPU)."""
        return "int8" if self._int8 else precision_name(self._dtype)

    @classmethod
    def load(
        cls, run_dir: str | Path, device: str = "auto", checkpoint: str | Path = "best",
        precision: str | None = None,
    ) -> Translator:
        """Load the run in ``run_dir`` (its config.yaml, vocabularies and a checkpoint).

        Args:
            device: auto, cpu, cuda, cuda:N or mps.
            checkpoint: ``best`` (falls back to ``latest`` when the run has no best yet),
                ``latest``, the name of a checkpoint in ``RUN_DIR/checkpoints`` (e.g.
                ``averaged``, written by ``nmt average``), or a checkpoint directory.
            precision: auto, fp32, bf16, fp16 (GPU) or int8 (CPU, see
                :mod:`nmt.models.int8`) arithmetic for decoding; None: the run's
                ``train.precision``.

        Raises:
            CheckpointError: the run directory, its config, vocabulary or weights are missing,
                unsafe or do not fit together.
        """
        run = Path(run_dir)
        if not run.is_dir():
            raise CheckpointError(f"{run}: no such run directory")
        config_path = run / "config.yaml"
        if not config_path.is_file():
            raise CheckpointError(f"{run}: no config.yaml; expected a run directory of 'nmt train'")
        cfg = load_config(config_path)
        processor = TextProcessor.load(run, cfg.data)
        ckpt = checkpoint_for_decoding(run, checkpoint)
        model = build_model(  # every weight comes from the checkpoint: no init
            cfg.model, len(processor.src_vocab), len(processor.tgt_vocab), processor.joint,
            initialize=False,
        )
        tensors = read_model_weights(ckpt)  # safetensors only, every weight finite
        load_weights(model, tensors, ckpt)
        del tensors
        release_free_memory()  # the file's copy of the weights: ~1x the model's size
        log.debug("loaded %s", ckpt)
        return cls(cfg, processor, model, select_device(device), precision)

    # ------------------------------------------------------------------ translate

    # The overloads only tell type checkers what return_details selects.
    @overload
    def translate(
        self, sentences: Sequence[str], strategy: str | None = ..., beam_size: int | None = ...,
        n_best: int | None = ..., length_penalty: float | None = ...,
        temperature: float | None = ..., top_k: int | None = ..., top_p: float | None = ...,
        seed: int | None = ..., max_len_a: float | None = ..., max_len_b: int | None = ...,
        batch_size: int | None = ..., replace_unk: bool | None = ...,
        return_details: Literal[False] = ..., with_attention: bool = ..., progress: bool = ...,
    ) -> list[str]: ...
    @overload
    def translate(
        self, sentences: Sequence[str], strategy: str | None = ..., beam_size: int | None = ...,
        n_best: int | None = ..., length_penalty: float | None = ...,
        temperature: float | None = ..., top_k: int | None = ..., top_p: float | None = ...,
        seed: int | None = ..., max_len_a: float | None = ..., max_len_b: int | None = ...,
        batch_size: int | None = ..., replace_unk: bool | None = ..., *,
        return_details: Literal[True], with_attention: bool = ..., progress: bool = ...,
    ) -> list[Translation]: ...
    def translate(
        self, sentences: Sequence[str], strategy: str | None = None,
        beam_size: int | None = None, n_best: int | None = None,
        length_penalty: float | None = None, temperature: float | None = None,
        top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
        max_len_a: float | None = None, max_len_b: int | None = None,
        batch_size: int | None = None, replace_unk: bool | None = None,
        return_details: bool = False, with_attention: bool = False, progress: bool = False,
    ) -> list[str] | list[Translation]:
        """Translate ``sentences``: one result per input, in input order.

        Decoding options left as None take the run's ``decode`` defaults (the sampling
        ``seed`` defaults to the run's seed); they are validated like config keys.

        Returns:
            Plain translations, or with ``return_details`` a :class:`Translation` per input
            (with its attention matrix when ``with_attention``).

        Raises:
            ConfigError: an option is invalid (the message names it).
        """
        if isinstance(sentences, str):
            raise TypeError("translate() takes a list of sentences, not one string")
        decode = self.decode_config(
            strategy=strategy, beam_size=beam_size, n_best=n_best, length_penalty=length_penalty,
            temperature=temperature, top_k=top_k, top_p=top_p, max_len_a=max_len_a,
            max_len_b=max_len_b, batch_size=batch_size, replace_unk=replace_unk,
        )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"seed: expected an integer, got {seed!r}")
        prepared = [self._prepare(i + 1, text) for i, text in enumerate(sentences)]
        need_attention = decode.replace_unk or with_attention
        nbests = self.search_ids([p.ids for p in prepared], decode,
                                 self.config.seed if seed is None else seed, need_attention,
                                 progress)
        results = [
            self._finish(p, nb, decode.replace_unk, with_attention)
            for p, nb in zip(prepared, nbests, strict=True)
        ]
        return results if return_details else [r.translation for r in results]

    def decode_config(self, **options: Any) -> DecodeConfig:
        """The run's decode config with the given (non-None) options, validated."""
        given = {k: v for k, v in options.items() if v is not None}
        if not given:
            return self.config.decode
        raw = config_to_dict(self.config)
        raw["decode"].update(given)
        try:
            decode = config_from_dict(raw).decode
        except ConfigError as e:
            raise ConfigError(f"invalid decoding option: {e}") from None
        if not math.isfinite(decode.max_len_a) or decode.max_len_a < 0:
            raise ConfigError(f"invalid decoding option: decode.max_len_a: must be >= 0, "
                              f"got {decode.max_len_a}")
        return decode

    def _prepare(self, line_no: int, text: str) -> _Prepared:
        tokens = self.processor.tokenize_src(text)
        limit = self.max_src_tokens
        truncated = len(tokens) > limit
        if truncated:
            log.warning("line %d: %d source tokens, more than the model takes (%d); "
                        "truncated to the first %d", line_no, len(tokens), limit, limit)
            tokens = tokens[:limit]
        return _Prepared(text, tokens, self.processor.src_vocab.encode(tokens), truncated)

    def search_ids(
        self, sources: list[list[int]], decode: DecodeConfig, seed: int,
        need_attention: bool = False, progress: bool = False, use_cache: bool = True,
    ) -> list[list[Hypothesis]]:
        """Decode token ids (no </s>): the n-best lists in input order (``[]`` for ``[]``).

        What :meth:`translate` runs after tokenizing; ``use_cache`` is for benchmarks and tests
        (see :func:`~nmt.decoding.greedy.greedy_search`).
        """
        from concurrent.futures import ThreadPoolExecutor

        from tqdm import tqdm

        nbests: list[list[Hypothesis]] = [[] for _ in sources]
        batches = length_sorted_batches([len(ids) for ids in sources], decode.batch_size)
        n_sentences = sum(len(b) for b in batches)
        workers = self._decode_workers(len(batches))
        bar = tqdm(total=n_sentences, unit="sent", file=sys.stderr, disable=not progress,
                   dynamic_ncols=True, leave=False)

        def run(index: int) -> None:
            chunk = batches[index]
            src, src_mask = collate_src([sources[i] for i in chunk])
            # Each batch samples from its own stream, so samples do not depend on how many
            # batches run at once. Inference mode and autocast are per thread: entered here.
            generator = torch.Generator(self.device).manual_seed(_batch_seed(seed, index))
            with torch.inference_mode(), autocast(self.device, self._autocast_dtype):
                result = search(
                    self.model, src.to(self.device), src_mask.to(self.device), decode,
                    generator=generator, max_len_cap=self._max_len_cap,
                    need_attention=need_attention, use_cache=use_cache,
                )
            for i, hyps in zip(chunk, result, strict=True):
                nbests[i] = hyps
            bar.update(len(chunk))
            if self.device.type == "cpu":  # batches differ in shape: keep the heap small
                release_free_memory()

        # A few sentences decode fastest on one thread (see torch_threads); so do concurrent
        # batches, each on its own thread; other jobs keep the process's setting.
        few = self.device.type == "cpu" and n_sentences <= _FEW_SENTENCES
        with bar, torch_threads(1 if few or workers > 1 else 0):
            if workers == 1:
                for index in range(len(batches)):
                    run(index)
            else:
                with ThreadPoolExecutor(workers, thread_name_prefix="nmt-decode") as pool:
                    # Re-raises a batch's error; the batches not yet started are then dropped.
                    for _ in pool.map(run, range(len(batches))):
                        pass
        return nbests

    def _decode_workers(self, n_batches: int) -> int:
        """How many batches decode at once: on a CPU one per intra-op thread, else one.

        A decoding step is a chain of small operations (64-320 rows), which split badly over
        threads: on 2 cores, greedy search of the cmn-eng test set at batch 64 ran 1.1x faster
        on 2 threads than on 1, while two batches at once, one thread each, ran 1.4x faster
        (beam 5: 1.2x); the interpreter work of one batch overlaps the other's arithmetic
        (docs/performance.md).
        """
        if self.device.type != "cpu" or n_batches < 2:
            return 1
        return max(1, min(torch.get_num_threads(), n_batches))

    def _finish(
        self, prep: _Prepared, hyps: list[Hypothesis], replace_unk: bool, with_attention: bool
    ) -> Translation:
        if not hyps:  # nothing to translate
            empty = NBestEntry("", 0.0, 0.0, [])
            attn = torch.zeros(0, 0) if with_attention else None
            return Translation(prep.source, "", 0.0, 0.0, [empty], [], [], attn, prep.truncated)
        n_src = len(prep.tokens)
        nbest = [
            NBestEntry(self._text(h, prep.tokens, replace_unk), h.score, h.norm_score,
                       self.processor.tgt_vocab.decode(h.tokens, strip_special=False))
            for h in hyps
        ]
        best = hyps[0]
        # Columns: the real source tokens (the search also reports the appended </s>).
        attn = best.attention[:, :n_src] if with_attention and best.attention is not None else None
        return Translation(prep.source, nbest[0].translation, best.score, best.norm_score, nbest,
                           list(prep.tokens), nbest[0].tokens, attn, prep.truncated)

    def _text(self, hyp: Hypothesis, src_tokens: list[str], replace_unk: bool) -> str:
        """Plain text of a hypothesis: specials dropped, <unk> replaced when asked."""
        vocab = self.processor.tgt_vocab
        tokens: list[str] = []
        for step, index in enumerate(hyp.tokens):
            if index == EOS_ID:
                break
            if index in (PAD_ID, BOS_ID):  # the searches never emit these; never show them
                continue
            if index == UNK_ID and replace_unk and hyp.attention is not None:
                # Most-attended real source token (the last column is the source's </s>).
                source = src_tokens[int(hyp.attention[step, : len(src_tokens)].argmax())]
                tokens.append(self._as_target_token(source))
            else:
                tokens.append(vocab.id_to_token(index))
        return self.processor.detokenize_tgt(tokens).translate(_NEWLINES)

    def _as_target_token(self, source_token: str) -> str:
        """A source token in surface form, spelled as a target token of this run."""
        surface = source_token.replace(SPACE_MARK, "") or source_token
        # Sentencepiece marks the start of a word; without the mark it would glue to the left.
        if self.config.data.tgt_tokenizer.type == "sentencepiece":
            return SPACE_MARK + surface
        return surface

    def plot_attention(self, translation: Translation, path: str | Path) -> Path:
        """Write the attention heatmap of a translation made ``with_attention`` (PNG)."""
        from nmt.attention_plot import plot_attention

        if translation.attention is None:
            raise ValueError("translate(..., with_attention=True) first: this has no attention")
        n_src = len(translation.src_tokens)
        src_labels = self.processor.src_tokens_for_display(translation.source)[:n_src]
        tgt_labels = [t.replace(SPACE_MARK, "") or SPACE_MARK for t in translation.tokens]
        return plot_attention(src_labels, tgt_labels, translation.attention, path,
                              title=translation.translation)

