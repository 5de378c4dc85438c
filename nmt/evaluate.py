"""Corpus-level scoring with sacrebleu: BLEU, chrF and TER, each with its signature.

Everything numeric comes from sacrebleu's own metric objects (``corpus_score``) and, for
``compare``, from its paired bootstrap test (:class:`sacrebleu.significance.PairedTest`, the code
behind ``sacrebleu --paired-bs``), so a figure printed here is the figure the ``sacrebleu``
command line prints for the same files and options. This module adds only what a toolkit needs
around them: files read the project's way, line alignment enforced, tables and JSON, and the
timing of a translate-then-score run.

References are *streams*, as in sacrebleu: ``refs[k][i]`` is reference ``k`` of sentence ``i``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from nmt.errors import ConfigError, DataError
from nmt.fileio import read_lines

METRIC_NAMES = ("bleu", "chrf", "ter")
TOKENIZE_CHOICES = ("zh", "13a", "intl", "char", "none")
DEFAULT_WIDTH = 1  # decimals, as the sacrebleu command line prints by default
DEFAULT_BOOTSTRAP = 1000  # sacrebleu's default for --paired-bs-n
SIGNIFICANCE_LEVEL = 0.05

# sacrebleu (with numpy) is imported where it is used: every `nmt` command imports this module
# for the defaults above, and importing sacrebleu took ~0.1-0.2 s of each command's start-up.
if TYPE_CHECKING:
    from sacrebleu.metrics import TER
    from sacrebleu.metrics.base import Metric


# --------------------------------------------------------------------------- options and input
def default_tokenize(tgt_lang: str) -> str:
    """BLEU tokenizer for a target language: ``zh`` for Chinese, ``13a`` otherwise."""
    return "zh" if tgt_lang == "zh" else "13a"


def parse_metrics(text: str) -> tuple[str, ...]:
    """``"bleu,chrf"`` -> ``("bleu", "chrf")``; unknown or empty lists are a ConfigError."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown or not names:
        raise ConfigError(
            f"--metrics: unknown metric {', '.join(repr(n) for n in unknown) or 'list (empty)'};"
            f" choose from {','.join(METRIC_NAMES)}"
        )
    return names


def check_tokenize(tokenize: str) -> None:
    """Reject a BLEU tokenizer outside :data:`TOKENIZE_CHOICES` with a ConfigError."""
    if tokenize not in TOKENIZE_CHOICES:
        raise ConfigError(
            f"--tokenize: unknown tokenizer {tokenize!r}; choose from {', '.join(TOKENIZE_CHOICES)}"
        )


def build_metrics(
    metrics: Sequence[str],
    tokenize: str,
    ter_asian_support: bool | None = None,
    references: Sequence[Sequence[str]] | None = None,
) -> dict[str, Metric]:
    """sacrebleu metric objects, keyed by our lower-case names, with sacrebleu's defaults.

    ``tokenize`` applies to BLEU only: chrF works on characters and TER has its own tokenizer.
    ``ter_asian_support`` (default: ``tokenize == "zh"``) scores TER on CJK characters, the
    TER counterpart of BLEU's ``tok:zh``; see :func:`ter_metric`.
    ``references`` pre-computes reference statistics once, as the sacrebleu command line does.
    """
    check_tokenize(tokenize)
    asian = tokenize == "zh" if ter_asian_support is None else ter_asian_support
    from sacrebleu.metrics import BLEU, CHRF

    factories: dict[str, Callable[[], Metric]] = {
        "bleu": lambda: BLEU(tokenize=tokenize, references=references),
        "chrf": lambda: CHRF(references=references),
        "ter": lambda: ter_metric(asian, references),
    }
    return {name: factories[name]() for name in parse_metrics(",".join(metrics))}


