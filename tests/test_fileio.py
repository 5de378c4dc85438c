"""nmt.fileio: line splitting on "\\n" only, BOM/CRLF tolerance, UTF-8 errors, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nmt.errors import DataError
from nmt.fileio import (
    atomic_write_bytes,
    atomic_write_text,
    compression,
    count_lines,
    decode_lines,
    iter_lines,
    read_lines,
)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_splits_on_newline_only(tmp_path: Path) -> None:
    # \x85, \u2028, \u2029, \x0b, \x0c and a lone \r are inside lines; str.splitlines splits them.
    data = "a\x85b\nc\u2028d\u2029e\nf\rg\x0bh\x0ci\n".encode()
    lines = read_lines(write(tmp_path / "f.txt", data))
    assert lines == ["a\x85b", "c\u2028d\u2029e", "f\rg\x0bh\x0ci"]


def test_bom_and_crlf(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfone\r\ntwo\r\n\r\nthree"
    assert read_lines(write(tmp_path / "f.txt", data)) == ["one", "two", "", "three"]


def test_only_one_trailing_cr_removed(tmp_path: Path) -> None:
    assert read_lines(write(tmp_path / "f.txt", b"x\r\r\n")) == ["x\r"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", []), (b"\n", [""]), (b"a", ["a"]), (b"a\n", ["a"]), (b"a\n\n", ["a", ""])],
)
def test_no_phantom_last_line(data: bytes, expected: list[str]) -> None:
    assert decode_lines(data, "x") == expected


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", "好\nfine\n".encode() + b"bad \xff here\n")
    with pytest.raises(DataError, match=r"bad\.txt:3: invalid UTF-8"):
        read_lines(path)
    with pytest.raises(DataError, match=r"bad\.txt:3: invalid UTF-8"):
        list(iter_lines(path))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.txt: file not found"):
        read_lines(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        read_lines(tmp_path)
    with pytest.raises(DataError, match="file not found"):
        next(iter_lines(tmp_path / "nope.txt"))


@given(st.lists(st.text(alphabet=st.characters(exclude_characters="\n",
                                               exclude_categories=["Cs"])), max_size=6),
       st.booleans(), st.booleans())
def test_iter_lines_matches_read_lines(lines: list[str], crlf: bool, final: bool) -> None:
    import tempfile

    sep = "\r\n" if crlf else "\n"
    text = sep.join(lines) + (sep if final and lines else "")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.txt"
        path.write_bytes(text.encode())
        assert list(iter_lines(path)) == read_lines(path)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "first\n")
    atomic_write_text(target, "二\r\n")
    assert target.read_bytes() == "二\r\n".encode()  # written exactly, no newline translation
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_write_uses_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"\x00\x01")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644


def test_atomic_write_error_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="cannot write") as info:
        atomic_write_text(blocker / "child.txt", "y")
    assert "\n" not in str(info.value)


def test_atomic_write_through_a_symlink_replaces_its_target(tmp_path: Path) -> None:
    real = tmp_path / "data" / "out.txt"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(os.path.relpath(real, tmp_path))  # relative, as `ln -s` usually makes them
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    assert sorted(p.name for p in real.parent.iterdir()) == ["out.txt"]  # no temp file left
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "data" / "later.txt")
    atomic_write_text(dangling, "made\n")
    assert dangling.is_symlink() and (tmp_path / "data" / "later.txt").read_text() == "made\n"


def test_atomic_write_to_a_fifo_writes_through(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    # Opening a FIFO for reading blocks until a writer opens it, hence the thread; daemon, so
    # that a regression (the FIFO renamed away, never opened) fails the test instead of hanging.
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write_bytes(fifo, b"through the pipe\n")
    reader.join(timeout=10)
    assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_atomic_write_to_dev_null_keeps_the_device() -> None:
    atomic_write_text("/dev/null", "discarded\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize("suffix", [".gz", ".xz", ".bz2"])
def test_compressed_files_are_read_as_their_content(tmp_path: Path, suffix: str) -> None:
    import bz2
    import gzip
    import lzma

    compress = {".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress}[suffix]
    data = "\ufeffone\r\ntwo\u2028half\nthree\n".encode()
    path = tmp_path / f"c.tsv{suffix}"
    path.write_bytes(compress(data))
    assert compression(path) == suffix and compression(tmp_path / "c.tsv") is None
    assert list(iter_lines(path)) == read_lines(path) == ["one", "two\u2028half", "three"]
    assert count_lines(path) is None
    # Cut short: the error names the file and the line where the data broke off.
    big = compress(b"".join(b"line %d\n" % i for i in range(200_000)))
    path.write_bytes(big[: len(big) // 2])
    with pytest.raises(DataError, match=rf"c\.tsv{suffix}:\d+: truncated or corrupt") as info:
        list(iter_lines(path))
    assert "\n" not in str(info.value)
    line = int(str(info.value).split(":")[1])
    assert 1_000 < line < 200_000


def test_a_file_that_is_not_what_its_suffix_says(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv.gz"
    path.write_bytes(b"plain text\n")
    with pytest.raises(DataError, match=r"c\.tsv\.gz:1: truncated or corrupt \.gz file"):
        read_lines(path)


def test_count_lines(tmp_path: Path) -> None:
    for data, n in ((b"", 0), (b"a", 1), (b"a\n", 1), (b"a\nb", 2), (b"\n\n", 2)):
        (tmp_path / "f").write_bytes(data)
        assert count_lines(tmp_path / "f") == n
    assert count_lines(tmp_path / "missing") is None
