"""Checkpoints that survive crashes and never run code when loaded.

Layout::

    RUN_DIR/checkpoints/step-000123/model.safetensors   weights (tied tensors stored once)
    RUN_DIR/checkpoints/step-000123/optim.safetensors   optimizer tensors + RNG states
    RUN_DIR/checkpoints/step-000123/state.json          everything else, plain JSON
    RUN_DIR/checkpoints/latest                          "step-000123": the newest complete one
    RUN_DIR/checkpoints/best                            the best by dev BLEU

A checkpoint is written into ``.tmp-step-...`` (every file fsynced), renamed into place in one
``os.rename`` and only then announced by rewriting the ``latest`` pointer atomically, so a
``kill -9`` at any moment leaves the previous checkpoint and its pointer intact. Old
checkpoints are pruned only after the new pointer is durable.

Loading reads safetensors and JSON only: nothing is unpickled (no ``torch.load`` at all), so a
file crafted to execute code on unpickling is refused as "not a checkpoint".
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nmt.errors import CheckpointError, NmtError
from nmt.fileio import atomic_write_bytes, atomic_write_text, fsync_dir
from nmt.training.serialization import (
    FORMAT,
    check_finite,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_tensors,
    tensors_to_bytes,
)


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
_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_name(step: int) -> str:
    return f"step-{step:06d}"


# --------------------------------------------------------------------------- saving


def _write_bytes(path: Path, data: bytes) -> None:
    # One seam for every checkpoint file write (tests simulate a full disk here).
    atomic_write_bytes(path, data)


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
    root = checkpoint_root(run_dir)
    name = step_name(step)
    previous = _pointer(root, "latest") or "none"
    model_sd = model.state_dict()
    check_finite(model_sd, f"{name} (model)")
    optim_tensors, optim_info = optimizer_to_tensors(optimizer) if optimizer else ({}, {})
    check_finite(optim_tensors, f"{name} (optimizer)")
    try:
        payload = {
            MODEL_FILE: tensors_to_bytes(model_sd, {"step": str(step)}),
            OPTIM_FILE: tensors_to_bytes({**optim_tensors, **(extra_tensors or {})}, {}),
            STATE_FILE: json.dumps(
                {"format": FORMAT, "step": step, "state": state, "optimizer": optim_info},
                indent=1,
                allow_nan=False,
                sort_keys=True,
            ).encode(),
        }
    except ValueError as e:
        raise CheckpointError(f"refusing to save {name}: state is not finite JSON ({e})") from None
    try:
        _publish(root, name, payload, best)
    except (OSError, NmtError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise CheckpointError(
            f"could not write checkpoint {root / name} ({reason}); "
            f"the previous checkpoint ({previous}) is intact"
        ) from None
    _prune(root, keep_last)
    return root / name


def _publish(root: Path, name: str, payload: dict[str, bytes], best: bool) -> None:
    tmp = root / f".tmp-{name}"
    final = root / name
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for filename, data in payload.items():
            _write_bytes(tmp / filename, data)
        if final.exists():  # re-saving a step (e.g. right after a resume): swap it out
            trash = root / f".trash-{name}"
            shutil.rmtree(trash, ignore_errors=True)
            final.rename(trash)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(root)
    atomic_write_text(root / "latest", name + "\n")
    if best:
        atomic_write_text(root / "best", name + "\n")


def _pointer(root: Path, which: str) -> str | None:
    try:
        name = (root / which).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if _NAME.match(name) else None  # never follow a path out of the directory


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint directories, oldest first."""
    found = []
    if root.is_dir():
        for p in root.iterdir():
            m = _NAME.match(p.name)
            if (
                m
                and p.is_dir()
                and all((p / f).is_file() for f in (MODEL_FILE, OPTIM_FILE, STATE_FILE))
            ):
                found.append((int(m[1]), p))
    return [p for _, p in sorted(found)]


def _prune(root: Path, keep_last: int) -> None:
    keep = {_pointer(root, "latest"), _pointer(root, "best")}
    complete = list_checkpoints(root)
    keep.update(p.name for p in complete[-keep_last:])
    for p in root.iterdir():
        stale = p.name.startswith((".tmp-", ".trash-"))
        if stale or (_NAME.match(p.name) and p.name not in keep):
            shutil.rmtree(p, ignore_errors=True)


