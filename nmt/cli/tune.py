"""`nmt tune`: choose the beam-search length penalty on the run's dev split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nmt.cli.common import app, reports_errors
from nmt.cli.decoding import decoding_options
from nmt.tuning import DEFAULT_VALUES, parse_values, tune_length_penalty, write_length_penalty


@app.command()
@reports_errors
@decoding_options("Decoding (defaults: the run's config.yaml; always beam search)",
                  exclude={"strategy", "n_best", "length_penalty", "temperature", "top_k",
                           "top_p"})  # fmt: skip
def tune(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of 'nmt train'.")],
    length_penalty: Annotated[
        str, typer.Option(help="Comma-separated GNMT length penalties (alpha) to try.")
    ] = ",".join(f"{value:g}" for value in DEFAULT_VALUES),
    write: Annotated[
        bool,
        typer.Option("--write", help="Store the best value as decode.length_penalty in "
                     "RUN_DIR/config.yaml (the default of translate and evaluate)."),
    ] = False,
    checkpoint: Annotated[
        str, typer.Option(help="best, latest, averaged, or a checkpoint name or directory.")
    ] = "best",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    *,
    decode: dict[str, Any],
) -> None:
    """Decode the dev split once per length penalty and print dev BLEU for each.

    With --write the best value goes into RUN_DIR/config.yaml (written atomically).
    """
    import json

    values = parse_values(length_penalty)
    result = tune_length_penalty(run_dir, values, split="dev", device=device,
                                 checkpoint=checkpoint, options=decode)  # fmt: skip
    written = write_length_penalty(run_dir, result.best) if write else None
    if json_output:
        data = result.to_dict() | {"written": str(written) if written else None}
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        typer.echo(result.format_table())
    if written is not None:
        typer.echo(f"decode.length_penalty = {result.best:g} written to {written}", err=True)
