"""The Translator: run directory -> normalize, tokenize -> decode -> detokenize."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import torch

from nmt import perf
from nmt.checkpoint import checkpoint_for_decoding, load_weights, read_model_weights
from nmt.config import Config, DecodeConfig, load_config
from nmt.datautil.directions import config_toward
from nmt.datautil.glossary import Glossary
from nmt.datautil.pipeline import VOCAB_DIR, TextProcessor
from nmt.datautil.vocab import UNK_ID
from nmt.decoding import Hypothesis, build_processors
from nmt.errors import CheckpointError, ConfigError
from nmt.models.ensemble import Ensemble
from nmt.models.factory import build_model
from nmt.models.interface import Seq2Seq
from nmt.models.registry import model_kind, source_token_limit
from nmt.models.transformer import Transformer
from nmt.runtime import precision_name, select_device
from nmt.translate.postprocess import (
    PreparedSource,
    attention_labels,
    empty_translation,
    finish,
    plot_translation_attention,
)
from nmt.translate.precision import prepare_precision
from nmt.translate.result import Translation
from nmt.translate.scheduling import decode_batches
from nmt.translate.sources import call_options, check_call, prepare_source, target_word_ids
from nmt.translate.streaming import StreamingGreedy

if TYPE_CHECKING:
    from nmt.translate.ctranslate2_engine import CTranslate2Translator

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
        self._glossaries: dict[Glossary, _GlossaryPlan] = {}  # see _glossary_plan

    @property
    def precision(self) -> str:
        """The arithmetic decoding runs in: ``fp32``, ``bf16`` (bf16 weights), ``fp16``
        (autocast) or ``int8`` (int8 matrix products, fp32 elsewhere; CPU)."""
        return "int8" if self._int8 else precision_name(self._dtype)

    # The overloads only tell type checkers what engine selects.
    @overload
    @classmethod
    def load(
        cls, run_dir: str | Path, device: str = ..., checkpoint: str | Path = ...,
        precision: str | None = ..., engine: Literal["torch"] = ..., to: str | None = ...,
    ) -> Translator: ...
    @overload
    @classmethod
    def load(
        cls, run_dir: str | Path, device: str = ..., checkpoint: str | Path = ...,
        precision: str | None = ..., *, engine: Literal["ctranslate2"], to: None = ...,
    ) -> CTranslate2Translator: ...
    @classmethod
    def load(
        cls, run_dir: str | Path, device: str = "auto", checkpoint: str | Path = "best",
        precision: str | None = None, engine: Literal["torch", "ctranslate2"] = "torch",
        to: str | None = None,
    ) -> Translator | CTranslate2Translator:
        """Load the run in ``run_dir`` (its config.yaml, vocabularies and a checkpoint).

        Args:
            device: auto, cpu, cuda, cuda:N or mps.
            checkpoint: ``best`` (falls back to ``latest`` when the run has no best yet),
                ``latest``, the name of a checkpoint in ``RUN_DIR/checkpoints`` (e.g.
                ``averaged``, written by ``nmt average``), or a checkpoint directory. Several,
                comma-separated (``best,minute-25``, or other runs' checkpoint or run
                directories with the same vocabularies): an ensemble
                (:class:`~nmt.models.ensemble.Ensemble`), whose members' log-probabilities are
                averaged at every step.
            precision: auto, fp32, bf16, fp16 (GPU) or int8 (CPU, see
                :mod:`nmt.models.int8`) arithmetic for decoding; None: the run's
                ``train.precision``.
            to: the language to translate into (None: the run's ``data.tgt_lang``); the other
                one for a run trained with ``data.directions: both``.
            engine: ``ctranslate2``: ``run_dir`` is a directory written by ``nmt export --to
                ctranslate2``, decoded by CTranslate2 with this text processing (a
                :class:`~nmt.translate.ctranslate2_engine.CTranslate2Translator`; its
                checkpoint was chosen at export, and ``precision`` is its compute type).

        Raises:
            CheckpointError: the run directory, its config, vocabulary or weights are missing,
                unsafe or do not fit together.
            ConfigError: an unknown engine, a checkpoint named for an exported model, or a
                direction (``to``) the model was not trained for.
        """
        if engine == "ctranslate2":
            from nmt.translate.ctranslate2_engine import CTranslate2Translator

            return CTranslate2Translator.load(run_dir, device=device, precision=precision,
                                              checkpoint=str(checkpoint), to=to)  # fmt: skip
        if engine != "torch":
            raise ConfigError(f"engine: expected torch or ctranslate2, got {engine!r}")
        perf.apply()  # as the CLI does, before the first kernel runs
        run = Path(run_dir)
        if not run.is_dir():
            raise CheckpointError(f"{run}: no such run directory")
        config_path = run / "config.yaml"
        if not config_path.is_file():
            raise CheckpointError(f"{run}: no config.yaml; expected a run directory of 'nmt train'")
        cfg = load_config(config_path)
        processor = TextProcessor.load(run, cfg.data)
        toward = config_toward(cfg, to)
        if toward is not cfg:
            processor = processor.reversed()
        names = ensemble_members(checkpoint)
        models = [_load_member(run, cfg, processor, name) for name in names]
        model = models[0] if len(models) == 1 else Ensemble(models)
        return cls(toward, processor, model, select_device(device), precision)

    # ------------------------------------------------------------------ translate

    # The overloads only tell type checkers what return_details selects.
    @overload
    def translate(
        self, sentences: Sequence[str], options: DecodeConfig | Mapping[str, Any] | None = ...,
        *, prefixes: Sequence[str | None] | None = ..., glossary: Glossary | None = ...,
        seed: int | None = ...,
        return_details: Literal[False] = ..., with_attention: bool = ..., progress: bool = ...,
        **overrides: Any,
    ) -> list[str]: ...
    @overload
    def translate(
        self, sentences: Sequence[str], options: DecodeConfig | Mapping[str, Any] | None = ...,
        *, prefixes: Sequence[str | None] | None = ..., glossary: Glossary | None = ...,
        seed: int | None = ...,
        return_details: Literal[True], with_attention: bool = ..., progress: bool = ...,
        **overrides: Any,
    ) -> list[Translation]: ...
    def translate(
        self, sentences: Sequence[str], options: DecodeConfig | Mapping[str, Any] | None = None,
        *, prefixes: Sequence[str | None] | None = None, glossary: Glossary | None = None,
        seed: int | None = None,
        return_details: bool = False, with_attention: bool = False, progress: bool = False,
        **overrides: Any,
    ) -> list[str] | list[Translation]:
        """Translate ``sentences``: one result per input, in input order.

        Args:
            options: the decoding options: a :class:`~nmt.config.DecodeConfig`, or a mapping
                of ``decode.*`` keys to values (None = the run's value); None: the run's
                ``decode`` section. ``overrides`` (``strategy="greedy"``, ``beam_size=8``, ...)
                are applied on top. Everything is validated like config keys.
            prefixes: per sentence, target text its translation must start with (None or
                ``""``: none); the model continues it. An OOV word of a prefix is kept as
                written in the output.
            glossary: terminology constraints (:mod:`nmt.datautil.glossary`): when a source
                term occurs in a sentence, beam search must put its target term in the output
                (a target term the vocabulary cannot spell is skipped with a warning). A
                translation the length limit cut first reports ``unmet_terms`` and a warning.
            seed: the sampling seed (default: the run's seed).

        Returns:
            Plain translations, or with ``return_details`` a :class:`Translation` per input
            (with its attention matrix when ``with_attention``).

        Raises:
            ConfigError: an option is invalid (the message names it), or ``prefixes`` does not
                have one entry per sentence.
        """
        check_call(sentences, seed, prefixes)
        decode = self.decode_config(options, **overrides)
        processor, constraints = self.processor, None
        if glossary is not None:
            if decode.strategy != "beam":
                raise ConfigError("a glossary's constraints need beam search (strategy beam)")
            plan = self._glossary_plan(glossary)
            processor, constraints = plan.processor, plan.constraints(sentences)
        prepared = [self._prepare(i + 1, text, None if prefixes is None else prefixes[i],
                                  processor) for i, text in enumerate(sentences)]  # fmt: skip
        need_attention = decode.replace_unk or with_attention
        forced = [p.prefix_ids for p in prepared] if prefixes is not None else None
        nbests = self.search_ids([p.ids for p in prepared], decode,
                                 self.config.seed if seed is None else seed, need_attention,
                                 progress, prefixes=forced, constraints=constraints)  # fmt: skip
        results = [
            finish(processor, p, nb, decode.replace_unk, with_attention) if nb
            else empty_translation(p, torch.zeros(0, 0) if with_attention else None)
            for p, nb in zip(prepared, nbests, strict=True)
        ]
        for line, (result, nb) in enumerate(zip(results, nbests, strict=True), 1):
            if nb and nb[0].unmet:
                log.warning("line %d: %d glossary term token(s) could not be placed within "
                            "the length limit", line, nb[0].unmet)
                results[line - 1] = dataclasses.replace(result, unmet_terms=nb[0].unmet)
        return results if return_details else [r.translation for r in results]

    def stream(self, options: DecodeConfig) -> StreamingGreedy | None:
        """A batch that sentences join and leave while it decodes (continuous batching, see
        :mod:`nmt.translate.streaming`), for plain greedy search of a Transformer: no
        processors, no ``replace_unk`` (it needs the attention), no ensemble. None otherwise:
        then :meth:`translate` is the way."""
        model = self.model
        plain = (options.strategy == "greedy" and not options.replace_unk
                 and not build_processors(options, self._target_words))  # fmt: skip
        if not plain or not isinstance(model, Transformer):
            return None
        return StreamingGreedy(model, self.processor, options, device=self.device,
                               autocast_dtype=self._autocast_dtype,
                               max_src_tokens=self.max_src_tokens,
                               max_len_cap=self._max_len_cap)  # fmt: skip

    def decode_config(self, options: DecodeConfig | Mapping[str, Any] | None = None,
                      **overrides: Any) -> DecodeConfig:  # fmt: skip
        """The decoding options of a call: ``options`` (a DecodeConfig, or ``decode.*`` keys
        over the run's), then the non-None ``overrides``, validated by the config's rules."""
        return call_options(self.config.decode, options, overrides)

    def _prepare(self, line_no: int, text: str, prefix: str | None = None,
                 processor: TextProcessor | None = None) -> PreparedSource:  # fmt: skip
        return prepare_source(processor or self.processor, line_no, text, prefix,
                              self.max_src_tokens, self._max_len_cap)

    def search_ids(
        self, sources: list[list[int]], decode: DecodeConfig, seed: int,
        need_attention: bool = False, progress: bool = False, use_cache: bool = True,
        prefixes: Sequence[Sequence[int]] | None = None,
        constraints: Sequence[Sequence[Sequence[int]]] | None = None,
    ) -> list[list[Hypothesis]]:
        """Decode token ids (no </s>): the n-best lists in input order (``[]`` for ``[]``).

        What :meth:`translate` runs after tokenizing; ``use_cache`` is for benchmarks and tests
        (see :func:`~nmt.decoding.greedy.greedy_search`). The processors ``decode`` switches
        on run in every search; ``prefixes[i]`` (target ids) starts source ``i``'s output.
        """
        return decode_batches(
            self.model, sources, decode, seed, device=self.device,
            autocast_dtype=self._autocast_dtype, max_len_cap=self._max_len_cap,
            need_attention=need_attention, progress=progress, use_cache=use_cache,
            processors=build_processors(decode, self._target_words), prefixes=prefixes,
            constraints=constraints,
        )

    def _glossary_plan(self, glossary: Glossary) -> _GlossaryPlan:
        """What a glossary needs, once per glossary (its warnings too: a prompt translates one
        line per call): the target ids of the entries the target vocabulary can spell, and a
        processor that segments the source terms as one word where that helps (see
        :meth:`~nmt.datautil.pipeline.TextProcessor.with_source_words`)."""
        cached = self._glossaries.get(glossary)
        if cached is not None:
            return cached
        targets: dict[int, list[int]] = {}
        cap = self._max_len_cap
        for i, (_, tgt) in enumerate(glossary.entries):
            ids = self.processor.encode_tgt(tgt)
            where = f"{glossary.path}:{glossary.lines[i]}"
            if not ids or UNK_ID in ids:
                log.warning("%s: target term %r is not in the target vocabulary; skipped",
                            where, tgt)
            elif cap is not None and len(ids) >= cap:
                raise ConfigError(f"{where}: target term of {len(ids)} tokens; the model "
                                  f"outputs at most {cap}")
            else:
                targets[i] = ids
        processor = self.processor.with_source_words(src for src, _ in glossary.entries)
        plan = _GlossaryPlan(glossary, targets, processor)
        self._glossaries[glossary] = plan
        return plan

    def _target_words(self, text: str) -> list[int]:
        return target_word_ids(self.processor, text)

    def plot_attention(self, translation: Translation, path: str | Path) -> Path:
        """Write the attention heatmap of a translation made ``with_attention`` (PNG)."""
        return plot_translation_attention(self.processor, translation, path)

    def attention_labels(self, translation: Translation) -> tuple[list[str], list[str]]:
        """The labels of a translation's attention matrix, as a heatmap shows them (see
        :func:`~nmt.translate.postprocess.attention_labels`)."""
        return attention_labels(self.processor, translation)



@dataclasses.dataclass(frozen=True)
class _GlossaryPlan:
    """A glossary prepared for one Translator (see :meth:`Translator._glossary_plan`)."""

    glossary: Glossary
    targets: dict[int, list[int]]  # entry index -> target ids
    processor: TextProcessor

    def constraints(self, sentences: Sequence[str]) -> list[list[list[int]]]:
        """Per sentence, the target ids of the glossary terms its source contains."""
        matches = self.glossary.matches(sentences, self.processor.prepare_src)
        return [[self.targets[i] for i in matched if i in self.targets] for matched in matches]


def ensemble_members(checkpoint: str | Path) -> list[str | Path]:
    """The checkpoints ``--checkpoint`` names: one, or several separated by commas.

    Raises:
        ConfigError: an empty name in the list (``best,,latest``), or one named twice.
    """
    if isinstance(checkpoint, Path) or "," not in checkpoint:
        return [checkpoint]
    names = [name.strip() for name in checkpoint.split(",")]
    if any(not name for name in names):
        raise ConfigError(f"checkpoint: {checkpoint!r} has an empty name; expected a,b[,c]")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"checkpoint: {', '.join(twice)} named twice in {checkpoint!r}")
    return list(names)


def _load_member(run: Path, cfg: Config, processor: TextProcessor, name: str | Path) -> Seq2Seq:
    """One checkpoint's model: of ``run``, or of another run with the same vocabularies (a run
    directory stands for its best checkpoint), built from its own run's config."""
    other = Path(name)
    if str(name) not in ("best", "latest") and (other / "config.yaml").is_file():
        member_run, ckpt = other, checkpoint_for_decoding(other, "best")
    else:
        ckpt = checkpoint_for_decoding(run, name)
        member_run = ckpt.parent.parent
    model_cfg = cfg.model
    if member_run.resolve() != run.resolve() and (member_run / "config.yaml").is_file():
        if _vocab_files(member_run) != _vocab_files(run):
            raise CheckpointError(f"{ckpt}: its run {member_run} has other vocabularies than "
                                  f"{run}; an ensemble's models must share them")  # fmt: skip
        model_cfg = load_config(member_run / "config.yaml").model
        own, limit = (model_kind(c).position_limit(c) for c in (cfg.model, model_cfg))
        if limit is not None and (own is None or limit < own):
            raise CheckpointError(
                f"{ckpt}: its model reads at most {limit} positions, fewer than {run}'s "
                f"({own or 'no limit'}); name first the model with the smallest limit: the "
                "first one's limits apply")
    model = build_model(  # every weight comes from the checkpoint: no init
        model_cfg, len(processor.src_vocab), len(processor.tgt_vocab), processor.joint,
        initialize=False,
    )
    tensors = read_model_weights(ckpt)  # safetensors only, every weight finite
    load_weights(model, tensors, ckpt)
    del tensors
    perf.release_free_memory()  # the file's copy of the weights: ~1x the model's size
    log.debug("loaded %s", ckpt)
    return model


def _vocab_files(run: Path) -> dict[str, bytes]:
    folder = run / VOCAB_DIR
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}

