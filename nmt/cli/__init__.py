"""The `nmt` command line: thin Typer commands over importable library functions.

One command per module (``build_vocab``, ``train``, ``translate``, ``evaluate``, ``average``,
``tune``, ``serve``, ``export``); each parses options, loads the config and calls one library
function. Data goes to stdout, logs and progress to stderr. Every :class:`~nmt.errors.NmtError`
becomes one line ``nmt: error: ...`` and its exit code; nothing else in the package exits.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, NoReturn

import typer

from nmt import __version__, perf

try:  # typer >= 0.20 vendors its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_errors  # type: ignore[no-redef]
from nmt.cli.common import app, fail, reports_errors
from nmt.errors import NmtError

__all__ = ["app", "fail", "main", "reports_errors"]


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


# Importing a command module registers its command on `app`, in this order in --help.
from nmt.cli import build_vocab, train, translate, evaluate, average, tune, serve, export  # noqa: E402, F401, I001


def main() -> None:
    """Console entry point: run the app, turning every error into one line and an exit code.

    Click's own usage errors (a bad option value, a missing option) would otherwise print a
    boxed panel; a user gets the same one-line ``nmt: error:`` form as for library errors.
    The performance policy (:mod:`nmt.perf`) is applied before any command runs.
    """
    _exit_now(_run())


def _run() -> int:
    """Run the app; the exit code, with every error reported as one line.

    ``typer.Exit`` (``--version``, :func:`~nmt.cli.common.fail`, the commands' own codes) is not
    an exception here: with ``standalone_mode=False`` the app returns its code.
    """
    try:
        perf.apply()  # before any command runs a kernel; a bad NMT_PERF_POLICY is an NmtError
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as e:
        # The error's message is the help; with rich installed, building it already printed it
        # (the message is then empty), so asking the context again would print it twice.
        if e.format_message():
            typer.echo(e.format_message())
        return 0
    except click_errors.ClickException as e:
        ctx = getattr(e, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        typer.echo(f"nmt: error: {e.format_message()}{where}", err=True)
        return e.exit_code
    except typer.Abort:
        typer.echo("nmt: interrupted", err=True)
        return 130
    except NmtError as e:
        typer.echo(f"nmt: error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        typer.echo("nmt: interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0


def _exit_now(code: int) -> NoReturn:
    """Flush and leave without the interpreter's teardown.

    Tearing down a process that imported torch frees every module and its objects: on a 2-core
    CPU ``python -c "import torch"`` took 2.3 s, 1.5 s with ``os._exit`` (3 runs each). By now
    every file is written and closed (outputs are written atomically), so only the streams need
    flushing.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``nmt translate ... | head``)
            code = code or 1
    os._exit(code)
