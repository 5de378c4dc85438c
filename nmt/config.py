"""One YAML config drives build-vocab, train and the translate defaults.

The dataclasses below are the only place defaults live (``configs/reference.yaml`` shows them
with comments). :func:`load_config` validates a file at once: unknown keys (with a "did you
mean"), duplicate keys, wrong types, non-finite numbers and impossible values all raise
:class:`ConfigError` with one line naming the dotted key and where its value came from: the file,
or the ``--set KEY=VALUE`` that set it. Every rule a value is held to lives here:
:func:`check_decode` and :func:`decode_with` apply the ``decode`` section's rules to options
that come from elsewhere (a flag, a Python argument).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from nmt.errors import ConfigError

Lang = Literal["zh", "en"]
TokenizerType = Literal["jieba", "char", "moses", "sentencepiece", "space"]


@dataclass(frozen=True)
class TokenizerConfig:
    """How one side of the corpus is split into tokens."""

    type: TokenizerType = "moses"
    user_dict: str | None = None  # jieba only: a user dictionary file
    sp_model_type: Literal["bpe", "unigram"] = "bpe"  # sentencepiece only
    sp_vocab_size: int = 8000  # sentencepiece only
    lowercase: bool = False


@dataclass(frozen=True)
class FilterConfig:
    """Cleaning filters for web-crawled corpora (all off by default; Tatoeba needs none).

    Each dropped pair is counted under the first rule it breaks, in this order: ``max_chars``,
    ``script``, ``same``, ``max_ratio``, then ``dedup`` (which keeps a pair's first occurrence).
    """

    dedup: bool = False  # drop exact-duplicate pairs (after normalization)
    max_chars: int = 0  # drop pairs with a side longer than this many characters; 0 = off
    script: bool = False  # zh side must contain a Han character, en side mostly Latin letters
    same: bool = False  # drop pairs whose source equals the target (untranslated copies)
    max_ratio: float = 0.0  # drop pairs whose token counts differ by more than this factor; 0 = off


@dataclass(frozen=True)
class DataConfig:
    """Where the corpus is and how it becomes token ids.

    ``format: tsv`` reads ``English<TAB>Chinese<TAB>attribution`` files (Tatoeba/Anki);
    ``format: aligned`` reads two line-aligned files ``PREFIX.zh`` and ``PREFIX.en``, where the
    ``train``/``dev``/``test`` values are the prefixes.
    """

    format: Literal["tsv", "aligned"] = "tsv"
    # One corpus, or a list of corpora read in order; .gz, .xz and .bz2 files are decompressed.
    train: str | tuple[str, ...] = "data/sample/train.tsv"
    dev: str | None = "data/sample/dev.tsv"
    test: str | None = "data/sample/test.tsv"
    src_lang: Lang = "zh"
    tgt_lang: Lang = "en"
    src_tokenizer: TokenizerConfig = field(default_factory=lambda: TokenizerConfig("jieba"))
    tgt_tokenizer: TokenizerConfig = field(default_factory=lambda: TokenizerConfig("moses"))
    joint_vocab: bool = False  # one vocabulary (and one sentencepiece model) for both sides
    # both: one model for both directions, each pair used src->tgt and tgt->src with a
    # target-language tag first on the source side (nmt.datautil.directions); needs
    # joint_vocab. The run's own direction stays the default of translate and validation.
    directions: Literal["one", "both"] = "one"
    min_freq: int = 1
    max_size: int = 0  # 0 = no limit
    traditional_to_simplified: bool = False
    # The script Chinese source text is converted to before the model reads it (translate,
    # evaluate, dev validation; the training corpus is left as it is): auto = the script of
    # the source vocabulary, hans/hant = always that script, keep = no conversion.
    zh_script: Literal["auto", "hans", "hant", "keep"] = "auto"
    max_len: int = 100  # training pairs longer than this (in tokens, either side) are dropped
    strict: bool = False  # malformed TSV lines are an error instead of a counted warning
    filters: FilterConfig = field(default_factory=FilterConfig)
    workers: int = 0  # processes that tokenize the corpus; 0 = the number of usable cores
    # Sentencepiece models are trained on at most this many pairs, a seeded random sample.
    sp_sample_sentences: int = 1_000_000
    # Sentencepiece's training threads. The model depends on the count (for a given count it
    # is reproducible), so the default of 1 gives the same model on every machine; 0 = the
    # number of usable cores.
    sp_threads: int = 1


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. ``gru`` uses d_model/hidden_size/attention; ``transformer`` the rest."""

    type: Literal["gru", "transformer"] = "transformer"
    d_model: int = 256  # embedding size (both models) and transformer width
    enc_layers: int = 3
    dec_layers: int = 3
    dropout: float = 0.1
    # gru
    hidden_size: int = 256
    attention: Literal["bahdanau", "luong"] = "bahdanau"
    luong_score: Literal["dot", "general", "concat"] = "general"
    input_feeding: bool = True
    # transformer
    heads: int = 4
    ff_size: int = 1024
    norm: Literal["pre", "post"] = "pre"
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    max_positions: int = 512
    tie_embeddings: bool = True  # decoder in/out; all three when data.joint_vocab
    # Regularisers for small corpora (Araabi & Monz 2020), training only; 0 = off:
    attention_dropout: float = 0.0  # on the attention weights
    activation_dropout: float = 0.0  # inside the feed-forward sublayer, after the ReLU
    layer_dropout: float = 0.0  # LayerDrop (Fan et al. 2019): each layer skipped with this p


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, validation and checkpointing."""

    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    schedule: Literal["noam", "constant", "plateau", "linear", "cosine"] = "noam"
    warmup_steps: int = 1000
    # linear/cosine: the step at which the rate has come down to min_lr (and stays); 0 = the
    # run's max_steps. For a time-limited run, about the steps the budget holds.
    decay_steps: int = 0
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_lr: float = 1e-6
    clip_norm: float = 1.0  # 0 = off
    accum_steps: int = 1
    label_smoothing: float = 0.1
    # R-Drop (Liang et al. 2021): each batch through the model twice (two dropout masks), plus
    # alpha x the symmetric KL between the two output distributions; 0 = off
    rdrop_alpha: float = 0.0
    # Subword regularisation of the sentencepiece sides, training batches only (decoding and
    # validation stay deterministic): each pair is re-segmented by sampling every time it is
    # batched. A bpe model drops each merge with this probability (BPE-dropout, Provilkov et
    # al. 2020); a unigram model samples segmentations with this smoothing (Kudo 2018); 0 = off
    sp_alpha: float = 0.0
    teacher_forcing: float = 1.0  # gru only: probability of feeding the gold previous token
    batch_tokens: int = 4096
    max_steps: int = 0  # 0 = no limit
    max_epochs: int = 30
    time_limit_minutes: float = 0.0  # 0 = no limit; the run's wall-clock budget, across resumes
    # Keep the model as it is after these wall-clock minutes (checkpoints/minute-25): a
    # budget's score, measured later. Minutes count across resumes.
    snapshot_minutes: tuple[float, ...] = ()
    valid_every: int = 500
    valid_bleu_sentences: int = 0  # 0 = the whole dev set
    early_stopping_patience: int = 0  # validations without dev BLEU gain; 0 = off
    keep_last: int = 2
    average_last: int = 0  # nmt train ends by averaging the last N checkpoints; 0 = off
    max_nonfinite: int = 10  # consecutive NaN/inf losses before training stops
    log_every: int = 20
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    threads: int = 0  # torch intra-op threads; 0 = one per physical core (at most torch's default)
    dist_timeout_minutes: float = 30.0  # torchrun runs: wait this long for the other processes

    @property
    def decay_until(self) -> int:
        """linear/cosine schedules: the step at which the rate reaches ``min_lr``."""
        return self.decay_steps or self.max_steps


@dataclass(frozen=True)
class DecodeConfig:
    """Defaults for translate and for dev BLEU during training."""

    strategy: Literal["greedy", "beam", "sample"] = "beam"
    beam_size: int = 5
    n_best: int = 1
    length_penalty: float = 1.0  # GNMT alpha; 0 = raw log-probability
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1.0 = off
    max_len_a: float = 1.5
    max_len_b: int = 10
    batch_size: int = 64
    replace_unk: bool = False
    # Steering (nmt.decoding.processors); every one off by default.
    no_repeat_ngram_size: int = 0  # 0 = off; n: no n-gram twice in one output
    repetition_penalty: float = 1.0  # 1.0 = off; > 1 discourages tokens already output
    min_length: int = 0  # 0 = off; no </s> before this many output tokens
    banned_words: tuple[str, ...] = ()  # target words (or phrases) never output


@dataclass(frozen=True)
class Config:
    """The whole run: ``run_dir`` receives vocabularies, checkpoints and metrics."""

    run_dir: str = "runs/quickstart"
    seed: int = 1234
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


T = TypeVar("T")


# --------------------------------------------------------------------------- YAML reading


def _check_duplicates(node: yaml.Node, prefix: str = "", done: set[int] | None = None) -> None:
    """Refuse a key given twice in one mapping (PyYAML silently keeps the last one).

    Walks the composed node tree rather than hooking the constructor: nodes still carry their
    line numbers, and the path down to each mapping is known, so the message can name the
    dotted key (``train.lr``) and not just ``lr``.
    """
    done = set() if done is None else done
    if id(node) in done:  # an alias of a node already checked
        return
    done.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, Any], int] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            ident = (key_node.tag, key_node.value)  # 1 and "1" are different keys
            if isinstance(key_node, yaml.ScalarNode):
                if ident in first:
                    raise ConfigError(f"{prefix}{name}: duplicate key at line {line} "
                                      f"(first at line {first[ident]})")
                first[ident] = line
            _check_duplicates(value_node, f"{prefix}{name}.", done)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, f"{prefix.rstrip('.')}[{i}].", done)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from None
    try:
        loader = yaml.SafeLoader(text)  # checks the characters already
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_duplicates(node)
            raw = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where} invalid YAML: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return raw


# --------------------------------------------------------------------------- validation


class _BadKey(ConfigError):
    """A :class:`ConfigError` about one dotted key; :func:`load_config` uses ``keys`` to say
    whether the value came from the file or from a ``--set``.

    ``keys`` is the key at fault first, then the keys it was checked against (a ``--set`` of
    any of them may be what broke it).
    """

    def __init__(self, key: str, why: str, *related: str) -> None:
        super().__init__(f"{key}: {why}")
        self.keys = (key, *related)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return "list of " + ", ".join(_type_name(a) for a in args)
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in canonical form."""
    origin = get_origin(tp)
    bad = _BadKey(key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise bad
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise bad
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: a list of any length
            if not isinstance(value, (list, tuple)):
                raise bad
            return tuple(_coerce(v, args[0], key) for v in value)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        # PyYAML reads `1e-3` (no dot) as a string; accept any string that is a number.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _BadKey(key, f"expected a mapping, got {value!r}")
        return _build(typing.cast(type, tp), value, key + ".")
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - schema bug


def _build(cls: type[T], raw: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), sorted(fields), n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise _BadKey(f"{prefix}{key}", f"unknown key{hint}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def _check_finite(section: Any, prefix: str = "") -> None:
    """Every float of every section must be finite: ``.inf`` or ``nan`` pass the range checks
    below (``nan > 0`` is False, but ``inf > 0`` is True) and only fail deep inside training."""
    for f in dataclasses.fields(section):
        value, key = getattr(section, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            _check_finite(value, key + ".")
        for x in value if isinstance(value, tuple) else (value,):
            if isinstance(x, float) and not math.isfinite(x):
                raise _BadKey(key, f"must be a finite number, got {x}")


# A rule: (holds, "KEY [KEYS IT IS CHECKED AGAINST...]", why it fails). Every numeric key of
# every section has one (tests/test_config.py walks the schema to keep it so), and code that
# takes a value from elsewhere (a flag, a Python argument) checks it here, not again itself.
_Rule = tuple[bool, str, str]

# sentencepiece takes the seed as an unsigned 32-bit integer; the other generators take more.
_SEED_LIMIT = 2**32


def _data_rules(data: DataConfig) -> list[_Rule]:
    rules: list[_Rule] = [
        (data.src_lang != data.tgt_lang, "data.tgt_lang data.src_lang",
         "must differ from data.src_lang"),
        (data.directions == "one" or data.joint_vocab, "data.directions data.joint_vocab",
         "both needs data.joint_vocab: true (each language is read on both sides)"),
        (data.min_freq >= 1, "data.min_freq", "must be >= 1"),
        (data.max_size >= 0, "data.max_size", "must be >= 0 (0 = no limit)"),
        (data.max_len >= 1, "data.max_len", "must be >= 1"),
        (data.workers >= 0, "data.workers", "must be >= 0 (0 = the number of usable cores)"),
        (data.sp_sample_sentences >= 1, "data.sp_sample_sentences", "must be >= 1"),
        (data.sp_threads >= 0, "data.sp_threads", "must be >= 0 (0 = the number of usable cores)"),
        (data.filters.max_chars >= 0, "data.filters.max_chars", "must be >= 0 (0 = off)"),
        (data.filters.max_ratio == 0 or data.filters.max_ratio >= 1, "data.filters.max_ratio",
         "must be >= 1 (a factor between the two sides' token counts) or 0 (off)"),
        (len(train_paths(data)) >= 1 and all(train_paths(data)), "data.train",
         "must name at least one corpus"),
    ]  # fmt: skip
    for side in ("src_tokenizer", "tgt_tokenizer"):
        # Fewer pieces than <unk>, the word-start mark and one character: sentencepiece fails
        # on any corpus (a corpus with more characters needs more, which build-vocab reports).
        rules.append((getattr(data, side).sp_vocab_size >= 3, f"data.{side}.sp_vocab_size",
                      "must be >= 3 (<unk>, the word-start mark and a character)"))
    return rules


def _model_rules(m: ModelConfig, data: DataConfig) -> list[_Rule]:
    return [
        (m.d_model >= 1, "model.d_model", "must be >= 1"),
        (m.hidden_size >= 1, "model.hidden_size", "must be >= 1"),
        (m.enc_layers >= 1, "model.enc_layers", "must be >= 1"),
        (m.dec_layers >= 1, "model.dec_layers", "must be >= 1"),
        (m.heads >= 1, "model.heads", "must be >= 1"),
        (m.d_model % max(m.heads, 1) == 0, "model.d_model model.heads",
         f"{m.d_model} is not divisible by model.heads={m.heads}"),
        (m.ff_size >= 1, "model.ff_size", "must be >= 1"),
        (0.0 <= m.dropout < 1.0, "model.dropout", "must be in [0, 1)"),
        (0.0 <= m.attention_dropout < 1.0, "model.attention_dropout", "must be in [0, 1)"),
        (0.0 <= m.activation_dropout < 1.0, "model.activation_dropout", "must be in [0, 1)"),
        (0.0 <= m.layer_dropout < 1.0, "model.layer_dropout", "must be in [0, 1)"),
        (m.type == "transformer" or (m.attention_dropout, m.activation_dropout,
                                      m.layer_dropout) == (0.0, 0.0, 0.0),
         "model.attention_dropout model.type", "the attention, activation and layer dropouts "
         "are the transformer's (0 for the gru)"),
        (m.max_positions >= 1, "model.max_positions", "must be >= 1"),
        # A training sentence of data.max_len tokens with its <s> and </s>; the GRU has no
        # position table, so it does not care.
        (m.type != "transformer" or m.max_positions >= data.max_len + 2,
         "model.max_positions data.max_len model.type",
         f"{m.max_positions} is too small for data.max_len={data.max_len}: the transformer "
         f"needs model.max_positions >= data.max_len + 2 = {data.max_len + 2}"),
    ]  # fmt: skip


def _train_rules(t: TrainConfig, data: DataConfig) -> list[_Rule]:
    sides = (data.src_tokenizer.type, data.tgt_tokenizer.type)
    return [
        (t.lr > 0, "train.lr", "must be > 0"),
        (all(0.0 <= b < 1.0 for b in t.betas), "train.betas", "each must be in [0, 1)"),
        (t.weight_decay >= 0, "train.weight_decay", "must be >= 0"),
        (t.warmup_steps >= 0, "train.warmup_steps", "must be >= 0"),
        (0.0 < t.plateau_factor < 1.0, "train.plateau_factor", "must be in (0, 1)"),
        (t.plateau_patience >= 0, "train.plateau_patience", "must be >= 0"),
        (t.min_lr >= 0, "train.min_lr", "must be >= 0"),
        # The plateau rate is max(lr * factor, min_lr), and linear/cosine decay towards min_lr:
        # a floor above train.lr would raise the rate instead.
        (t.schedule not in ("plateau", "linear", "cosine") or t.min_lr <= t.lr,
         "train.min_lr train.lr train.schedule",
         f"{t.min_lr} is above train.lr={t.lr}: "
         + ("lowering the rate on a plateau would raise it" if t.schedule == "plateau"
            else f"decaying the rate to it ({t.schedule} schedule) would raise it")),
        (t.decay_steps >= 0, "train.decay_steps", "must be >= 0 (0 = train.max_steps)"),
        (t.schedule not in ("linear", "cosine") or t.decay_until > t.warmup_steps,
         "train.decay_steps train.max_steps train.schedule",
         f"the {t.schedule} schedule decays the rate from the end of warmup "
         f"(train.warmup_steps={t.warmup_steps}) to train.decay_steps (or train.max_steps when "
         "that is 0): set one of them above the warmup"),
        (t.clip_norm >= 0, "train.clip_norm", "must be >= 0 (0 = off)"),
        (t.accum_steps >= 1, "train.accum_steps", "must be >= 1"),
        (0.0 <= t.label_smoothing < 1.0, "train.label_smoothing", "must be in [0, 1)"),
        (t.rdrop_alpha >= 0, "train.rdrop_alpha", "must be >= 0 (0 = off)"),
        (0.0 <= t.sp_alpha < 1.0, "train.sp_alpha", "must be in [0, 1) (0 = off)"),
        (t.sp_alpha == 0 or "sentencepiece" in sides,
         "train.sp_alpha data.src_tokenizer data.tgt_tokenizer",
         "samples sentencepiece segmentations, but neither side uses the sentencepiece "
         "tokenizer"),
        (0.0 <= t.teacher_forcing <= 1.0, "train.teacher_forcing", "must be in [0, 1]"),
        (t.batch_tokens >= 1, "train.batch_tokens", "must be >= 1"),
        (t.max_steps >= 0, "train.max_steps", "must be >= 0 (0 = no limit)"),
        (t.max_epochs >= 1, "train.max_epochs", "must be >= 1"),
        (t.time_limit_minutes >= 0, "train.time_limit_minutes", "must be >= 0 (0 = no limit)"),
        (all(m > 0 for m in t.snapshot_minutes), "train.snapshot_minutes",
         "every entry must be > 0 (minutes of training)"),
        (t.valid_every >= 1, "train.valid_every", "must be >= 1"),
        (t.valid_bleu_sentences >= 0, "train.valid_bleu_sentences",
         "must be >= 0 (0 = the whole dev set)"),
        (t.early_stopping_patience >= 0, "train.early_stopping_patience",
         "must be >= 0 (0 = off)"),
        (t.keep_last >= 1, "train.keep_last", "must be >= 1"),
        (t.average_last >= 0, "train.average_last", "must be >= 0 (0 = off)"),
        (t.average_last <= t.keep_last, "train.average_last train.keep_last",
         f"averages {t.average_last} checkpoints but train.keep_last={t.keep_last} keeps fewer; "
         f"set train.keep_last >= {t.average_last}"),
        (t.max_nonfinite >= 1, "train.max_nonfinite", "must be >= 1"),
        (t.log_every >= 1, "train.log_every", "must be >= 1"),
        (t.threads >= 0, "train.threads", "must be >= 0 (0 = one per physical core)"),
        (t.dist_timeout_minutes > 0, "train.dist_timeout_minutes", "must be > 0"),
    ]  # fmt: skip


def _decode_rules(d: DecodeConfig) -> list[_Rule]:
    # decode.max_len_b has none: any integer works (the limit never drops below one step).
    return [
        (d.beam_size >= 1, "decode.beam_size", "must be >= 1"),
        (1 <= d.n_best <= d.beam_size, "decode.n_best decode.beam_size",
         f"must be between 1 and decode.beam_size={d.beam_size}"),
        (d.length_penalty >= 0, "decode.length_penalty",
         "must be >= 0 (0 = raw log-probability)"),
        (d.temperature > 0, "decode.temperature", "must be > 0"),
        (d.top_k >= 0, "decode.top_k", "must be >= 0 (0 = off)"),
        (0.0 < d.top_p <= 1.0, "decode.top_p", "must be in (0, 1] (1 = off)"),
        (d.max_len_a >= 0, "decode.max_len_a", "must be >= 0"),
        (d.batch_size >= 1, "decode.batch_size", "must be >= 1"),
        (d.no_repeat_ngram_size >= 0, "decode.no_repeat_ngram_size", "must be >= 0 (0 = off)"),
        (d.repetition_penalty > 0, "decode.repetition_penalty", "must be > 0 (1 = off)"),
        (d.min_length >= 0, "decode.min_length", "must be >= 0 (0 = off)"),
        (all(w.strip() for w in d.banned_words), "decode.banned_words",
         "must not hold an empty word"),
    ]  # fmt: skip


def _enforce(rules: list[_Rule]) -> None:
    for ok, keys, why in rules:
        if not ok:
            key, *related = keys.split()
            raise _BadKey(key, why, *related)


def _check_values(cfg: Config) -> None:
    """Reject values that type-check but cannot work."""
    _check_finite(cfg)
    _enforce([
        (0 <= cfg.seed < _SEED_LIMIT, "seed", "must be in [0, 2**32)"),
        *_data_rules(cfg.data), *_model_rules(cfg.model, cfg.data),
        *_train_rules(cfg.train, cfg.data), *_decode_rules(cfg.decode),
    ])  # fmt: skip


def check_decode(decode: DecodeConfig) -> None:
    """Hold ``decode`` to the rules of a config file's ``decode`` section.

    For decoding options that come from elsewhere (a flag, a Python argument, one of tune's
    candidate values), so that they are refused exactly as ``decode.KEY`` would be.

    Raises:
        ConfigError: naming the first ``decode.*`` key whose value cannot work.
    """
    _check_finite(decode, "decode.")
    _enforce(_decode_rules(decode))


def decode_with(decode: DecodeConfig, options: Mapping[str, Any]) -> DecodeConfig:
    """``decode`` with the non-None ``options`` set, each read as its ``decode.KEY`` in a config
    file would be: type-checked (numbers in strings accepted as for YAML), then validated.

    Raises:
        ConfigError: an unknown option, a wrong type or a value that cannot work; the
            message names the ``decode.*`` key.
    """
    given = {key: value for key, value in options.items() if value is not None}
    updated = _build(DecodeConfig, {**dataclasses.asdict(decode), **given}, "decode.")
    check_decode(updated)
    return updated


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Validate a nested dict (as read from YAML) into a :class:`Config`."""
    cfg = _build(Config, raw)
    _check_values(cfg)
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> ``(["train", "lr"], "3e-4")`` with the value read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.lr=3e-4")
    key, _, value = text.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return parts, parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``KEY=VALUE`` override set."""
    out: dict[str, Any] = _deepcopy_dict(raw)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deepcopy_dict(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy_dict(v) if isinstance(v, dict) else v for k, v in raw.items()}


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config. Errors name the key and where its value came
    from: the file, or the ``--set KEY=VALUE`` that set it."""
    raw = _read_yaml(Path(path)) if path is not None else {}
    merged = apply_overrides(raw, list(overrides))  # its errors already name the --set
    try:
        return config_from_dict(merged)
    except ConfigError as e:
        raise ConfigError(f"{_source(e, path, overrides)}: {e}") from None


def _source(error: ConfigError, path: str | Path | None, overrides: Sequence[str]) -> str:
    """The last ``--set`` of the key at fault (or of a section holding it), else of a key it
    was checked against, else the file."""
    for key in error.keys if isinstance(error, _BadKey) else ():
        for text in reversed(overrides):
            dotted = ".".join(parse_override(text)[0])
            if key == dotted or key.startswith(dotted + "."):
                return f"--set {text}"
    return str(path) if path is not None else "--set"


def with_absolute_paths(cfg: Config) -> Config:
    """``cfg`` with relative corpus and user-dictionary paths made absolute (against the
    working directory), for the ``config.yaml`` a run keeps: ``nmt train --resume RUN_DIR``,
    ``nmt evaluate`` and jieba's user dictionary in ``nmt translate`` then work from anywhere.
    """

    def absolute(p: str | None) -> str | None:
        return str(Path(p).absolute()) if p else p

    data = cfg.data
    train: str | tuple[str, ...] = (
        str(absolute(data.train)) if isinstance(data.train, str)
        else tuple(str(absolute(p)) for p in data.train)
    )
    return replace(cfg, data=replace(
        data, train=train, dev=absolute(data.dev), test=absolute(data.test),
        src_tokenizer=replace(data.src_tokenizer, user_dict=absolute(data.src_tokenizer.user_dict)),
        tgt_tokenizer=replace(data.tgt_tokenizer, user_dict=absolute(data.tgt_tokenizer.user_dict)),
    ))  # fmt: skip


def train_paths(data: DataConfig) -> tuple[str, ...]:
    """``data.train`` as a tuple of corpora (one TSV file or aligned prefix each)."""
    return (data.train,) if isinstance(data.train, str) else data.train


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) for saving as YAML/JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))  # type: ignore[no-any-return,unused-ignore]


def dump_config(cfg: Config) -> str:
    """YAML text of a resolved config (saved in the run directory)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True)


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` with a type that mypy follows."""
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]
