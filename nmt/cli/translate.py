"""`nmt translate`: sentences from arguments, a file, stdin or a prompt, one line out each."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nmt.cli.common import app, reports_errors
from nmt.cli.decoding import decoding_options

if TYPE_CHECKING:
    from nmt.translate import Translation, Translator
    from nmt.translate.ctranslate2_engine import CTranslate2Translator

_DECODING = "Decoding (defaults: the run's config.yaml)"


@app.command()
@reports_errors
@decoding_options(_DECODING)
def translate(
    model: Annotated[
        Path,
        typer.Option("--model", "-m", help="Run directory of 'nmt train' (config.yaml, vocab/, "
                     "checkpoints/), or with --engine ctranslate2 the directory of 'nmt export "
                     "--to ctranslate2'."),
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
        typer.Option(help="best (falls back to latest), latest, averaged (see 'nmt average'), "
                     "a checkpoint name in RUN_DIR/checkpoints, or a checkpoint directory; "
                     "a,b[,c]: an ensemble (other runs' directories allowed when the "
                     "vocabularies match)."),
    ] = "best",
    to: Annotated[
        str | None,
        typer.Option("--to", help="Language to translate into, zh or en (default: the run's "
                     "target); the other one needs a run trained with data.directions: both."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(help="torch: the run's checkpoint in PyTorch; ctranslate2: a model "
                     "written by 'nmt export --to ctranslate2' (the export extra), with the "
                     "same text processing. It has no --glossary."),
    ] = "torch",
    device: Annotated[
        str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps "
                          "(ctranslate2: no mps).")
    ] = "auto",
    precision: Annotated[
        str | None,
        typer.Option(help="auto, fp32, bf16, fp16 (GPU) or int8 (x86 CPU: int8 matrix "
                     "products; faster for Transformers) arithmetic (default: the run's "
                     "train.precision; auto is bf16 on GPUs and on CPUs with native bf16). "
                     "With ctranslate2, its compute type (default: the exported weights')."),
    ] = None,
    zh_script: Annotated[
        str | None,
        typer.Option(help="Chinese target only: write the output in hans (Simplified), hant "
                     "(Traditional), tw (Taiwan) or hk (Hong Kong) characters (OpenCC)."),
    ] = None,
    plot_attention: Annotated[
        Path | None,
        typer.Option(help="Write an attention heatmap per sentence to DIR/0001.png, ... "
                     "(needs matplotlib, the viz extra of nmt)."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Sampling seed (default: the run's seed); same seed and batch "
                     "size, same samples.", rich_help_panel=_DECODING),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="Target text every translation starts with; the model continues "
                     "it (post-editing). With --input-format jsonl, a line's own \"prefix\" "
                     "wins.", rich_help_panel=_DECODING),
    ] = None,
    glossary: Annotated[
        Path | None,
        typer.Option(help="TSV of 'source term<TAB>target term': when a source term occurs in "
                     "a sentence, its target term must appear in the translation (beam "
                     "search).", rich_help_panel=_DECODING),
    ] = None,
    input_format: Annotated[
        str,
        typer.Option(help="text: one sentence per line; jsonl: one JSON object per line, "
                     "{\"source\": ..., \"prefix\": ...} (prefix optional)."),
    ] = "text",
    *,
    decode: dict[str, Any],
) -> None:
    """Translate sentences with a trained model: exactly one output line per input line.

    Input: TEXT arguments, --input FILE, or stdin (a '> ' prompt on a terminal; Ctrl-D quits).
    Empty lines give empty lines; a line longer than the model takes is truncated with a
    warning naming it. Translations go to stdout (or --output); logs and progress to stderr.
    """
    import json

    from nmt.errors import ConfigError
    from nmt.fileio import atomic_write_text

    if engine not in ("torch", "ctranslate2"):
        raise ConfigError(f"--engine: expected torch or ctranslate2, got {engine!r}")
    if output_format not in ("text", "jsonl"):
        raise ConfigError(f"--format: expected text or jsonl, got {output_format!r}")
    if input_format not in ("text", "jsonl"):
        raise ConfigError(f"--input-format: expected text or jsonl, got {input_format!r}")
    if errors not in ("strict", "replace"):
        raise ConfigError(f"--errors: expected strict or replace, got {errors!r}")
    if engine == "ctranslate2" and glossary is not None:
        raise ConfigError("--glossary: CTranslate2 has no terminology constraints; translate "
                          "with --engine torch")  # fmt: skip
    if text and input_ is not None:
        raise ConfigError("give sentences as TEXT arguments or with --input, not both")
    interactive = not text and input_ is None and sys.stdin.isatty()
    if interactive and output is not None:
        raise ConfigError("--output needs TEXT, --input or piped stdin (the prompt prints here)")
    # Input first: a bad file fails before the model is loaded.
    sentences = [] if interactive else list(text or _read_input(input_, errors))
    prefixes: list[str | None] | None = None
    if input_format == "jsonl" and not interactive:
        name = "<stdin>" if input_ is None or str(input_) == "-" else str(input_)
        sentences, prefixes = _read_jsonl(sentences, name, prefix)
    elif prefix:
        prefixes = [prefix] * len(sentences)
    from nmt.datautil.glossary import read_glossary

    terms = None if glossary is None else read_glossary(glossary)
    translator = _load(model, engine, device, checkpoint, precision, to)
    translator.decode_config(decode)  # bad options fail before any decoding
    in_script = _script_converter(translator, zh_script)
    plotted = 0

    def run(lines: list[str], progress: bool, line_prefixes: list[str | None] | None
            ) -> list[str]:  # fmt: skip
        nonlocal plotted
        results = translator.translate(lines, decode, prefixes=line_prefixes, glossary=terms,
                                       seed=seed,
                                       return_details=True,
                                       with_attention=plot_attention is not None,
                                       progress=progress)  # fmt: skip
        results = [in_script(r) for r in results]
        for r in results:
            plotted += 1
            if plot_attention is not None and r.tokens and r.src_tokens:
                translator.plot_attention(r, plot_attention / f"{plotted:04d}.png")
        if output_format == "jsonl":
            return [json.dumps(r.to_dict(), ensure_ascii=False) for r in results]
        return [r.translation for r in results]

    if interactive:
        _translate_prompt(lambda lines: run(lines, False, [prefix] if prefix else None))
        return
    lines = run(sentences, len(sentences) > 1 and sys.stderr.isatty(), prefixes)
    data = "".join(f"{line}\n" for line in lines)
    if output is not None:
        atomic_write_text(output, data)
    else:
        sys.stdout.write(data)
        sys.stdout.flush()


def _load(model: Path, engine: str, device: str, checkpoint: str, precision: str | None,
          to: str | None = None) -> Translator | CTranslate2Translator:  # fmt: skip
    """The engine's translator; the CTranslate2 one never imports torch."""
    if engine == "ctranslate2":
        from nmt.translate.ctranslate2_engine import CTranslate2Translator

        return CTranslate2Translator.load(model, device=device, precision=precision,
                                          checkpoint=checkpoint, to=to)  # fmt: skip
    from nmt.translate import Translator

    return Translator.load(model, device=device, checkpoint=checkpoint, precision=precision,
                           to=to)