def ter_metric(asian_support: bool, references: Sequence[Sequence[str]] | None = None) -> TER:
    """sacrebleu's TER; with ``asian_support`` each CJK character is one word.

    sacrebleu splits CJK characters only inside its tercom normalization: ``asian_support``
    alone (``norm:no|asian:yes``) changes nothing, and a Chinese sentence written without spaces
    stays one "word", so TER is ~100 for almost any error. Chinese TER therefore turns on both
    (``norm:yes|asian:yes``, as ``sacrebleu --ter-normalized --ter-asian-support``); the
    normalization also splits ASCII punctuation off words. Other targets keep sacrebleu's default.
    """
    from sacrebleu.metrics import TER

    return TER(normalized=asian_support, asian_support=asian_support, references=references)


def read_texts(path: str | Path) -> list[str]:
    """Lines of a hypothesis or reference file, trailing whitespace removed.

    The stripping is what the sacrebleu command line does to every line it reads; doing the same
    keeps the two tools in agreement on files with stray spaces or CRLF endings.
    """
    lines = [line.rstrip() for line in read_lines(path)]
    if not lines:
        raise DataError(f"{path}: file is empty; nothing to score")
    return lines


def check_aligned(hyp_name: str, n_hyps: int, refs: Mapping[str, Sequence[str]]) -> None:
    """Raise DataError naming both files when a reference does not have one line per hypothesis.

    sacrebleu's API would silently score the shorter common prefix (it zips); here a mismatch
    almost always means the wrong file, so it is an error.
    """
    for ref_name, ref in refs.items():
        if len(ref) != n_hyps:
            raise DataError(
                f"line counts differ: hypothesis {hyp_name} has {n_hyps} lines but reference "
                f"{ref_name} has {len(ref)}; files must be line-aligned"
            )


