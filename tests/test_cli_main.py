"""The console entry point: usage errors are one line, help covers every option."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from nmt import __version__
from nmt.cli import app


def run_nmt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nmt", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("build-vocab", "--min-freq", "abc"), "--min-freq"),
        (("translate",), "--model"),
        (("no-such-command",), "no-such-command"),
    ],
)
def test_usage_errors_are_one_line(args: tuple[str, ...], needle: str) -> None:
    result = run_nmt(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nmt: error:") and needle in lines[0]
    assert "Traceback" not in result.stderr


def test_version() -> None:
    result = run_nmt("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"nmt {__version__}"


def test_no_arguments_print_the_usage_once() -> None:
    result = run_nmt()
    assert result.returncode == 0
    assert result.stdout.count("Usage:") == 1, result.stdout
    assert "build-vocab" in result.stdout and not result.stderr


def test_output_survives_the_fast_exit() -> None:
    """main() leaves with os._exit: every byte written before must still arrive."""
    code = (
        "import sys; sys.argv = ['nmt', '--version']; import nmt.cli as c; "
        "sys.stdout.write('x' * 100000); c.main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    assert result.stdout == "x" * 100000 + f"nmt {__version__}\n"


def test_help_lists_the_commands() -> None:
    result = run_nmt("--help")
    assert result.returncode == 0
    for name in ("build-vocab", "train", "translate", "evaluate"):
        assert name in result.stdout


def test_every_option_has_help_text() -> None:
    group = typer.main.get_command(app)
    ctx = group.make_context("nmt", ["--version"], resilient_parsing=True)
    missing = []
    names = group.list_commands(ctx)  # type: ignore[attr-defined]
    assert {"build-vocab", "train", "translate", "evaluate"} <= set(names)
    for name in names:
        command = group.get_command(ctx, name)  # type: ignore[attr-defined]
        assert command is not None and command.help, f"nmt {name} has no help"
        for param in command.params:
            if param.param_type_name == "option" and not getattr(param, "help", None):
                missing.append(f"{name} {param.opts}")
    assert not missing


def test_the_commands_import_no_heavy_library_at_start_up() -> None:
    # `nmt --help`, `nmt build-vocab` and a typo are answered without torch (1.3-1.9 s to
    # import), sacrebleu or numpy: each command imports what it needs when it runs.
    heavy = "('torch', 'sacrebleu', 'numpy', 'jieba')"
    code = f"import sys, nmt.cli\nprint(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"
