"""Which checkpoint a name means: the ``latest``/``best`` pointers and ``--checkpoint`` values.

A pointer is a one-line file holding a checkpoint name (``step-000123``). It is only ever
followed to a ``step-N`` directory inside the run: a pointer naming anything else
(``../../etc``, a damaged file) is *invalid*, and every caller says so and which checkpoint it
used instead, rather than pretending the run has no best checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from nmt.checkpoint.store import STATE_FILE, STEP_NAME, checkpoint_root, list_checkpoints
from nmt.errors import CheckpointError

log = logging.getLogger(__name__)

_MAX_POINTER_BYTES = 256  # "step-000123\n" is 12; anything much longer is not a pointer


@dataclass(frozen=True)
class Pointer:
    """What a pointer file says: ``name`` when it is valid, else ``problem`` (None for both
    when there is no pointer file)."""

    name: str | None = None
    problem: str | None = None


def read_pointer(root: Path, which: str) -> Pointer:
    """Read ``root/which`` (``latest`` or ``best``) without following it anywhere."""
    path = root / which
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_POINTER_BYTES + 1)
    except FileNotFoundError:
        return Pointer()
    except OSError as e:
        return Pointer(problem=f"unreadable ({e.strerror or e})")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return Pointer(problem="not UTF-8 text")
    if len(raw) > _MAX_POINTER_BYTES or not STEP_NAME.match(text):
        shown = text[:40] + ("..." if len(text) > 40 else "")
        return Pointer(problem=f"names {shown!r}, not a step-N checkpoint of this run")
    if not (root / text / STATE_FILE).is_file():
        return Pointer(problem=f"names {text}, which is missing or incomplete")
    return Pointer(name=text)


def find_checkpoint(run_dir: str | Path, which: str = "latest") -> Path | None:
    """The checkpoint ``which`` (latest|best) points at; for ``latest``, the newest complete
    one when the pointer is missing or invalid. None when there is none.

    An invalid pointer is logged (a warning naming it and what was used instead).
    """
    root = checkpoint_root(run_dir)
    pointer = read_pointer(root, which)
    if pointer.name is not None:
        return root / pointer.name
    complete = list_checkpoints(root) if which == "latest" else []
    if pointer.problem is not None:
        instead = f"using the newest complete one, {complete[-1].name}" if complete else "ignored"
        log.warning("%s: invalid pointer: it %s; %s", root / which, pointer.problem, instead)
    if which == "best":
        return None
    return complete[-1] if complete else None


def resolve_checkpoint(path: str | Path, which: str = "latest") -> Path:
    """A checkpoint directory, or a run directory (then its ``which`` checkpoint)."""
    p = Path(path)
    if p.is_file():
        raise CheckpointError(
            f"{p}: not an nmt checkpoint directory; pickled checkpoints (.pt/.pth/.bin) are "
            "refused because loading them can run arbitrary code"
        )
    if (p / STATE_FILE).is_file():
        return p
    if not p.is_dir():
        raise CheckpointError(f"{p}: no such run or checkpoint directory")
    found = find_checkpoint(p, which)
    if found is None:
        raise CheckpointError(f"{p}: no {which} checkpoint in {checkpoint_root(p)}")
    return found


def checkpoint_for_decoding(run: Path, checkpoint: str | Path = "best") -> Path:
    """What ``--checkpoint`` names for translate, evaluate and the API: ``best`` (else
    ``latest``, with a log line saying why), ``latest``, a checkpoint name inside the run
    (``averaged``, ``minute-25``, ``step-000500``), or a checkpoint directory.

    Raises:
        CheckpointError: nothing to load; the message says what is missing.
    """
    if str(checkpoint) in ("best", "latest"):
        which = str(checkpoint)
        found = find_checkpoint(run, which)
        if found is None and which == "best":
            found = find_checkpoint(run, "latest")
            if found is not None:
                why = ("its best pointer is invalid (see above)"
                       if read_pointer(checkpoint_root(run), "best").problem
                       else "it has no best checkpoint yet")  # fmt: skip
                log.info("%s: %s; using the latest, %s", run, why, found.name)
        if found is None:
            raise CheckpointError(
                f"{run}: no checkpoint in {checkpoint_root(run)}; train the model first"
            )
        return found
    named = checkpoint_root(run) / str(checkpoint)
    if named.name == str(checkpoint) and (named / STATE_FILE).is_file():
        return named
    return resolve_checkpoint(checkpoint)