def _check_streams(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
    if not hyps:
        raise DataError("no hypotheses to score")
    if not refs:
        raise DataError("no references given")
    check_aligned("(hypotheses)", len(hyps), {f"#{k + 1}": r for k, r in enumerate(refs)})


# --------------------------------------------------------------------------- single system
@dataclass(frozen=True)
class MetricScore:
    """One corpus score: ``name`` as sacrebleu spells it (``BLEU``, ``chrF2``, ``TER``)."""

    name: str
    score: float
    signature: str
    details: str = ""  # BLEU: n-gram precisions, brevity penalty and lengths


@dataclass(frozen=True)
class Scores:
    """All requested metrics for one system against the same references."""

    scores: tuple[MetricScore, ...]
    n_sentences: int
    n_refs: int

    def __getitem__(self, name: str) -> MetricScore:
        for s in self.scores:
            if s.name.lower().startswith(name.lower()):
                return s
        raise KeyError(name)

    def format_table(self, width: int = DEFAULT_WIDTH) -> str:
        rows = [("Metric", "Score", "Signature")]
        rows += [(s.name, f"{s.score:.{width}f}", s.signature) for s in self.scores]
        lines = _columns(rows, right={1})
        lines += [f"{s.name} details: {s.details}" for s in self.scores if s.details]
        lines.append(f"sentences: {self.n_sentences}, references per sentence: {self.n_refs}")
        return "\n".join(lines)

    def to_dict(self, width: int = DEFAULT_WIDTH) -> dict[str, Any]:
        # Rounded like sacrebleu's JSON, so both tools report the same numbers.
        return {
            "sentences": self.n_sentences,
            "references": self.n_refs,
            "metrics": [
                {"name": s.name, "score": _round(s.score, width), "signature": s.signature}
                | ({"details": s.details} if s.details else {})
                for s in self.scores
            ],
        }


def score(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    tokenize: str,
    metrics: Sequence[str] = METRIC_NAMES,
    ter_asian_support: bool | None = None,
) -> Scores:
    """Score one system with sacrebleu's ``corpus_score`` for each metric."""
    _check_streams(hyps, refs)
    results = []
    for metric in build_metrics(metrics, tokenize, ter_asian_support).values():
        s = metric.corpus_score(list(hyps), [list(r) for r in refs])
        results.append(
            MetricScore(s.name, float(s.score), metric.get_signature().format(), _bleu_details(s))
        )
    return Scores(tuple(results), len(hyps), len(refs))


def _bleu_details(s: Any) -> str:
    # Same text as sacrebleu's "verbose" BLEU line, built from BLEUScore's public fields.
    from sacrebleu.metrics.bleu import BLEUScore

    if not isinstance(s, BLEUScore):
        return ""
    return (
        f"{s.prec_str} (BP = {s.bp:.3f} ratio = {s.ratio:.3f} "
        f"hyp_len = {s.sys_len:d} ref_len = {s.ref_len:d})"
    )


# --------------------------------------------------------------------------- paired bootstrap
@dataclass(frozen=True)
class SystemScore:
    """One metric for one system: the score, the bootstrap mean ± 95% CI half-width and, for a
    non-baseline system, the p-value of its difference from the baseline."""

    metric: str
    score: float
    mean: float
    ci: float
    p_value: float | None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < SIGNIFICANCE_LEVEL


@dataclass(frozen=True)
class SystemResult:
    name: str
    is_baseline: bool
    scores: tuple[SystemScore, ...]


@dataclass(frozen=True)
class Comparison:
    """Paired bootstrap resampling of several systems against a baseline (sacrebleu's test)."""

    systems: tuple[SystemResult, ...]
    signatures: dict[str, str]
    n_samples: int
    n_sentences: int
    n_refs: int

    def format_table(self, width: int = DEFAULT_WIDTH) -> str:
        rows = [("System", "Metric", "Score", "Mean ± 95% CI", "p-value")]
        for metric in self.signatures:
            for system in self.systems:
                s = next(x for x in system.scores if x.metric == metric)
                name = f"baseline: {system.name}" if system.is_baseline else system.name
                p = (
                    "-"
                    if s.p_value is None
                    else f"{s.p_value:.4f}" + ("*" if s.significant else " ")
                )
                rows.append(
                    (
                        name,
                        metric,
                        f"{s.score:.{width}f}",
                        f"{s.mean:.{width}f} ± {s.ci:.{width}f}",
                        p,
                    )
                )
        lines = _columns(rows, right={2, 3, 4})
        lines += [
            "",
            f"Paired bootstrap resampling (sacrebleu) with {self.n_samples} resamples over "
            f"{self.n_sentences} sentences, {self.n_refs} reference(s) each.",
            f"* p < {SIGNIFICANCE_LEVEL}: the difference from the baseline is unlikely to be "
            "chance (it says 'different', not 'better').",
            "",
        ]
        lines += _columns([("Metric", "Signature"), *self.signatures.items()])
        return "\n".join(lines)

    def to_dict(self, width: int = DEFAULT_WIDTH) -> dict[str, Any]:
        return {
            "test": "paired-bootstrap",
            "n_samples": self.n_samples,
            "significance_level": SIGNIFICANCE_LEVEL,
            "sentences": self.n_sentences,
            "references": self.n_refs,
            "signatures": self.signatures,
            "systems": [
                {
                    "name": r.name,
                    "baseline": r.is_baseline,
                    "scores": {
                        s.metric: {
                            "score": _round(s.score, width),
                            "mean": _round(s.mean, width),
                            "ci": _round(s.ci, width),
                            "p_value": None if s.p_value is None else _round(s.p_value, 4),
                            "significant": s.significant,
                        }
                        for s in r.scores
                    },
                }
                for r in self.systems
            ],
        }


def compare(
    baseline_hyps: Sequence[str],
    systems: Mapping[str, Sequence[str]],
    refs: Sequence[Sequence[str]],
    tokenize: str,
    metrics: Sequence[str] = METRIC_NAMES,
    n_samples: int = DEFAULT_BOOTSTRAP,
    baseline_name: str = "baseline",
    ter_asian_support: bool | None = None,
) -> Comparison:
    """Compare each of ``systems`` with the baseline by sacrebleu's paired bootstrap test.

    The resampling seed is sacrebleu's (``SACREBLEU_SEED``, default 12345) and appears in the
    signatures, so results are reproducible and match ``sacrebleu --paired-bs``.
    """
    if not systems:
        raise ConfigError("compare needs at least one system besides the baseline")
    if n_samples < 1:
        raise ConfigError(f"--bootstrap must be at least 1, got {n_samples}")
    _check_streams(baseline_hyps, refs)
    for name, hyps in systems.items():
        check_aligned(name, len(hyps), {f"#{k + 1}": r for k, r in enumerate(refs)})
    ref_streams = [list(r) for r in refs]
    named: list[tuple[str, Sequence[str]]] = [
        (baseline_name, list(baseline_hyps)),
        *((n, list(h)) for n, h in systems.items()),
    ]
    metric_objs = build_metrics(metrics, tokenize, ter_asian_support, references=ref_streams)
    from sacrebleu.significance import PairedTest, Result

    test = PairedTest(named, metric_objs, references=None, test_type="bs", n_samples=n_samples)
    signatures, columns = test()
    results = []
    for i, (name, hyps) in enumerate(named):
        row = []
        for metric in signatures:
            r = cast(Result, columns[metric][i])  # names are only in the 'System' column
            p = None if i == 0 or r.p_value is None else float(r.p_value)
            # For output identical to the baseline sacrebleu reports p = 1/(n+1), "significant",
            # since no resampled difference exceeds a zero delta; no difference means p = 1.
            if i > 0 and list(hyps) == list(named[0][1]):
                p = 1.0
            row.append(
                SystemScore(metric, float(r.score), float(r.mean or 0.0), float(r.ci or 0.0), p)
            )
        results.append(SystemResult(name, i == 0, tuple(row)))
    return Comparison(
        tuple(results),
        {k: v.format() for k, v in signatures.items()},
        test.n_samples,
        len(baseline_hyps),
        len(refs),
    )


# --------------------------------------------------------------------------- translate and time
@dataclass(frozen=True)
class DecodeStats:
    """How fast a translate-then-score run decoded, and with which settings.

    ``target_tokens`` counts the output under the BLEU tokenizer (13a words, ``zh`` characters),
    so speeds compare across models whatever their subword vocabularies.
    """

    sentences: int
    target_tokens: int
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.seconds if self.seconds > 0 else float("inf")

    @property
    def tokens_per_second(self) -> float:
        return self.target_tokens / self.seconds if self.seconds > 0 else float("inf")

    def format(self) -> str:
        settings = " ".join(f"{k}={v}" for k, v in self.settings.items())
        return (
            f"decoding: {self.sentences} sentences, {self.target_tokens} target tokens in "
            f"{self.seconds:.2f} s: {self.sentences_per_second:.1f} sentences/s, "
            f"{self.tokens_per_second:.1f} target tokens/s\nsettings: {settings}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "sentences": self.sentences,
            "target_tokens": self.target_tokens,
            "seconds": round(self.seconds, 3),
            "sentences_per_second": round(self.sentences_per_second, 2),
            "tokens_per_second": round(self.tokens_per_second, 2),
            "settings": self.settings,
        }


def timed_translate(
    translate: Callable[[list[str]], Sequence[str]],
    sources: Sequence[str],
    tokenize: str,
    settings: Mapping[str, Any],
) -> tuple[list[str], DecodeStats]:
    """Run ``translate`` over all ``sources`` once, timing it; the hypotheses come back
    right-stripped, as if read from a file, so scores match scoring the saved output."""
    start = time.perf_counter()
    out = list(translate(list(sources)))
    seconds = time.perf_counter() - start
    if len(out) != len(sources):
        raise DataError(f"the translator returned {len(out)} lines for {len(sources)} inputs")
    hyps = [h.rstrip() for h in out]
    from sacrebleu.metrics import BLEU

    counter = BLEU(tokenize=tokenize).tokenizer  # sacrebleu's tokenizer, as used for scoring
    n_tokens = sum(len(counter(h).split()) for h in hyps)
    return hyps, DecodeStats(len(hyps), n_tokens, seconds, dict(settings))


# --------------------------------------------------------------------------- formatting helpers
def _round(value: float, width: int) -> float:
    return float(f"{value:.{width}f}")


def _columns(rows: Sequence[Sequence[str]], right: set[int] | None = None) -> list[str]:
    """Plain aligned columns (no box drawing, so output stays grep- and diff-friendly)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = right or set()
    return [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def to_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)
