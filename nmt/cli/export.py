"""`nmt export`: a trained Transformer run as a CTranslate2 model, translatable on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nmt.cli.common import app, reports_errors


@app.command()
@reports_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of 'nmt train'.")],
    out_dir: Annotated[
        Path,
        typer.Argument(help="Directory to write: the model, config.yaml and vocab/ (built "
                       "beside it and renamed into place)."),
    ],
    to: Annotated[str, typer.Option("--to", help="The format: ctranslate2.")],
    quantization: Annotated[
        str | None,
        typer.Option(help="Weight type: int8, int8_float32, int8_float16, int8_bfloat16, "
                     "int16, float16, bfloat16 or float32 (default: float32)."),
    ] = None,
    checkpoint: Annotated[
        str,
        typer.Option(help="best (falls back to latest), latest, averaged (see 'nmt average'), "
                     "a checkpoint name in RUN_DIR/checkpoints, or a checkpoint directory."),
    ] = "best",
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT_DIR when it exists and is not empty.")
    ] = False,
) -> None:
    """Export a Transformer run for another inference engine (needs the export extra).

    OUT_DIR alone is enough to translate: 'nmt translate --engine ctranslate2 --model OUT_DIR'
    tokenizes and detokenizes as the run does. Attention-GRU runs cannot be exported.
    """
    from nmt.export import export_run

    report = export_run(run_dir, out_dir, to, quantization=quantization,
                        checkpoint=checkpoint, force=force)  # fmt: skip
    typer.echo(report.format())
