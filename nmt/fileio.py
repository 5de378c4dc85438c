"""Reading corpora line by line (plain or compressed) and writing run files atomically.

Lines are split on ``\\n`` only. Python's text mode and :meth:`str.splitlines` also break on
``\\r``, ``\\x85``, ``\\u2028`` and friends, which occur inside real sentences and would silently
shift every later line of one side of a parallel corpus against the other. A UTF-8 byte-order
mark and Windows line endings are tolerated because downloaded corpora often have them.
Files ending in ``.gz``, ``.xz`` or ``.bz2`` are decompressed on the fly; a truncated or corrupt
one is an error naming the file and the line where it broke off.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import logging
import lzma
import os
import stat
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from nmt.errors import DataError

log = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"


def _read_error(path: str | Path, e: OSError) -> DataError:
    if isinstance(e, FileNotFoundError):
        return DataError(f"{path}: file not found")
    if isinstance(e, IsADirectoryError):
        return DataError(f"{path}: is a directory, expected a file")
    return DataError(f"{path}: cannot read: {e.strerror or e}")


def open_binary(path: str | Path) -> BinaryIO:
    """``open(path, "rb")``, or a one-line :class:`DataError` naming the file."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as e:
        raise _read_error(path, e) from None


# Suffix -> opener of a decompressing binary stream. What each raises on damaged input:
# EOFError (truncated), zlib.error / lzma.LZMAError / OSError (corrupt, not that format).
_DECOMPRESSORS: dict[str, Callable[[str], Any]] = {
    ".gz": lambda p: gzip.open(p, "rb"),  # noqa: SIM115 - the caller closes it
    ".xz": lambda p: lzma.open(p, "rb"),  # noqa: SIM115
    ".bz2": lambda p: bz2.open(p, "rb"),  # noqa: SIM115
}
_DAMAGED = (EOFError, zlib.error, lzma.LZMAError, OSError)


def compression(path: str | Path) -> str | None:
    """``".gz"``, ``".xz"`` or ``".bz2"`` when the file is read decompressed, else None."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in _DECOMPRESSORS else None


def open_decompressed(path: str | Path) -> BinaryIO:
    """A binary stream of the file's content, decompressed by its suffix (see
    :func:`compression`); a one-line :class:`DataError` naming the file when it cannot be
    opened."""
    kind = compression(path)
    handle = open_binary(path)
    if kind is None:
        return handle
    handle.close()
    return _DECOMPRESSORS[kind](str(path))  # type: ignore[no-any-return,unused-ignore]


def _damaged(path: str | Path, line_no: int, e: BaseException) -> DataError:
    detail = str(e).strip() or type(e).__name__
    return DataError(f"{path}:{line_no}: truncated or corrupt {compression(path)} file "
                     f"({detail}); download it again")


def count_lines(path: str | Path) -> int | None:
    """Number of lines of a plain file (a fast byte scan), for progress bars; None for a
    compressed file (counting would mean decompressing it twice) or an unreadable one."""
    if compression(path) is not None:
        return None
    try:
        with open(path, "rb") as f:
            n = last = 0
            for block in iter(lambda: f.read(1 << 22), b""):
                n += block.count(b"\n")
                last = block[-1]
            return n + (last not in (0, 0x0A))
    except OSError:
        return None


def read_bytes(path: str | Path) -> bytes:
    """The whole file, or a one-line :class:`DataError` naming it."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise _read_error(path, e) from None


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


def decode_lines_lenient(
    data: bytes, name: str, errors: Literal["strict", "replace"] = "strict"
) -> list[str]:
    """:func:`decode_lines`, or with ``errors="replace"`` invalid UTF-8 replaced by U+FFFD and
    one warning naming the lines (for user input to translate, where a line must not vanish).
    """
    try:
        return decode_lines(data, name)
    except DataError:
        if errors == "strict":
            raise
    bad = []
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(line_no)
    log.warning(
        "%s: invalid UTF-8 replaced by U+FFFD on %d line(s): %s", name, len(bad),
        ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else ""),
    )  # fmt: skip
    return decode_lines(data.decode("utf-8", errors="replace").encode("utf-8"), name)


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 file: BOM stripped, split on ``\\n`` only, one ``\\r`` removed.

    Raises:
        DataError: the file is missing, unreadable or not valid UTF-8 (names file and line).
    """
    if compression(path) is not None:
        return list(iter_lines(path))
    return decode_lines(read_bytes(path), str(path))


def iter_lines(path: str | Path) -> Iterator[str]:
    """Like :func:`read_lines` but streaming, for inputs too large to hold (corpora,
    translate); compressed files are decompressed on the fly.

    Binary-mode iteration splits on ``\\n`` only, so the same rules hold line by line.

    Raises:
        DataError: missing/unreadable file, invalid UTF-8, or a truncated or corrupt
            compressed file (``FILE:LINE: ...``, the line where it broke off).
    """
    handle = open_decompressed(path)
    line_no = 0
    with handle:
        lines = iter(handle)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                return
            except _DAMAGED as e:
                raise _damaged(path, line_no + 1, e) from None
            line_no += 1
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


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename inside it is durable (a no-op where that is impossible)."""
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


def _via_proc(path: Path) -> bool:
    """Whether following ``path``'s links leads through ``/proc`` (``/dev/stdout``,
    ``/dev/fd/N``): such a link names an open descriptor, e.g. a shell redirection, which keeps
    writing to its own inode however the name is replaced."""
    p = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        # Directories on the way may be links too (/dev/fd -> /proc/self/fd).
        p = os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
        if p.startswith("/proc/"):
            return True
        if not os.path.islink(p):
            return False
        p = os.path.join(os.path.dirname(p), os.readlink(p))
    return False


def _write_through(target: Path, data: bytes) -> None:
    # O_APPEND and no O_TRUNC: what a shell redirection behind /dev/stdout already holds (>>)
    # stays; devices and FIFOs ignore both. No fsync either: they do not support it.
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        raise DataError(f"{target}: cannot write: {e.strerror or e}") from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the new one, never a torn one.

    The temporary file lives in the target's directory (``os.replace`` cannot cross file
    systems); it is fsynced before the rename and the directory after it. Parent directories
    are created. A symbolic link is followed: the file it points to is replaced and the link
    kept. A target that exists but is not a regular file (``/dev/null``, ``/dev/stdout``, a
    FIFO) is written through directly: renaming over it would replace the device (as root,
    ``-o /dev/null`` would turn it into a plain file) and the reader would never see the data.

    Raises:
        DataError: the file or its directory cannot be written.
    """
    target = Path(path)
    try:
        mode: int | None = target.stat().st_mode
    except OSError:  # missing (or a dangling link): created below
        mode = None
    special = mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
    if special or _via_proc(target):
        _write_through(target, data)
        return
    if target.is_symlink():
        target = Path(os.path.realpath(target))
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
    fsync_dir(target.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` as UTF-8, newlines written exactly as given."""
    atomic_write_bytes(path, text.encode("utf-8"))
