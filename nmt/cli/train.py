"""`nmt train`: train a model from a YAML config, or resume a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nmt.cli.common import ConfigOpt, SetOpt, app, overrides, reports_errors


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
    nproc: Annotated[
        int | None,
        typer.Option(help="Data-parallel training in N processes on this machine (starts "
                     "torchrun: one process per GPU, or gloo on CPU). Several machines: see "
                     "the README."),
    ] = None,
) -> None:
    """Train a model from a YAML config, or continue one with --resume RUN_DIR.

    Ctrl-C (SIGINT) or SIGTERM saves a checkpoint within seconds and exits 130/143.
    """
    if nproc is not None and nproc != 1:
        from nmt.training.launch import launch

        given = {"--config": config, "--resume": resume, "--device": device, "--seed": seed,
                 "--run-dir": run_dir, "--max-steps": max_steps}  # fmt: skip
        args = [x for k, v in given.items() if v is not None for x in (k, str(v))]
        args += [x for item in set_ or [] for x in ("--set", item)]
        raise typer.Exit(launch(nproc, args))
    import signal as signal_module

    from nmt.checkpoint.average import average_after_training
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
    sets = overrides(
        {"run_dir": run_dir, "seed": seed, "train.device": device, "train.max_steps": max_steps},
        set_,
    )
    cfg = load_config(config, sets)
    result = run_training(cfg, resume=resume is not None)
    if result.status == "interrupted" and result.signal is not None:
        name = signal_module.Signals(result.signal).name
        saved = "checkpoint saved" if result.checkpoint is not None else "nothing to save yet"
        if result.rank == 0:
            typer.echo(
                f"nmt: {name} at step {result.step}: {saved}; resume with: "
                f"nmt train --resume {result.run_dir}",
                err=True,
            )
        raise typer.Exit(exit_code(result.signal))
    if result.rank != 0:  # data parallel: rank 0 reports (and averages) for the whole job
        return
    averaged = average_after_training(result.run_dir, cfg.train.average_last)
    best = "n/a" if result.best_bleu is None else f"{result.best_bleu:.2f}"
    typer.echo(
        f"training {result.status} at step {result.step}; best dev BLEU {best}; "
        f"checkpoint {result.checkpoint}" + (f"; averaged {averaged.path}" if averaged else "")
    )
