"""The CTranslate2 engine: a model written by ``nmt export --to ctranslate2``, decoded by
CTranslate2 with nmt's own text processing, and without torch.

An exported directory holds everything a translation needs (:func:`read_manifest` checks it)::

    OUT_DIR/model.bin, config.json, *vocabulary.json   the CTranslate2 model
    OUT_DIR/config.yaml       the run's resolved config (tokenizers, normalization, decode)
    OUT_DIR/vocab/            the run's vocabularies, sentencepiece models, jieba dictionaries
    OUT_DIR/nmt_export.json   where it came from and the model's length limits

:class:`CTranslate2Translator` has the interface of :class:`~nmt.translate.Translator`
(``translate``, ``decode_config``, ``plot_attention``, ``config``, ``processor``) and shares its
text path: sources go through :func:`~nmt.translate.sources.prepare_source` (normalize, script,
tokenize, truncate), outputs through :func:`~nmt.translate.postprocess.finish` (one line per
input, ``<unk>`` replacement from the attention). An empty source never reaches the model.

How ``DecodeConfig`` maps onto ``ctranslate2.Translator.translate_batch``, and where the two
differ (README, "Exporting to CTranslate2"):

* ``greedy``: ``beam_size=1``; ``sample``: ``beam_size=1`` with ``sampling_topk`` (``top_k``;
  0 is the whole vocabulary), ``sampling_topp``, ``sampling_temperature``: the same
  distribution as nmt's, not the same draws. The seed goes to ``ctranslate2.set_random_seed``,
  which CTranslate2 reads at a loaded model's first draw: a new process (or a newly loaded
  model) with the same seed draws the same samples; later calls continue the stream.
* ``beam``: ``beam_size=K`` with its ``K`` finished hypotheses back, re-ranked here by nmt's
  GNMT penalty ``((5 + |y|) / 6) ** alpha``. CTranslate2 ranks by ``score / |y| ** alpha`` and
  keeps its ``K`` best of the up to ``2K - 1`` hypotheses finished at the last step; ranked so,
  it lost nmt's choice on 25 of the 437 sample sentences (quickstart model, beam 5). It is
  given a penalty too small to change a float32 score (:data:`_NO_EARLY_STOP`) instead, so it
  keeps the ``K`` best summed log-probabilities (437 of 437 alike then, at beam 2, 4, 5 and 8,
  alpha 0.6 to 2) and still waits for ``K`` finished hypotheses as nmt does (with no penalty
  at all it stops at the first finished best beam).
* Length limits are per sentence in nmt (``max_len_a * |src| + max_len_b``, ``</s>`` of the
  source counted) and per call in CTranslate2: sentences are decoded in groups of one limit.
* ``min_length`` -> ``min_decoding_length``, ``no_repeat_ngram_size`` and
  ``repetition_penalty`` pass through, ``banned_words`` -> ``suppress_sequences`` (with
  ``<pad>`` and ``<s>``, which nmt never outputs). CTranslate2 removes those tokens before its
  softmax and nmt after it, so scores differ by the removed probability (tokens do not, for
  greedy search); its repetition penalty scales logits, nmt's log-probabilities.
* ``--prefix`` -> ``target_prefix``; the prefix's log-probability (CTranslate2 leaves it out of
  its scores) is added from ``score_batch``. Unlike nmt, CTranslate2 lets no beam but the best
  end right after a prefix.
* Attention (``replace_unk``, ``with_attention``): the last layer's averaged over its heads,
  as nmt's. CTranslate2 4.8's beam search on a CPU gives each sentence the first attention row
  of another sentence of its batch; that row comes from one greedy step instead
  (:meth:`CTranslate2Translator._first_attention_rows`).
* Glossary constraints have no CTranslate2 counterpart: a :class:`ConfigError`.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, overload

from nmt.config import Config, DecodeConfig, load_config, replace
from nmt.datautil.glossary import Glossary
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.errors import CheckpointError, ConfigError
from nmt.translate.postprocess import (
    PreparedSource,
    empty_translation,
    finish,
    plot_translation_attention,
)
from nmt.translate.result import Translation
from nmt.translate.sources import call_options, check_call, prepare_source, target_word_ids

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["MANIFEST", "CTranslate2Translator", "ExportManifest", "import_ctranslate2",
           "read_manifest"]  # fmt: skip

log = logging.getLogger(__name__)

MANIFEST = "nmt_export.json"
FORMAT = "nmt-ctranslate2"
# decode precision -> CTranslate2 compute type; None keeps the type the model was exported in.
COMPUTE_TYPES = {"auto": "auto", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16",
                 "int8": "int8"}  # fmt: skip
# CTranslate2's length penalty in beam search: |y| ** 1e-9 rounds to 1.0 in float32 for any
# length a model can reach, so its scores stay the summed log-probabilities, but it no longer
# stops at the first finished best beam (see above).
_NO_EARLY_STOP = 1e-9


def import_ctranslate2() -> ModuleType:
    """The ``ctranslate2`` module, or the one-line way to install it.

    Raises:
        ConfigError: ctranslate2 is not installed.
    """
    try:
        import ctranslate2
    except ImportError:
        raise ConfigError("CTranslate2 is not installed: pip install 'nmt[export]' "
                          "(or pip install ctranslate2)") from None  # fmt: skip
    return ctranslate2


@dataclass(frozen=True)
class ExportManifest:
    """``OUT_DIR/nmt_export.json``: what an export was made from and what it needs.

    Attributes:
        run: the run directory exported.
        checkpoint: the checkpoint directory whose weights it holds.
        quantization: the weight type given to the converter (None: the weights' own, float32).
        max_source_tokens: the most source tokens the model reads (``</s>`` not counted).
        max_output_length: the most decoder steps its positions allow (``</s>`` counted).
    """

    run: str
    checkpoint: str
    quantization: str | None
    max_source_tokens: int
    max_output_length: int

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": 1, **self.__dict__}, indent=2) + "\n"


def read_manifest(model_dir: Path) -> ExportManifest:
    """The manifest of an exported directory.

    Raises:
        CheckpointError: ``model_dir`` is not a complete ``nmt export --to ctranslate2`` output.
    """
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: no such directory")
    path = model_dir / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{model_dir}: not a model written by 'nmt export --to "
                              f"ctranslate2' (no {MANIFEST}); a run directory is "
                              f"translated with the torch engine")  # fmt: skip
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.pop("format") != FORMAT or raw.pop("version") != 1:
            raise ValueError("unknown format")
        manifest = ExportManifest(**raw)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{path}: not a valid export manifest ({e})") from None
    for name in ("model.bin", "config.json", "config.yaml"):
        if not (model_dir / name).is_file():
            raise CheckpointError(f"{model_dir}: {name} is missing; export the run again")
    return manifest


def with_local_dictionaries(cfg: Config, model_dir: Path) -> Config:
    """``cfg`` with its jieba user dictionaries, kept relative to the export, made absolute."""

    def local(user_dict: str | None) -> str | None:
        return str(model_dir / user_dict) if user_dict else user_dict

    src, tgt = cfg.data.src_tokenizer, cfg.data.tgt_tokenizer
    return replace(cfg, data=replace(
        cfg.data, src_tokenizer=replace(src, user_dict=local(src.user_dict)),
        tgt_tokenizer=replace(tgt, user_dict=local(tgt.user_dict)),
    ))  # fmt: skip


def output_limit(src_len: int, a: float, b: int, cap: int) -> int:
    """``nmt.decoding.lengths.max_lengths`` for one sentence of ``src_len`` tokens (``</s>``
    included): ``floor(a * src_len + b)``, at least 1, at most ``cap``."""
    return min(max(math.floor(a * src_len + b), 1), cap)


def gnmt_penalty(steps: int, alpha: float) -> float:
    """``nmt.decoding.lengths.length_penalty``: ``((5 + steps) / 6) ** alpha``."""
    return ((5.0 + steps) / 6.0) ** alpha


@dataclass(frozen=True)
class _Hypothesis:
    """One CTranslate2 output in nmt's terms (see :class:`nmt.decoding.Hypothesis`)."""

    tokens: list[int]  # target ids, without </s>
    score: float  # summed log-probability, the prefix's included
    norm_score: float  # score / GNMT penalty
    attention: NDArray[np.float32] | None  # (len(tokens), src_len)


class CTranslate2Translator:
    """An exported model with its text processing; build it with :meth:`load`."""

    def __init__(self, config: Config, processor: TextProcessor, engine: Any,
                 manifest: ExportManifest, ctranslate2: ModuleType) -> None:  # fmt: skip
        self.config = config
        self.processor = processor
        self.engine = engine  # the ctranslate2.Translator
        self.manifest = manifest
        self._ct2 = ctranslate2
        self.max_src_tokens = manifest.max_source_tokens
        self._max_len_cap = manifest.max_output_length

    @property
    def precision(self) -> str:
        """The CTranslate2 compute type decoding runs in (``float32``, ``int8_float32``, ...)."""
        return str(self.engine.compute_type)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "auto", precision: str | None = None,
             *, checkpoint: str = "best", to: str | None = None) -> CTranslate2Translator:
        """Load ``model_dir``, written by ``nmt export --to ctranslate2``.

        Args:
            device: auto, cpu, cuda or cuda:N.
            precision: auto, fp32, bf16, fp16 or int8 as a CTranslate2 compute type; None: the
                type the model was exported in.
            checkpoint, to: accepted so that callers of ``Translator.load`` can pass theirs;
                an export holds one checkpoint and one direction, so anything but the defaults
                is refused.

        Raises:
            CheckpointError: not an export, or files missing or unreadable.
            ConfigError: ctranslate2 is not installed, a device or precision it cannot run, or
                a checkpoint or direction named.
        """
        if to is not None:
            raise ConfigError("to: an exported model translates in its run's direction")
        if checkpoint != "best":
            raise ConfigError("checkpoint: an exported model holds the checkpoint chosen by "
                              "'nmt export --checkpoint'; give none")  # fmt: skip
        model = Path(model_dir)
        manifest = read_manifest(model)
        ct2 = import_ctranslate2()
        cfg = with_local_dictionaries(load_config(model / "config.yaml"), model)
        processor = TextProcessor.load(model, cfg.data)
        kind, index = _device(device, ct2)
        compute_type = _compute_type(precision, kind, ct2)
        try:
            engine = ct2.Translator(str(model), device=kind, device_index=index,
                                    compute_type=compute_type,
                                    intra_threads=_cpu_threads())  # fmt: skip
        except (RuntimeError, ValueError) as e:
            raise CheckpointError(f"{model}: CTranslate2 cannot load it: {_first_line(e)}"
                                  ) from None  # fmt: skip
        log.debug("loaded %s on %s (%s)", model, kind, engine.compute_type)
        return cls(cfg, processor, engine, manifest, ct2)

    # ------------------------------------------------------------------ translate

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

        The arguments are :meth:`nmt.translate.Translator.translate`'s, except ``glossary``,
        which CTranslate2 cannot honour (a :class:`ConfigError`).
        """
        check_call(sentences, seed, prefixes)
        decode = self.decode_config(options, **overrides)
        if glossary is not None:
            raise ConfigError("glossary: CTranslate2 has no terminology constraints; "
                              "translate with the torch engine (--engine torch)")  # fmt: skip
        prepared = [prepare_source(self.processor, i + 1, text,
                                   None if prefixes is None else prefixes[i],
                                   self.max_src_tokens, self._max_len_cap)
                    for i, text in enumerate(sentences)]  # fmt: skip
        if decode.strategy == "sample":
            # CTranslate2 takes a 32-bit unsigned seed
            self._ct2.set_random_seed((self.config.seed if seed is None else seed) % 2**32)
        need_attention = decode.replace_unk or with_attention
        nbests = self.search(prepared, decode, need_attention, progress)
        results = [
            finish(self.processor, p, nb, decode.replace_unk, with_attention) if nb
            else empty_translation(p, _empty_matrix() if with_attention else None)
            for p, nb in zip(prepared, nbests, strict=True)
        ]
        return results if return_details else [r.translation for r in results]

    def decode_config(self, options: DecodeConfig | Mapping[str, Any] | None = None,
                      **overrides: Any) -> DecodeConfig:  # fmt: skip
        """The decoding options of a call, as :meth:`nmt.translate.Translator.decode_config`."""
        return call_options(self.config.decode, options, overrides)

    def search(self, prepared: Sequence[PreparedSource], decode: DecodeConfig,
               need_attention: bool = False, progress: bool = False,
               ) -> list[list[_Hypothesis]]:  # fmt: skip
        """The n-best lists of prepared sources, in input order (``[]`` for an empty one).

        Sentences are decoded in groups of one output limit (and with or without a prefix),
        each in batches of ``decode.batch_size``.
        """
        from tqdm import tqdm

        groups: dict[tuple[int, bool], list[int]] = {}
        for i, p in enumerate(prepared):
            if p.ids:
                limit = output_limit(len(p.ids) + 1, decode.max_len_a, decode.max_len_b,
                                     self._max_len_cap)  # fmt: skip
                if p.prefix_ids:  # room for the prefix and </s>, as nmt's Steering.limits
                    limit = max(limit, len(p.prefix_ids) + 1)
                groups.setdefault((limit, bool(p.prefix_ids)), []).append(i)
        nbests: list[list[_Hypothesis]] = [[] for _ in prepared]
        options = self._options(decode, need_attention)
        with tqdm(total=sum(map(len, groups.values())), unit="sent", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True, leave=False) as bar:  # fmt: skip
            for (limit, with_prefix), chosen in sorted(groups.items(), reverse=True):
                batch = [prepared[i] for i in chosen]
                for i, hyps in zip(chosen, self._decode(batch, limit, with_prefix, decode,
                                                        options), strict=True):  # fmt: skip
                    nbests[i] = hyps
                bar.update(len(chosen))
        return nbests

    def plot_attention(self, translation: Translation, path: str | Path) -> Path:
        """Write the attention heatmap of a translation made ``with_attention`` (PNG)."""
        return plot_translation_attention(self.processor, translation, path)

    # ------------------------------------------------------------------ internals

    def _options(self, decode: DecodeConfig, need_attention: bool) -> dict[str, Any]:
        """``translate_batch`` keyword arguments for ``decode`` (but the length limits)."""
        beam = decode.strategy == "beam"
        vocab = self.processor.tgt_vocab
        banned = [[vocab.id_to_token(PAD_ID)], [vocab.id_to_token(BOS_ID)]]
        for word in decode.banned_words:
            ids = target_word_ids(self.processor, word)
            if ids:
                banned.append([vocab.id_to_token(i) for i in ids])
        options: dict[str, Any] = dict(
            max_batch_size=decode.batch_size, beam_size=decode.beam_size if beam else 1,
            num_hypotheses=decode.beam_size if beam else 1,
            length_penalty=_NO_EARLY_STOP if beam else 0.0,  # ranked by nmt's, in _nbest
            repetition_penalty=decode.repetition_penalty,
            no_repeat_ngram_size=decode.no_repeat_ngram_size, suppress_sequences=banned,
            return_scores=True, return_end_token=True, return_attention=need_attention,
            max_input_length=0,  # sources are already cut to what the model takes
        )
        if decode.strategy == "sample":
            top_k = decode.top_k if decode.top_k < len(vocab) else 0  # 0: every token
            options.update(sampling_topk=top_k, sampling_topp=decode.top_p,
                           sampling_temperature=decode.temperature)  # fmt: skip
        return options

    def _decode(self, batch: list[PreparedSource], limit: int, with_prefix: bool,
                decode: DecodeConfig, options: dict[str, Any],
                ) -> list[list[_Hypothesis]]:  # fmt: skip
        """Decode sentences of one output ``limit``: their n-best lists, best first."""
        src_vocab, tgt_vocab = self.processor.src_vocab, self.processor.tgt_vocab
        sources = [[src_vocab.id_to_token(i) for i in p.ids] for p in batch]
        prefixes = ([[tgt_vocab.id_to_token(i) for i in p.prefix_ids] for p in batch]
                    if with_prefix else None)  # fmt: skip
        try:
            results = self.engine.translate_batch(
                sources, prefixes, max_decoding_length=limit,
                min_decoding_length=min(decode.min_length, limit), **options)
            prefix_scores = [0.0] * len(batch)
            if prefixes is not None:  # CTranslate2 scores the continuation only
                scored = self.engine.score_batch(sources, prefixes, max_input_length=0,
                                                 max_batch_size=decode.batch_size)  # fmt: skip
                prefix_scores = [sum(s.log_probs[:-1]) for s in scored]  # without the </s>
            first_rows: list[list[float] | None] = [None] * len(batch)
            if options["return_attention"] and options["beam_size"] > 1:
                first_rows = self._first_attention_rows(sources, decode.batch_size)
        except ValueError as e:  # CTranslate2's check of its options
            raise ConfigError(f"CTranslate2 refused the decoding options: {_first_line(e)}"
                              ) from None  # fmt: skip
        return [
            self._nbest(result, decode, extra, first_row)
            for result, extra, first_row in zip(results, prefix_scores, first_rows, strict=True)
        ]

    def _first_attention_rows(self, sources: list[list[str]], batch_size: int
                              ) -> list[list[float] | None]:  # fmt: skip
        """Each source's attention at the first decoder step, from one greedy step.

        CTranslate2 4.8's beam search on a CPU runs its first step on one row per sentence
        and then takes sentence ``i``'s first attention row from row ``i`` of the rows
        repeated per beam, i.e. from sentence ``i // beam_size`` (checked against nmt's
        teacher-forced attention; batches of one are right). That step's attention depends
        on the source only (its input is ``<s>``), so one greedy step gives it.
        """
        results = self.engine.translate_batch(
            sources, max_batch_size=batch_size, beam_size=1, max_decoding_length=1,
            min_decoding_length=0, return_attention=True, return_end_token=True,
            max_input_length=0)  # fmt: skip
        return [r.attention[0][0] if r.attention and r.attention[0] else None for r in results]

    def _nbest(self, result: Any, decode: DecodeConfig, prefix_score: float,
               first_row: list[float] | None) -> list[_Hypothesis]:  # fmt: skip
        """One ``TranslationResult`` as nmt's n-best list: summed log-probabilities (the
        prefix's added) ranked by the GNMT penalty; ``first_row``, when given, is the
        attention of every hypothesis' first step."""
        vocab = self.processor.tgt_vocab
        eos = vocab.id_to_token(EOS_ID)
        hyps = []
        for i, tokens in enumerate(result.hypotheses):
            ended = bool(tokens) and tokens[-1] == eos
            ids = [vocab.token_to_id(t) for t in (tokens[:-1] if ended else tokens)]
            steps = len(ids) + ended  # decoder steps scored, </s> included
            raw = result.scores[i] + prefix_score
            attention = None
            if result.attention:
                import numpy as np  # only with attention: numpy costs start-up time otherwise

                attention = np.asarray(result.attention[i][: len(ids)], dtype=np.float32)
                attention = attention.reshape(len(ids), -1)  # (0, src_len) for an empty output
                if first_row is not None and len(ids):
                    attention[0] = first_row
            hyps.append(_Hypothesis(ids, raw, raw / gnmt_penalty(steps, decode.length_penalty),
                                    attention))  # fmt: skip
        if decode.strategy != "beam":
            return hyps
        hyps.sort(key=lambda h: -h.norm_score)  # stable: CTranslate2's order among equals
        return hyps[: decode.n_best]


