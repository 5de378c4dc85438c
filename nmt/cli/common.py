"""What every command shares: the Typer app, error reporting and config overrides.

Commands live one per module in :mod:`nmt.cli` and register themselves on :data:`app` when
imported. Every :class:`~nmt.errors.NmtError` becomes one line ``nmt: error: ...`` and its exit
code; nothing else in the package exits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from nmt.errors import NmtError

app = typer.Typer(
    name="nmt",
    help="Chinese<->English neural machine translation: build-vocab, train, translate, "
    "evaluate, average, tune, serve, export.",
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


def overrides(pairs: dict[str, Any], extra: list[str] | None) -> list[str]:
    """Command-line options become ``--set`` overrides, applied before the explicit ones."""
    out = [f"{k}={_yaml_scalar(v)}" for k, v in pairs.items() if v is not None]
    return out + list(extra or [])


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
