"""`nmt evaluate`: BLEU, chrF and TER with signatures; translate-and-score with --model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nmt.cli.common import app, reports_errors
from nmt.cli.decoding import decoding_options
from nmt.evaluate import DEFAULT_BOOTSTRAP, DEFAULT_WIDTH, METRIC_NAMES
from nmt.fileio import atomic_write_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from nmt.datautil.glossary import Glossary
    from nmt.evaluate import Comparison, DecodeStats, Scores

_DECODE_PANEL = "Translate and score (--model)"


@app.command()
@reports_errors
@decoding_options(_DECODE_PANEL, exclude={"n_best"})
def evaluate(
    hyp: Annotated[
        Path | None, typer.Option(help="System output to score, one sentence per line.")
    ] = None,
    ref: Annotated[
        list[Path] | None,
        typer.Option(
            help="Reference file, line-aligned with the hypotheses (repeat for several references)."
        ),
    ] = None,
    tokenize: Annotated[
        str | None,
        typer.Option(
            help="BLEU tokenizer: zh, 13a, intl, char or none "
            "(default: zh for a Chinese target, else 13a)."
        ),
    ] = None,
    tgt_lang: Annotated[
        str | None,
        typer.Option(
            help="Target language, zh or en; picks the default tokenizer "
            "(default: en; with --model, the run's target language)."
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="With --model: the direction to score, by its target "
                     "language (default: the run's); the other one needs a run trained with "
                     "data.directions: both (its --split is then read the other way round)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    compare: Annotated[
        list[Path] | None,
        typer.Option(
            help="Another system's output to compare with the baseline (--hyp or the "
            "model's output) by paired bootstrap resampling (repeatable)."
        ),
    ] = None,
    metrics: Annotated[
        str, typer.Option(help=f"Comma-separated metrics to compute: {', '.join(METRIC_NAMES)}.")
    ] = ",".join(METRIC_NAMES),
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for --compare (sacrebleu's default).")
    ] = DEFAULT_BOOTSTRAP,
    width: Annotated[
        int, typer.Option(min=0, max=10, help="Decimals printed for scores, as sacrebleu -w.")
    ] = DEFAULT_WIDTH,
    model: Annotated[
        Path | None,
        typer.Option(
            help="Run directory: translate --src with its model, then score the "
            "output (instead of --hyp).",
            rich_help_panel=_DECODE_PANEL,
        ),
    ] = None,
    src: Annotated[
        Path | None,
        typer.Option(
            help="Source sentences to translate (with --model and --ref).",
            rich_help_panel=_DECODE_PANEL,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="Without --src/--ref: translate and score the run's own corpus split, "
            "dev or test (data.dev/data.test of its config.yaml; default test).",
            rich_help_panel=_DECODE_PANEL,
        ),
    ] = None,
    checkpoint: Annotated[
        str,
        typer.Option(
            help="best (falls back to latest), latest, averaged (see 'nmt average'), a "
            "checkpoint name or directory; a,b[,c]: an ensemble.",
            rich_help_panel=_DECODE_PANEL,
        ),
    ] = "best",
    save_hyp: Annotated[
        Path | None,
        typer.Option(
            help="Also write the model's translations to this file (with --model).",
            rich_help_panel=_DECODE_PANEL,
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="auto, cpu, cuda, cuda:N or mps (default: auto).", rich_help_panel=_DECODE_PANEL
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="auto, fp32, bf16, fp16 (GPU) or int8 (x86 CPU) arithmetic (default: the "
            "run's train.precision).",
            rich_help_panel=_DECODE_PANEL,
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed for sampling.", rich_help_panel=_DECODE_PANEL)
    ] = None,
    zh_script: Annotated[
        str | None,
        typer.Option(
            help="Chinese target only: convert the model's output to hans, hant, tw or hk "
            "characters (OpenCC) before scoring, e.g. hant for Traditional references; the "
            "references are scored as written.",
            rich_help_panel=_DECODE_PANEL,
        ),
    ] = None,
    glossary: Annotated[
        Path | None,
        typer.Option(help="TSV of 'source term<TAB>target term': report the term usage rate "
                     "(needs the sources: --model, or --hyp with --src); with --model the "
                     "translation is also constrained to use the terms (beam search)."),
    ] = None,
    constrain: Annotated[
        bool,
        typer.Option(help="With --model and --glossary: constrain the translation to use the "
                     "terms (the default), or only report how often the model uses them."),
    ] = True,
    *,
    decode: dict[str, Any],
) -> None:
    """Score translations with BLEU, chrF and TER (sacrebleu), each with its signature.

    Either --hyp FILE --ref FILE [--ref FILE2 ...]; or --model RUN_DIR --src FILE --ref FILE to
    translate and score in one go (also reporting decoding speed and settings); or --model
    RUN_DIR alone to do that on the run's test split (--split dev for its dev split). --compare
    runs sacrebleu's paired bootstrap test against the baseline. Tables (or --json) go to stdout.
    """
    from nmt import evaluate as ev
    from nmt.errors import ConfigError

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # sacrebleu narrates every bootstrap step at INFO; keep it for --verbose only.
        logging.getLogger("sacrebleu").setLevel(logging.WARNING)
    metric_names = ev.parse_metrics(metrics)
    if tokenize is not None:
        ev.check_tokenize(tokenize)
    if tgt_lang not in (None, "zh", "en"):
        raise ConfigError(f"--tgt-lang: expected zh or en, got {tgt_lang!r}")
    from nmt.datautil.glossary import read_glossary, term_usage

    terms = None if glossary is None else read_glossary(glossary)
    stats: DecodeStats | None = None
    sources: list[str] | None = None
    normalize: Callable[[str], str] = str
    if model is not None:
        if hyp is not None:
            raise ConfigError("give either --hyp FILE or --model RUN_DIR, not both")
        hyps, refs, stats, lang, baseline, sources, normalize = _translate_for_evaluation(
            model, src, ref, split, decode, device, seed, checkpoint, tokenize, tgt_lang,
            precision, zh_script, terms if constrain else None, to,
        )
        if save_hyp is not None:
            atomic_write_text(save_hyp, "".join(f"{h}\n" for h in hyps))
    elif hyp is not None:
        if any(given is not None for given in (save_hyp, split, zh_script, to)):
            raise ConfigError("--split, --save-hyp, --zh-script and --to belong to --model "
                              "mode")
        if src is not None and terms is None:
            raise ConfigError("--src goes with --model, or with --hyp and --glossary")
        if terms is not None and src is None:
            raise ConfigError("--glossary with --hyp needs the sources: --src FILE")
        if not ref:
            raise ConfigError("--ref is required (repeat it for several references)")
        refs = {str(p): ev.read_texts(p) for p in ref}
        hyps, lang, baseline = ev.read_texts(hyp), tgt_lang or "en", str(hyp)
        ev.check_aligned(baseline, len(hyps), refs)
        if src is not None:
            from nmt.datautil.normalize import Normalizer

            sources = ev.read_texts(src)
            ev.check_aligned(str(src), len(sources), {baseline: hyps})
            # The sources as a run reads them, short of its script conversion (no run here).
            normalize = Normalizer("zh" if lang == "en" else "en")
    else:
        raise ConfigError("give --hyp FILE --ref FILE, or --model RUN_DIR, to score")
    tok = tokenize or ev.default_tokenize(lang)
    result = _score(hyps, list(refs.values()), tok, metric_names, lang, baseline, compare,
                    bootstrap)  # fmt: skip
    usage = None
    if terms is not None and sources is not None:
        used, occurring = term_usage(terms, sources, hyps, normalize)
        rate = 100.0 * used / occurring if occurring else 100.0
        usage = {"used": used, "occurring": occurring, "rate": round(rate, width)}
    if json_output:
        data = result.to_dict(width) | ({"decoding": stats.to_dict()} if stats else {})
        typer.echo(ev.to_json(data | ({"term_usage": usage} if usage else {})))
    else:
        typer.echo(result.format_table(width))
        if usage is not None:
            typer.echo(f"term usage: {usage['rate']:.{width}f}% ({used} of {occurring} "
                       f"glossary terms found in the sources appear in the output; {glossary})")
        if stats is not None:
            typer.echo(stats.format())


def _score(
    hyps: list[str],
    streams: list[list[str]],
    tok: str,
    metric_names: tuple[str, ...],
    lang: str,
    baseline: str,
    compare: list[Path] | None,
    bootstrap: int,
) -> Scores | Comparison:
    """One system's scores, or with ``compare`` the paired bootstrap test against them."""
    from nmt import evaluate as ev
    from nmt.errors import ConfigError

    # TER's CJK handling follows the language, whichever BLEU tokenizer was asked for.
    asian = lang == "zh" or tok == "zh"
    if not compare:
        return ev.score(hyps, streams, tok, metric_names, ter_asian_support=asian)
    others = {str(p): ev.read_texts(p) for p in compare}
    if baseline in others or len(others) < len(compare):
        raise ConfigError(
            "--compare: each system file must be given once and differ from the baseline"
        )
    return ev.compare(hyps, others, streams, tok, metric_names, bootstrap,
                      baseline_name=baseline, ter_asian_support=asian)  # fmt: skip


