"""The `nmt` command line: thin Typer commands over importable library functions.

Each command parses options, loads the config and calls one library function. Data goes to
stdout, logs and progress to stderr. Every :class:`~nmt.errors.NmtError` becomes one line
``nmt: error: ...`` and its exit code; nothing else in the package exits.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from nmt import __version__
from nmt.errors import NmtError

if TYPE_CHECKING:
    from nmt.evaluate import Comparison, DecodeStats, Scores

app = typer.Typer(
    name="nmt",
    help="Chinese<->English neural machine translation: build-vocab, train, translate, evaluate.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (see configs/reference.yaml)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set train.lr=3e-4 (repeatable)."),
]


def fail(message: str, code: int = 1) -> None:
    """Print one error line and exit; the only way a command ends in failure."""
    typer.echo(f"nmt: error: {message}", err=True)
    raise typer.Exit(code)


def reports_errors(func: F) -> F:
    """Turn a library :class:`NmtError` into one ``nmt: error:`` line and its exit code.

    Applied to every command, so CliRunner tests see the same behaviour as the console script.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NmtError as e:
            fail(str(e), e.exit_code)

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"nmt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
) -> None:
    """Chinese<->English neural machine translation toolkit."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )


def _overrides(pairs: dict[str, Any], extra: list[str] | None) -> list[str]:
    """Command-line options become ``--set`` overrides, applied before the explicit ones."""
    out = [f"{k}={_yaml_scalar(v)}" for k, v in pairs.items() if v is not None]
    return out + list(extra or [])


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return str(value)
    return str(value)


@app.command("build-vocab")
@reports_errors
def build_vocab_cmd(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Run directory; vocabularies go to RUN_DIR/vocab.")
    ] = None,
    train: Annotated[
        str | None, typer.Option(help="Training corpus: a TSV file, or a prefix for aligned files.")
    ] = None,
    dev: Annotated[str | None, typer.Option(help="Dev corpus (for the OOV rate).")] = None,
    data_format: Annotated[
        str | None, typer.Option("--format", help="Corpus format: tsv or aligned.")
    ] = None,
    src_lang: Annotated[str | None, typer.Option(help="Source language: zh or en.")] = None,
    tgt_lang: Annotated[str | None, typer.Option(help="Target language: zh or en.")] = None,
    src_tokenizer: Annotated[
        str | None, typer.Option(help="Source tokenizer: jieba, char, moses, sentencepiece.")
    ] = None,
    tgt_tokenizer: Annotated[
        str | None, typer.Option(help="Target tokenizer: jieba, char, moses, sentencepiece.")
    ] = None,
    joint: Annotated[
        bool | None, typer.Option("--joint/--no-joint", help="One vocabulary for both sides.")
    ] = None,
    min_freq: Annotated[int | None, typer.Option(help="Drop tokens seen fewer times.")] = None,
    max_size: Annotated[
        int | None, typer.Option(help="Keep at most this many tokens (0 = all).")
    ] = None,
    strict: Annotated[
        bool | None,
        typer.Option("--strict/--no-strict", help="Malformed corpus lines are errors."),
    ] = None,
) -> None:
    """Read the corpus, tokenize it and write the vocabularies, then print a summary."""
    from nmt.config import load_config
    from nmt.datautil.build import build_vocab

    overrides = _overrides(
        {
            "run_dir": run_dir,
            "data.train": train,
            "data.dev": dev,
            "data.format": data_format,
            "data.src_lang": src_lang,
            "data.tgt_lang": tgt_lang,
            "data.src_tokenizer.type": src_tokenizer,
            "data.tgt_tokenizer.type": tgt_tokenizer,
            "data.joint_vocab": joint,
            "data.min_freq": min_freq,
            "data.max_size": max_size,
            "data.strict": strict,
        },
        set_,
    )
    cfg = load_config(config, overrides)
    report = build_vocab(cfg)
    typer.echo(report.format())


@app.command()
@reports_errors
def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the run in RUN_DIR from its latest checkpoint (its "
                     "config.yaml is used; --set and the options below still apply)."),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; CPU runs repeat exactly.")] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Run directory: vocabulary, checkpoints, metrics.")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many updates (0 = no limit).")
    ] = None,
) -> None:
    """Train a model from a YAML config, or continue one with --resume RUN_DIR.

    Ctrl-C (SIGINT) or SIGTERM saves a checkpoint within seconds and exits 130/143.
    """
    import signal as signal_module

    from nmt.config import load_config
    from nmt.errors import CheckpointError, ConfigError
    from nmt.training.signals import exit_code
    from nmt.training.trainer import train as run_training

    if resume is not None:
        if config is not None:
            raise ConfigError("--resume reads RUN_DIR/config.yaml; drop --config (use --set)")
        if run_dir is not None and run_dir != resume:
            raise ConfigError("--resume RUN_DIR and --run-dir name different directories")
        if not resume.is_dir():
            raise CheckpointError(f"{resume}: no such run directory, nothing to resume")
        config = resume / "config.yaml"
        if not config.is_file():
            raise CheckpointError(f"{config} not found: {resume} is not an nmt run directory")
        run_dir = resume
    overrides = _overrides(
        {"run_dir": run_dir, "seed": seed, "train.device": device, "train.max_steps": max_steps},
        set_,
    )
    result = run_training(load_config(config, overrides), resume=resume is not None)
    if result.status == "interrupted" and result.signal is not None:
        name = signal_module.Signals(result.signal).name
        saved = "checkpoint saved" if result.checkpoint is not None else "nothing to save yet"
        typer.echo(
            f"nmt: {name} at step {result.step}: {saved}; resume with: "
            f"nmt train --resume {result.run_dir}",
            err=True,
        )
        raise typer.Exit(exit_code(result.signal))
    best = "n/a" if result.best_bleu is None else f"{result.best_bleu:.2f}"
    typer.echo(
        f"training {result.status} at step {result.step}; best dev BLEU {best}; "
        f"checkpoint {result.checkpoint}"
    )


# --------------------------------------------------------------------------- translate
_DECODING = "Decoding (defaults: the run's config.yaml)"


@app.command()
@reports_errors
def translate(
    model: Annotated[
        Path,
        typer.Option("--model", "-m", help="Run directory of 'nmt train' (config.yaml, vocab/, "
                     "checkpoints/)."),
    ],
    text: Annotated[
        list[str] | None,
        typer.Argument(help="Sentences to translate, one output line each. Without TEXT or "
                       "--input, stdin is read (a prompt on a terminal).", show_default=False),
    ] = None,
    input_: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="Read sentences from FILE, one per line "
                     "('-' = stdin). UTF-8; a BOM and CRLF line ends are accepted."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE (atomically) instead of stdout."),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option("--format", help="text: one translation per line; jsonl: one JSON object "
                     "per line with scores, n-best list and tokens."),
    ] = "text",
    errors: Annotated[
        str,
        typer.Option(help="Invalid UTF-8 in the input: strict (an error naming the line) or "
                     "replace (U+FFFD, with a warning)."),
    ] = "strict",
    checkpoint: Annotated[
        str,
        typer.Option(help="best (falls back to latest), latest, or a checkpoint directory."),
    ] = "best",
    device: Annotated[
        str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
    ] = "auto",
    plot_attention: Annotated[
        Path | None,
        typer.Option(help="Write an attention heatmap per sentence to DIR/0001.png, ... "
                     "(needs matplotlib, the viz extra of nmt)."),
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="greedy, beam or sample.", rich_help_panel=_DECODING)
    ] = None,
    beam_size: Annotated[
        int | None, typer.Option(help="Beam width (beam).", rich_help_panel=_DECODING)
    ] = None,
    n_best: Annotated[
        int | None,
        typer.Option(help="Hypotheses kept per sentence (beam; <= --beam-size). Listed in "
                     "jsonl; text prints the best only.", rich_help_panel=_DECODING),
    ] = None,
    length_penalty: Annotated[
        float | None,
        typer.Option(help="GNMT length penalty alpha; 0 ranks by raw log-probability.",
                     rich_help_panel=_DECODING),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="Sampling temperature (> 0).", rich_help_panel=_DECODING),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(help="Sample from the k most likely tokens (0 = off).",
                     rich_help_panel=_DECODING),
    ] = None,
    top_p: Annotated[
        float | None,
        typer.Option(help="Nucleus sampling: the smallest set with this mass (1.0 = off).",
                     rich_help_panel=_DECODING),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Sampling seed (default: the run's seed); same seed and batch "
                     "size, same samples.", rich_help_panel=_DECODING),
    ] = None,
    max_len_a: Annotated[
        float | None,
        typer.Option(help="Output length limit a*|src|+b: a.", rich_help_panel=_DECODING),
    ] = None,
    max_len_b: Annotated[
        int | None,
        typer.Option(help="Output length limit a*|src|+b: b.", rich_help_panel=_DECODING),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Sentences per batch.", rich_help_panel=_DECODING)
    ] = None,
    replace_unk: Annotated[
        bool | None,
        typer.Option("--replace-unk/--no-replace-unk", help="Replace each <unk> in the output "
                     "by the source token it attended to most.", rich_help_panel=_DECODING),
    ] = None,
) -> None:
    """Translate sentences with a trained model: exactly one output line per input line.

    Input: TEXT arguments, --input FILE, or stdin (a '> ' prompt on a terminal; Ctrl-D quits).
    Empty lines give empty lines; a line longer than the model takes is truncated with a
    warning naming it. Translations go to stdout (or --output); logs and progress to stderr.
    """
    import json

    from nmt.errors import ConfigError
    from nmt.fileio import atomic_write_text
    from nmt.translate import Translator

    if output_format not in ("text", "jsonl"):
        raise ConfigError(f"--format: expected text or jsonl, got {output_format!r}")
    if errors not in ("strict", "replace"):
        raise ConfigError(f"--errors: expected strict or replace, got {errors!r}")
    if text and input_ is not None:
        raise ConfigError("give sentences as TEXT arguments or with --input, not both")
    interactive = not text and input_ is None and sys.stdin.isatty()
    if interactive and output is not None:
        raise ConfigError("--output needs TEXT, --input or piped stdin (the prompt prints here)")
    # Input first: a bad file fails before the model is loaded.
    sentences = [] if interactive else list(text or _read_translate_input(input_, errors))
    translator = Translator.load(model, device=device, checkpoint=checkpoint)
    options: dict[str, Any] = dict(
        strategy=strategy, beam_size=beam_size, n_best=n_best, length_penalty=length_penalty,
        temperature=temperature, top_k=top_k, top_p=top_p, max_len_a=max_len_a,
        max_len_b=max_len_b, batch_size=batch_size, replace_unk=replace_unk,
    )
    translator.decode_config(**options)  # bad options fail before any decoding
    plotted = 0

    def run(lines: list[str], progress: bool) -> list[str]:
        nonlocal plotted
        results = translator.translate(lines, **options, seed=seed, return_details=True,
                                       with_attention=plot_attention is not None,
                                       progress=progress)
        for r in results:
            plotted += 1
            if plot_attention is not None and r.tokens and r.src_tokens:
                translator.plot_attention(r, plot_attention / f"{plotted:04d}.png")
        if output_format == "jsonl":
            return [json.dumps(r.to_dict(), ensure_ascii=False) for r in results]
        return [r.translation for r in results]

    if interactive:
        _translate_prompt(run)
        return
    lines = run(sentences, progress=len(sentences) > 1 and sys.stderr.isatty())
    data = "".join(f"{line}\n" for line in lines)
    if output is not None:
        atomic_write_text(output, data)
    else:
        sys.stdout.write(data)
        sys.stdout.flush()


def _read_translate_input(path: Path | None, errors: str) -> list[str]:
    """Lines of FILE or stdin (``-`` or None): split on ``\\n`` only, as nmt.fileio reads."""
    from nmt.errors import DataError
    from nmt.fileio import decode_lines, read_bytes

    if path is None or str(path) == "-":
        data, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        data, name = read_bytes(path), str(path)
    try:
        return decode_lines(data, name)
    except DataError:
        if errors == "strict":
            raise
    bad = []
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(line_no)
    logging.getLogger("nmt.translate").warning(
        "%s: invalid UTF-8 replaced by U+FFFD on %d line(s): %s", name, len(bad),
        ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else ""),
    )
    return decode_lines(data.decode("utf-8", errors="replace").encode("utf-8"), name)


def _translate_prompt(run: Callable[[list[str], bool], list[str]]) -> None:
    """Read a line, print its translation, until end of input (Ctrl-D)."""
    typer.echo("Type a sentence and press Enter; Ctrl-D quits.", err=True)
    while True:
        typer.echo("> ", nl=False, err=True)
        line = sys.stdin.readline()
        if not line:
            typer.echo("", err=True)
            return
        typer.echo(run([line.rstrip("\r\n")], False)[0])


# --------------------------------------------------------------------------- evaluate
_DECODE_PANEL = "Translate and score (--model)"


@app.command()
@reports_errors
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
        str, typer.Option(help="Comma-separated metrics to compute: bleu, chrf, ter.")
    ] = "bleu,chrf,ter",
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for --compare (sacrebleu's default).")
    ] = 1000,
    width: Annotated[
        int, typer.Option(min=0, max=10, help="Decimals printed for scores, as sacrebleu -w.")
    ] = 1,
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
            help="Source sentences to translate (with --model).", rich_help_panel=_DECODE_PANEL
        ),
    ] = None,
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
    strategy: Annotated[
        str | None,
        typer.Option(
            help="greedy, beam or sample (default: the run's config).",
            rich_help_panel=_DECODE_PANEL,
        ),
    ] = None,
    beam_size: Annotated[
        int | None, typer.Option(help="Beam width.", rich_help_panel=_DECODE_PANEL)
    ] = None,
    length_penalty: Annotated[
        float | None,
        typer.Option(help="GNMT length penalty alpha (0 = off).", rich_help_panel=_DECODE_PANEL),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature.", rich_help_panel=_DECODE_PANEL)
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(
            help="Sample from the k best tokens (0 = off).", rich_help_panel=_DECODE_PANEL
        ),
    ] = None,
    top_p: Annotated[
        float | None,
        typer.Option(help="Nucleus sampling mass (1.0 = off).", rich_help_panel=_DECODE_PANEL),
    ] = None,
    max_len_a: Annotated[
        float | None,
        typer.Option(help="Output length limit a*|src|+b: a.", rich_help_panel=_DECODE_PANEL),
    ] = None,
    max_len_b: Annotated[
        int | None,
        typer.Option(help="Output length limit a*|src|+b: b.", rich_help_panel=_DECODE_PANEL),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Sentences per batch.", rich_help_panel=_DECODE_PANEL)
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed for sampling.", rich_help_panel=_DECODE_PANEL)
    ] = None,
) -> None:
    """Score translations with BLEU, chrF and TER (sacrebleu), each with its signature.

    Either --hyp FILE --ref FILE [--ref FILE2 ...], or --model RUN_DIR --src FILE --ref FILE to
    translate and score in one go (also reporting decoding speed and settings). --compare runs
    sacrebleu's paired bootstrap test against the baseline. Tables (or --json) go to stdout.
    """
    from nmt import evaluate as ev
    from nmt.errors import ConfigError

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # sacrebleu narrates every bootstrap step at INFO; keep it for --verbose only.
        logging.getLogger("sacrebleu").setLevel(logging.WARNING)
    metric_names = ev.parse_metrics(metrics)
    if tokenize is not None:
        ev.check_tokenize(tokenize)
    if not ref:
        raise ConfigError("--ref is required (repeat it for several references)")
    if hyp is not None and model is not None:
        raise ConfigError("give either --hyp FILE or --model RUN_DIR --src FILE, not both")
    if tgt_lang not in (None, "zh", "en"):
        raise ConfigError(f"--tgt-lang: expected zh or en, got {tgt_lang!r}")
    refs = {str(p): ev.read_texts(p) for p in ref}
    stats: DecodeStats | None = None
    if model is not None:
        decode = {
            "strategy": strategy,
            "beam_size": beam_size,
            "length_penalty": length_penalty,
            "temperature": temperature,
            "top_k": top_k,
            "top_p": top_p,
            "max_len_a": max_len_a,
            "max_len_b": max_len_b,
            "batch_size": batch_size,
        }
        hyps, stats, lang, baseline = _translate_for_evaluation(
            model, src, refs, decode, device, seed, tokenize, tgt_lang, save_hyp
        )
    elif hyp is not None:
        if src is not None or save_hyp is not None:
            raise ConfigError("--src and --save-hyp belong to --model mode")
        hyps, lang, baseline = ev.read_texts(hyp), tgt_lang or "en", str(hyp)
        ev.check_aligned(baseline, len(hyps), refs)
    else:
        raise ConfigError("give --hyp FILE, or --model RUN_DIR --src FILE, to score")
    tok = tokenize or ev.default_tokenize(lang)
    # TER's CJK handling follows the language, whichever BLEU tokenizer was asked for.
    asian = lang == "zh" or tok == "zh"
    streams = list(refs.values())
    if compare:
        others = {str(p): ev.read_texts(p) for p in compare}
        if baseline in others or len(others) < len(compare):
            raise ConfigError(
                "--compare: each system file must be given once and differ from the baseline"
            )
        result: Scores | Comparison = ev.compare(
            hyps,
            others,
            streams,
            tok,
            metric_names,
            bootstrap,
            baseline_name=baseline,
            ter_asian_support=asian,
        )
    else:
        result = ev.score(hyps, streams, tok, metric_names, ter_asian_support=asian)
    if json_output:
        data = result.to_dict(width) | ({"decoding": stats.to_dict()} if stats else {})
        typer.echo(ev.to_json(data))
    else:
        typer.echo(result.format_table(width))
        if stats is not None:
            typer.echo(stats.format())


def _translate_for_evaluation(
    run_dir: Path,
    src: Path | None,
    refs: dict[str, list[str]],
    decode: dict[str, Any],
    device: str | None,
    seed: int | None,
    tokenize: str | None,
    tgt_lang: str | None,
    save_hyp: Path | None,
) -> tuple[list[str], DecodeStats, str, str]:
    """``--model`` mode: translate ``src`` with the run's model, timed.

    Returns the hypotheses, their DecodeStats, the run's target language and a system name.
    """
    from nmt import evaluate as ev
    from nmt.config import config_to_dict, load_config
    from nmt.errors import CheckpointError, ConfigError, DataError, NmtError
    from nmt.fileio import atomic_write_text, read_lines

    if src is None:
        raise ConfigError("--model needs --src FILE (the sentences to translate)")
    sources = read_lines(src)
    if not sources:
        raise DataError(f"{src}: file is empty; nothing to translate")
    ev.check_aligned(str(src), len(sources), refs)  # before loading a model, not after decoding
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise CheckpointError(
            f"{run_dir}: no config.yaml; expected a run directory from 'nmt train'"
        )
    options = {k: v for k, v in decode.items() if v is not None}
    # Validates the decoding options exactly as config overrides are validated.
    cfg = load_config(config_path, _overrides({f"decode.{k}": v for k, v in options.items()}, []))
    lang = cfg.data.tgt_lang
    if tgt_lang is not None and tgt_lang != lang:
        raise ConfigError(f"--tgt-lang {tgt_lang} contradicts {config_path}: data.tgt_lang={lang}")
    # ---- hook: the Translator API (nmt.translate) -------------------------------------------
    try:
        from nmt.translate import Translator
    except ImportError as e:
        if e.name not in ("nmt.translate", "nmt"):
            raise  # a real import error inside nmt.translate must not be hidden
        raise NmtError(
            "'nmt evaluate --model' needs nmt.translate, which this version "
            "does not have yet; translate with another tool and use --hyp"
        ) from None
    translator = Translator.load(run_dir, device=device or "auto")
    if seed is not None:
        options["seed"] = seed
    settings = {"device": device or "auto", **config_to_dict(cfg.decode), **options}
    logging.getLogger("nmt.evaluate").info("translating %d sentences from %s", len(sources), src)
    hyps, stats = ev.timed_translate(
        lambda xs: translator.translate(xs, **options),
        sources,
        tokenize or ev.default_tokenize(lang),
        settings,
    )
    # ------------------------------------------------------------------------------------------
    if save_hyp is not None:
        atomic_write_text(save_hyp, "".join(f"{h}\n" for h in hyps))
    return hyps, stats, lang, f"{run_dir} ({src.name})"


def main() -> None:
    """Console entry point: run the app, turning library errors into one line and an exit."""
    try:
        app()
    except NmtError as e:
        typer.echo(f"nmt: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("nmt: interrupted", err=True)
        sys.exit(130)
