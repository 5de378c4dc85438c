"""`nmt build-vocab`: read the corpus, tokenize it and write the vocabularies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nmt.cli.common import ConfigOpt, SetOpt, app, overrides, reports_errors


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
    workers: Annotated[
        int | None,
        typer.Option(help="Tokenizing processes (data.workers; 0 = one per usable core). "
                     "The files are the same for any number."),
    ] = None,
) -> None:
    """Read the corpus, tokenize it and write the vocabularies, then print a summary."""
    from nmt.config import load_config
    from nmt.datautil.build import build_vocab

    sets = overrides(
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
            "data.workers": workers,
        },
        set_,
    )
    cfg = load_config(config, sets)
    report = build_vocab(cfg)
    typer.echo(report.format())