def _translate_for_evaluation(
    run_dir: Path,
    src: Path | None,
    ref: list[Path] | None,
    split: str | None,
    decode: dict[str, Any],
    device: str | None,
    seed: int | None,
    checkpoint: str,
    tokenize: str | None,
    tgt_lang: str | None,
    precision: str | None = None,
    zh_script: str | None = None,
    glossary: Glossary | None = None,
    to: str | None = None,
) -> tuple[list[str], dict[str, list[str]], DecodeStats, str, str, list[str],
           Callable[[str], str]]:  # fmt: skip
    """``--model`` mode: read the sources and references, translate them timed.

    Returns the hypotheses, the references by name, the DecodeStats, the run's target
    language, a system name, the sources and how the run reads a source (normalized and
    converted as translation and constraints see it, for the term usage rate).
    """
    from nmt import evaluate as ev
    from nmt import run_eval
    from nmt.datautil.directions import config_toward
    from nmt.datautil.zh_script import check_output_script
    from nmt.errors import ConfigError, DataError
    from nmt.fileio import read_lines

    # Validates the decoding options exactly as config overrides are validated.
    cfg = config_toward(run_eval.run_config(run_dir, decode), to)
    lang = cfg.data.tgt_lang
    if tgt_lang is not None and tgt_lang != lang:
        raise ConfigError(
            f"--tgt-lang {tgt_lang} contradicts {run_dir / 'config.yaml'}: data.tgt_lang={lang}"
        )
    script = check_output_script(zh_script, lang) if zh_script is not None else None
    if src is None and ref:
        raise ConfigError("--ref needs --src FILE (without both, the run's --split is scored)")
    if src is not None:
        if split is not None:
            raise ConfigError("--split scores the run's own corpus; drop --src and --ref")
        if not ref:
            raise ConfigError("--src needs --ref FILE (repeat it for several references)")
        refs = {str(p): ev.read_texts(p) for p in ref}
        sources, name = read_lines(src), src.name
        if not sources:
            raise DataError(f"{src}: file is empty; nothing to translate")
        ev.check_aligned(str(src), len(sources), refs)  # before loading a model, not after
    else:
        data = run_eval.read_split(cfg, split or "test")
        sources, name, refs = data.sources, data.name, {data.name: data.references}
    translator = run_eval.load_translator(run_dir, device or "auto", checkpoint, precision, to)
    settings = {"device": device or "auto", "checkpoint": checkpoint,
                "precision": translator.precision}  # fmt: skip
    hyps, stats = run_eval.translate_timed(
        translator, cfg, sources, {**decode, "seed": seed}, settings, tokenize, glossary
    )
    if script is not None:
        hyps = [translator.processor.convert_tgt_script(h, script) for h in hyps]
    return (hyps, refs, stats, lang, f"{run_dir} ({name})", list(sources),
            translator.processor.prepare_src)