def write_weights_only(
    root: Path, name: str, weights: dict[str, Tensor], step: int, state: dict[str, Any],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the weights-only checkpoint ``root/name`` (averaged weights, a snapshot) as a
    whole: built beside it, then renamed into place, replacing an earlier one.

    It has the files of a training checkpoint (the optimizer file empty), so everything that
    reads a checkpoint reads it; it is never ``latest`` and never pruned.

    Raises:
        CheckpointError: the write failed; an earlier ``root/name`` is then untouched.
    """
    # Not ".tmp-": pruning deletes those, and a run may still be training.
    tmp, old, final = root / f".writing-{name}", root / f".replaced-{name}", root / name
    info = {"format": FORMAT, "step": step, "state": state, "optimizer": {}}
    payload = {
        MODEL_FILE: tensors_to_bytes(weights, {"step": str(step), **(metadata or {})}),
        OPTIM_FILE: tensors_to_bytes({}, {}),
        STATE_FILE: json.dumps(info, indent=1, sort_keys=True, allow_nan=False).encode(),
    }
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for filename, data in payload.items():
            _write_bytes(tmp / filename, data)
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        tmp.rename(final)
        fsync_dir(root)
    except (OSError, NmtError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = getattr(e, "strerror", None) or str(e)
        raise CheckpointError(f"could not write {final} ({reason}); nothing was replaced") from None
    shutil.rmtree(old, ignore_errors=True)
    return final


def snapshot_name(minutes: float) -> str:
    """The checkpoint name of a ``train.snapshot_minutes`` snapshot: ``minute-25``,
    ``minute-7.5``."""
    return f"minute-{float(minutes):g}"


def save_snapshot(
    run_dir: str | Path, minutes: float, model: nn.Module, step: int, elapsed_seconds: float
) -> Path:
    """Keep the model as it is after ``minutes`` of training (``checkpoints/minute-25``), so
    that a budget's score can be measured after the run has gone on."""
    weights = model.state_dict()
    name = snapshot_name(minutes)
    check_finite(weights, f"{name} (model)")
    state = {"snapshot_minutes": minutes, "elapsed_seconds": round(elapsed_seconds, 3)}
    return write_weights_only(checkpoint_root(run_dir), name, weights, step, state,
                              {"snapshot_minutes": str(minutes)})  # fmt: skip


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class CheckpointData:
    """A checkpoint read from disk; nothing is applied yet."""

    path: Path
    step: int
    state: dict[str, Any]
    model_tensors: dict[str, Tensor]
    train_tensors: dict[str, Tensor]
    optimizer_info: dict[str, Any]


def find_checkpoint(run_dir: str | Path, which: str = "latest") -> Path | None:
    """The checkpoint ``which`` (latest|best) points at; for ``latest``, the newest complete
    one when the pointer is missing. None when the run has no checkpoint."""
    root = checkpoint_root(run_dir)
    name = _pointer(root, which)
    if name is not None and (root / name / STATE_FILE).is_file():
        return root / name
    if which == "best":
        return None
    complete = list_checkpoints(root)
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


def read_checkpoint(path: str | Path, which: str = "latest") -> CheckpointData:
    """Read a checkpoint (directory or run directory) without unpickling anything."""
    ckpt = resolve_checkpoint(path, which)
    try:
        info = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{ckpt / STATE_FILE}: unreadable: {e}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt / STATE_FILE}: not an nmt checkpoint (format mismatch)")
    model_tensors, _ = read_tensors(ckpt / MODEL_FILE)
    train_tensors, _ = read_tensors(ckpt / OPTIM_FILE)
    return CheckpointData(
        ckpt, int(info["step"]), info["state"], model_tensors, train_tensors, info["optimizer"]
    )


def load_weights(model: nn.Module, tensors: dict[str, Tensor], where: Path) -> None:
    """Copy ``tensors`` into ``model`` (strict: every name and shape must match)."""
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise CheckpointError(
            f"{where}: weights do not fit the configured model: {detail}"
        ) from None


def restore(
    data: CheckpointData, model: nn.Module, optimizer: torch.optim.Optimizer | None
) -> None:
    """Apply weights (and optimizer state when given) from ``data``."""
    load_weights(model, data.model_tensors, data.path)
    if optimizer is not None:
        optimizer_from_tensors(optimizer, data.train_tensors, data.optimizer_info)
