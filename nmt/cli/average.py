"""`nmt average`: average the weights of a run's last checkpoints into a new checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nmt.cli.common import app, reports_errors


@app.command()
@reports_errors
def average(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of 'nmt train'.")],
    last: Annotated[
        int | None,
        typer.Option(help="Average the last N saved checkpoints (the trainer keeps "
                     "train.keep_last of them). Default 5 when --checkpoints is not given."),
    ] = None,
    checkpoints: Annotated[
        list[str] | None,
        typer.Option(help="Average these checkpoints instead: names in RUN_DIR/checkpoints "
                     "(step-001000) or directories; comma-separated or repeated."),
    ] = None,
    output: Annotated[
        str,
        typer.Option(help="Name of the new checkpoint in RUN_DIR/checkpoints (load it with "
                     "--checkpoint NAME)."),
    ] = "averaged",
) -> None:
    """Average the weights of several checkpoints (element-wise mean) into a new one.

    The result, RUN_DIR/checkpoints/averaged/ by default, is written atomically and is used by
    'nmt translate/evaluate/tune --checkpoint averaged'. It holds weights only (not resumable).
    """
    from nmt.checkpoint.average import average_checkpoints

    names = [n.strip() for item in checkpoints or [] for n in item.split(",") if n.strip()]
    if last is None and not names:
        last = 5
    result = average_checkpoints(run_dir, last=last, names=names, output=output)
    typer.echo(result.format())
