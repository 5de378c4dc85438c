"""Checkpoints that survive crashes: the layout and the one way a checkpoint is published.

Layout::

    RUN_DIR/checkpoints/step-000123/model.safetensors   weights (tied tensors stored once)
    RUN_DIR/checkpoints/step-000123/optim.safetensors   optimizer tensors + RNG states
    RUN_DIR/checkpoints/step-000123/state.json          everything else, plain JSON
    RUN_DIR/checkpoints/latest                          "step-000123": the newest complete one
    RUN_DIR/checkpoints/best                            the best by dev BLEU
    RUN_DIR/checkpoints/averaged/, minute-25/           weights-only checkpoints (same files)

Every checkpoint, training or weights-only, is published by :func:`_publish`: its files are
written (each fsynced) into a hidden directory beside the final one, which is then renamed into
place in one ``os.rename`` (an older one of the same name swapped out first); only then are the
pointers rewritten, each atomically. A ``kill -9`` at any moment leaves the previous checkpoint
and its pointers intact. Old training checkpoints are pruned only after the new pointer is
durable; weights-only checkpoints are never pruned.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nmt.checkpoint.tensors import FORMAT, check_finite, optimizer_to_tensors, tensors_to_bytes
from nmt.errors import CheckpointError, NmtError
from nmt.fileio import atomic_write_bytes, atomic_write_text, fsync_dir


def _require_torch(version: str, minimum: tuple[int, int] = (2, 10)) -> None:
    # Older torch.load(weights_only=True) had bypasses and a memory-corruption CVE; even though
    # we never call it, a run directory may be opened by other tools in the same environment.
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None or (int(match[1]), int(match[2])) < minimum:
        raise CheckpointError(
            f"torch {version} is too old for nmt checkpoints: need torch >= "
            f"{minimum[0]}.{minimum[1]} (pip install -U 'torch>={minimum[0]}.{minimum[1]}')"
        )


_require_torch(torch.__version__)

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optim.safetensors"
STATE_FILE = "state.json"
POINTERS = ("latest", "best")
STEP_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def snapshot_name(minutes: float) -> str:
    """The checkpoint name of a ``train.snapshot_minutes`` snapshot: ``minute-25``,
    ``minute-7.5``."""
    return f"minute-{float(minutes):g}"


# --------------------------------------------------------------------------- publishing


def _write_bytes(path: Path, data: bytes) -> None:
    # One seam for every checkpoint file write (tests simulate a full disk here).
    atomic_write_bytes(path, data)


def _payload(
    model_tensors: dict[str, Tensor], model_meta: dict[str, str],
    train_tensors: dict[str, Tensor], info: dict[str, Any], name: str,
) -> dict[str, bytes]:
    """The three files of a checkpoint, as bytes (nothing is written yet)."""
    try:
        state = json.dumps(info, indent=1, allow_nan=False, sort_keys=True).encode()
    except ValueError as e:
        raise CheckpointError(f"refusing to save {name}: state is not finite JSON ({e})") from None
    return {
        MODEL_FILE: tensors_to_bytes(model_tensors, model_meta),
        OPTIM_FILE: tensors_to_bytes(train_tensors, {}),
        STATE_FILE: state,
    }


def _publish(root: Path, name: str, payload: dict[str, bytes], pointers: tuple[str, ...]) -> None:
    """Write ``root/name`` as a whole, then point each of ``pointers`` at it.

    Raises:
        OSError, NmtError: a write failed; ``root/name`` as it was and the pointers are intact.
    """
    # Hidden names the trainer's pruning knows: ".tmp-"/".trash-" leftovers of a crash are
    # removed by the next prune (a weights-only write may run while a run still trains, so its
    # temporaries have names pruning leaves alone).
    tmp, trash = (
        (root / f".tmp-{name}", root / f".trash-{name}") if pointers
        else (root / f".writing-{name}", root / f".replaced-{name}")
    )
    final = root / name
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for filename, data in payload.items():
            _write_bytes(tmp / filename, data)
        if final.exists():  # re-saving a name (a step right after a resume, "averaged")
            shutil.rmtree(trash, ignore_errors=True)
            final.rename(trash)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(root)
    for pointer in pointers:
        atomic_write_text(root / pointer, name + "\n")
    shutil.rmtree(trash, ignore_errors=True)


def _failed(e: BaseException, where: Path, intact: str) -> CheckpointError:
    reason = getattr(e, "strerror", None) or str(e)
    return CheckpointError(f"could not write checkpoint {where} ({reason}); {intact}")


# --------------------------------------------------------------------------- training checkpoints


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: dict[str, Any],
    extra_tensors: dict[str, Tensor] | None = None,
    keep_last: int = 2,
    best: bool = False,
) -> Path:
    """Write checkpoint ``step-NNNNNN`` atomically, point ``latest`` (and ``best``) at it, prune.

    Args:
        state: JSON-able training state (finite numbers only).
        extra_tensors: more tensors for ``optim.safetensors`` (e.g. RNG states), prefix-free
            names other than ``optim.*``.

    Raises:
        CheckpointError: non-finite values, or a write failed; either way the previous
            checkpoint is untouched and the message says so.
    """
    from nmt.checkpoint.locate import read_pointer

    root = checkpoint_root(run_dir)
    name = step_name(step)
    previous = read_pointer(root, "latest").name or "none"
    model_sd = model.state_dict()
    check_finite(model_sd, f"refusing to save {name} (model)")
    optim_tensors, optim_info = optimizer_to_tensors(optimizer) if optimizer else ({}, {})
    check_finite(optim_tensors, f"refusing to save {name} (optimizer)")
    info = {"format": FORMAT, "step": step, "state": state, "optimizer": optim_info}
    payload = _payload(model_sd, {"step": str(step)}, {**optim_tensors, **(extra_tensors or {})},
                       info, name)  # fmt: skip
    try:
        _publish(root, name, payload, ("latest", "best") if best else ("latest",))
    except (OSError, NmtError) as e:
        raise _failed(e, root / name, f"the previous checkpoint ({previous}) is intact") from None
    _prune(root, keep_last)
    return root / name


def list_checkpoints(root: Path) -> list[Path]:
    """Complete training checkpoint directories, oldest first."""
    found = []
    if root.is_dir():
        for p in root.iterdir():
            m = STEP_NAME.match(p.name)
            if (
                m
                and p.is_dir()
                and all((p / f).is_file() for f in (MODEL_FILE, OPTIM_FILE, STATE_FILE))
            ):
                found.append((int(m[1]), p))
    return [p for _, p in sorted(found)]


def _prune(root: Path, keep_last: int) -> None:
    from nmt.checkpoint.locate import read_pointer

    keep = {read_pointer(root, which).name for which in POINTERS}
    complete = list_checkpoints(root)
    keep.update(p.name for p in complete[-keep_last:])
    for p in root.iterdir():
        stale = p.name.startswith((".tmp-", ".trash-"))
        if stale or (STEP_NAME.match(p.name) and p.name not in keep):
            shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------- weights only


def write_weights_only(
    root: Path, name: str, weights: dict[str, Tensor], step: int, state: dict[str, Any],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the weights-only checkpoint ``root/name`` (averaged weights, a snapshot) as a
    whole, replacing an earlier one.

    It has the files of a training checkpoint (the optimizer file empty), so everything that
    reads a checkpoint reads it; it is never ``latest`` and never pruned.

    Raises:
        CheckpointError: the write failed; an earlier ``root/name`` is then untouched.
    """
    info = {"format": FORMAT, "step": step, "state": state, "optimizer": {}}
    payload = _payload(weights, {"step": str(step), **(metadata or {})}, {}, info, name)
    try:
        _publish(root, name, payload, pointers=())
    except (OSError, NmtError) as e:
        raise _failed(e, root / name, "nothing was replaced") from None
    return root / name


def save_snapshot(
    run_dir: str | Path, minutes: float, model: nn.Module, step: int, elapsed_seconds: float
) -> Path:
    """Keep the model as it is after ``minutes`` of training (``checkpoints/minute-25``), so
    that a budget's score can be measured after the run has gone on."""
    weights = model.state_dict()
    name = snapshot_name(minutes)
    check_finite(weights, f"refusing to save {name} (model)")
    state = {"snapshot_minutes": minutes, "elapsed_seconds": round(elapsed_seconds, 3)}
    return write_weights_only(checkpoint_root(run_dir), name, weights, step, state,
                              {"snapshot_minutes": str(minutes)})  # fmt: skip
