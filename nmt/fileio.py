"""Reading corpora line by line and writing run files atomically.

Lines are split on ``\\n`` only. Python's text mode and :meth:`str.splitlines` also break on
``\\r``, ``\\x85``, ``\\u2028`` and friends, which occur inside real sentences and would silently
shift every later line of one side of a parallel corpus against the other. A UTF-8 byte-order
mark and Windows line endings are tolerated because downloaded corpora often have them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from nmt.errors import DataError

_BOM = b"\xef\xbb\xbf"


def read_bytes(path: str | Path) -> bytes:
    """The whole file, or a one-line :class:`DataError` naming it."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None


def _invalid_utf8(name: str, data: bytes, err: UnicodeDecodeError) -> DataError:
    line_no = data.count(b"\n", 0, err.start) + 1
    line_start = data.rfind(b"\n", 0, err.start) + 1
    column = err.start - line_start + 1
    bad = data[err.start : err.end].hex(" ")
    return DataError(
        f"{name}:{line_no}: invalid UTF-8 (byte {bad} at byte column {column}); "
        "re-save the file as UTF-8"
    )


def decode_lines(data: bytes, name: str) -> list[str]:
    """Split raw file bytes into lines (see the module docstring for the rules).

    Args:
        data: the file content.
        name: the file name used in error messages.

    Raises:
        DataError: ``NAME:LINE: invalid UTF-8 ...`` with the 1-based line number.
    """
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _invalid_utf8(name, data, e) from None
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":  # a final newline ends the last line; it does not start a new one
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 file: BOM stripped, split on ``\\n`` only, one ``\\r`` removed.

    Raises:
        DataError: the file is missing, unreadable or not valid UTF-8 (names file and line).
    """
    return decode_lines(read_bytes(path), str(path))


def iter_lines(path: str | Path) -> Iterator[str]:
    """Like :func:`read_lines` but streaming, for inputs too large to hold (e.g. translate).

    Binary-mode iteration splits on ``\\n`` only, so the same rules hold line by line.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    with handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            raw = raw[:-1] if raw.endswith(b"\n") else raw
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{line_no}: invalid UTF-8 (byte {raw[e.start:e.end].hex(' ')} at "
                    f"byte column {e.start + 1}); re-save the file as UTF-8"
                ) from None


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the new one, never a torn one.

    The temporary file lives in the target's directory (``os.replace`` cannot cross file
    systems); it is fsynced before the rename and the directory after it. Parent directories
    are created.

    Raises:
        DataError: the file or its directory cannot be written.
    """
    target = Path(path)
    # Not tempfile.mkstemp: its files are mode 0600, while the result should get the usual
    # permissions from the umask, like any file the user writes.
    tmp_name = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise DataError(f"{target}: cannot write: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(e, OSError):
            raise DataError(f"{target}: cannot write: {e.strerror or e}") from None
        raise
    _fsync_dir(target.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` as UTF-8, newlines written exactly as given."""
    atomic_write_bytes(path, text.encode("utf-8"))