def _script_converter(translator: Translator | CTranslate2Translator, zh_script: str | None
                      ) -> Callable[[Translation], Translation]:
    """What --zh-script does to a translation: its texts (best and n-best) in that script;
    the tokens stay as the model produced them."""
    import dataclasses

    from nmt.datautil.zh_script import check_output_script

    if zh_script is None:
        return lambda r: r
    script = check_output_script(zh_script, translator.config.data.tgt_lang)
    convert = translator.processor.convert_tgt_script

    def in_script(r: Translation) -> Translation:
        nbest = [e._replace(translation=convert(e.translation, script)) for e in r.nbest]
        return dataclasses.replace(r, translation=convert(r.translation, script), nbest=nbest)

    return in_script


def _read_input(path: Path | None, errors: str) -> list[str]:
    """Lines of FILE or stdin (``-`` or None): split on ``\\n`` only, as nmt.fileio reads."""
    from nmt.fileio import decode_lines_lenient, read_bytes

    if path is None or str(path) == "-":
        data, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        data, name = read_bytes(path), str(path)
    return decode_lines_lenient(data, name, "replace" if errors == "replace" else "strict")


def _read_jsonl(lines: list[str], name: str, default_prefix: str | None
                ) -> tuple[list[str], list[str | None]]:  # fmt: skip
    """Sources and prefixes of ``--input-format jsonl`` lines (an empty line: an empty source).

    Raises:
        DataError: a line that is not a JSON object with a string "source" (and, if given, a
            string "prefix"), naming the file and line.
    """
    import json

    from nmt.errors import DataError

    sources: list[str] = []
    prefixes: list[str | None] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            sources.append("")
            prefixes.append(default_prefix)
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{name}:{number}: not JSON ({e.msg})") from None
        source = item.get("source") if isinstance(item, dict) else None
        line_prefix = item.get("prefix", default_prefix) if isinstance(item, dict) else None
        if not isinstance(source, str) or not isinstance(line_prefix, (str, type(None))):
            raise DataError(f"{name}:{number}: expected an object with a string \"source\" "
                            f"(and optionally a string \"prefix\")")
        sources.append(source)
        prefixes.append(line_prefix)
    return sources, prefixes


def _translate_prompt(run: Callable[[list[str]], list[str]]) -> None:
    """Read a line, print its translation, until end of input (Ctrl-D)."""
    typer.echo("Type a sentence and press Enter; Ctrl-D quits.", err=True)
    while True:
        typer.echo("> ", nl=False, err=True)
        line = sys.stdin.readline()
        if not line:
            typer.echo("", err=True)
            return
        typer.echo(run([line.rstrip("\r\n")])[0])
