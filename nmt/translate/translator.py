"""The Translator: run directory -> normalize, tokenize -> decode -> detokenize."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import torch

from nmt import perf
from nmt.checkpoint import checkpoint_for_decoding, load_weights, read_model_weights
from nmt.config import Config, DecodeConfig, decode_with, load_config
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.tokenize import SPACE_MARK
from nmt.decoding import Hypothesis
from nmt.errors import CheckpointError, ConfigError
from nmt.models.factory import build_model
from nmt.models.interface import Seq2Seq
from nmt.models.registry import model_kind, source_token_limit
from nmt.runtime import precision_name, select_device
from nmt.translate.postprocess import PreparedSource, finish
from nmt.translate.precision import prepare_precision
from nmt.translate.result import Translation
from nmt.translate.scheduling import decode_batches

__all__ = ["Translator"]

log = logging.getLogger(__name__)


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
        self._int8, self._dtype, self._autocast_dtype = prepare_precision(
            self.model, precision or config.train.precision, device
        )
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
        perf.apply()  # as the CLI does, before the first kernel runs
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
        perf.release_free_memory()  # the file's copy of the weights: ~1x the model's size
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
            finish(self.processor, p, nb, decode.replace_unk, with_attention)
            for p, nb in zip(prepared, nbests, strict=True)
        ]
        return results if return_details else [r.translation for r in results]

    def decode_config(self, **options: Any) -> DecodeConfig:
        """The run's decode config with the given (non-None) options, validated."""
        given = {k: v for k, v in options.items() if v is not None}
        if not given:
            return self.config.decode
        try:  # the rules of the config's decode section (nmt.config), nowhere else
            return decode_with(self.config.decode, given)
        except ConfigError as e:
            raise ConfigError(f"invalid decoding option: {e}") from None

    def _prepare(self, line_no: int, text: str) -> PreparedSource:
        tokens = self.processor.tokenize_src(text)
        limit = self.max_src_tokens
        truncated = len(tokens) > limit
        if truncated:
            log.warning("line %d: %d source tokens, more than the model takes (%d); "
                        "truncated to the first %d", line_no, len(tokens), limit, limit)
            tokens = tokens[:limit]
        return PreparedSource(text, tokens, self.processor.src_vocab.encode(tokens), truncated)

    def search_ids(
        self, sources: list[list[int]], decode: DecodeConfig, seed: int,
        need_attention: bool = False, progress: bool = False, use_cache: bool = True,
    ) -> list[list[Hypothesis]]:
        """Decode token ids (no </s>): the n-best lists in input order (``[]`` for ``[]``).

        What :meth:`translate` runs after tokenizing; ``use_cache`` is for benchmarks and tests
        (see :func:`~nmt.decoding.greedy.greedy_search`).
        """
        return decode_batches(
            self.model, sources, decode, seed, device=self.device,
            autocast_dtype=self._autocast_dtype, max_len_cap=self._max_len_cap,
            need_attention=need_attention, progress=progress, use_cache=use_cache,
        )

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

