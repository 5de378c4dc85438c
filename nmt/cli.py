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
from typing import Annotated, Any, TypeVar

import typer

from nmt import __version__
from nmt.errors import NmtError

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


def _not_yet(name: str) -> None:
    fail(f"'nmt {name}' is not yet available in this version", 1)


@app.command()
def train(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Train a model from a YAML config (not yet available)."""
    _not_yet("train")


@app.command()
def translate() -> None:
    """Translate text with a trained model (not yet available)."""
    _not_yet("translate")


@app.command()
def evaluate() -> None:
    """Score translations with BLEU, chrF and TER (not yet available)."""
    _not_yet("evaluate")


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