def _device(device: str, ct2: ModuleType) -> tuple[str, int]:
    """nmt's ``--device`` as CTranslate2's ``(device, device_index)``."""
    if device == "auto":
        return ("cuda" if ct2.get_cuda_device_count() > 0 else "cpu"), 0
    if device in ("cpu", "cuda"):
        return device, 0
    kind, _, index = device.partition(":")
    if kind == "cuda" and index.isdigit():
        return kind, int(index)
    raise ConfigError(f"device: CTranslate2 runs on auto, cpu, cuda or cuda:N, got {device!r}")


def _cpu_threads() -> int:
    """CTranslate2's threads, as nmt's engine picks its own: ``OMP_NUM_THREADS`` when set, else
    one per physical core. CTranslate2's default (4) oversubscribes a 2-core CPU: greedy
    decoding of the zh->en recipe's test set ran at 383 sentences/s with 4 threads, 840 with 2
    (beam 5: 195 and 293), measured side by side in one process."""
    import os

    from nmt import perf

    configured = os.environ.get("OMP_NUM_THREADS", "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else (
        perf.physical_cores())


def _compute_type(precision: str | None, device: str, ct2: ModuleType) -> str:
    """The CTranslate2 compute type of a ``--precision`` on ``device``."""
    if precision is None:
        return "default"
    if precision not in COMPUTE_TYPES:
        raise ConfigError(f"precision: expected one of {', '.join(COMPUTE_TYPES)}, "
                          f"got {precision!r}")  # fmt: skip
    compute_type = COMPUTE_TYPES[precision]
    supported = set(ct2.get_supported_compute_types(device))
    if compute_type != "auto" and compute_type not in supported:
        raise ConfigError(f"precision {precision}: CTranslate2 cannot compute in {compute_type} "
                          f"on this {device}; it can in {', '.join(sorted(supported))}")
    return compute_type


def _empty_matrix() -> NDArray[np.float32]:
    import numpy as np

    return np.zeros((0, 0), dtype=np.float32)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
