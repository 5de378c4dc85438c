"""What every command shares: the Typer app, error reporting and config overrides.

Commands live one per module in :mod:`nmt.cli` and register themselves on :data:`app` when
imported. Every :class:`~nmt.errors.NmtError` becomes one line ``nmt: error: ...`` and its exit
code; nothing else in the package exits.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from nmt.errors import NmtError

app = typer.Typer(
    name="nmt",
    help="Chinese<->English neural machine translation: build-vocab, train, translate, "
    "evaluate, average, tune.",
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


# Decoding meets a new matrix shape at almost every step (the rows shrink as sentences finish),
# and bucketed training batches come in hundreds of shapes. For bf16 matmuls on CPU, oneDNN keeps
# a compiled kernel per shape and PyTorch's ideep layer a prepared operation per shape, up to
# 1,024 of each by default, and never gives that memory back. Measured on this project's 2-core
# CPU (docs/performance.md), peak RSS with the defaults / 64 and 32 / these caps: bf16 beam search
# of the cmn-eng test set 726 / 482 / 434-438 MiB (two batches at once; 16 and 8 ran as fast as
# 64 and 32 within noise, 8 and 4 slower); bf16 training of the zh->en recipe 1,781 / 1,380 /
# 1,201 MiB at the same speed (4,093 vs 4,185 target tok/s for the last two, one run each).
KERNEL_CACHES = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", "LRU_CACHE_CAPACITY": "8"}


def limit_kernel_caches() -> None:
    """Cap the CPU kernel caches (values the user set are kept).

    Both libraries read their variable when they first run a kernel, so ``nmt`` calls this
    before any command runs.
    """
    for name, value in KERNEL_CACHES.items():
        os.environ.setdefault(name, value)


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


def overrides(pairs: dict[str, Any], extra: list[str] | None) -> list[str]:
    """Command-line options become ``--set`` overrides, applied before the explicit ones."""
    out = [f"{k}={_yaml_scalar(v)}" for k, v in pairs.items() if v is not None]
    return out + list(extra or [])


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
