"""Reading checkpoints: safetensors and bounded JSON only, weights checked before use.

Nothing is unpickled (no ``torch.load`` at all), so a file crafted to execute code on
unpickling is refused as "not a checkpoint". What is read is bounded: ``state.json`` by size and
nesting depth (Python's JSON parser recurses, so thousands of nested brackets would end in a
RecursionError), and weights must be finite: a NaN or inf anywhere spreads to every logit and
would translate every sentence to an empty line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nmt.checkpoint.locate import resolve_checkpoint
from nmt.checkpoint.store import MODEL_FILE, OPTIM_FILE, STATE_FILE
from nmt.checkpoint.tensors import FORMAT, check_finite, optimizer_from_tensors, read_tensors
from nmt.errors import CheckpointError

MAX_STATE_BYTES = 16 * 2**20  # a real state.json is a few KiB (the optimizer's plain values)
MAX_STATE_DEPTH = 32  # a real one nests 5 levels deep
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


@dataclass(frozen=True)
class CheckpointData:
    """A checkpoint read from disk; nothing is applied yet."""

    path: Path
    step: int
    state: dict[str, Any]
    model_tensors: dict[str, Tensor]
    train_tensors: dict[str, Tensor]
    optimizer_info: dict[str, Any]


def _json_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if m[0] in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def read_state(ckpt: Path) -> dict[str, Any]:
    """``ckpt/state.json``, checked: size and depth bounded, format and fields as written.

    Raises:
        CheckpointError: one line naming the file and what is wrong with it.
    """
    path = ckpt / STATE_FILE
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_STATE_BYTES + 1)
    except OSError as e:
        raise CheckpointError(f"{path}: unreadable: {e.strerror or e}") from None
    if len(raw) > MAX_STATE_BYTES:
        raise CheckpointError(f"{path}: larger than {MAX_STATE_BYTES // 2**20} MiB; "
                              "not a checkpoint state written by nmt")  # fmt: skip
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: unreadable: not UTF-8 ({e.reason})") from None
    if _json_depth(text) > MAX_STATE_DEPTH:
        raise CheckpointError(f"{path}: nested deeper than {MAX_STATE_DEPTH} levels; "
                              "not a checkpoint state written by nmt")  # fmt: skip
    try:
        info = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: unreadable: {e}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nmt checkpoint (format mismatch)")
    step, state, optim = info.get("step"), info.get("state"), info.get("optimizer")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: step: expected a count of steps, got {step!r}")
    if not isinstance(state, dict) or not isinstance(optim, dict):
        raise CheckpointError(f"{path}: state and optimizer must be JSON objects")
    return info


def read_model_weights(ckpt: Path) -> dict[str, Tensor]:
    """The model tensors of a checkpoint directory, every floating one finite.

    Raises:
        CheckpointError: missing, damaged, or a tensor holds NaN/inf (named).
    """
    tensors, _ = read_tensors(ckpt / MODEL_FILE)  # safetensors only: nothing is unpickled
    check_finite(tensors, f"{ckpt / MODEL_FILE}: refusing to load")
    return tensors


def read_checkpoint(path: str | Path, which: str = "latest") -> CheckpointData:
    """Read a checkpoint (directory or run directory) without unpickling anything."""
    ckpt = resolve_checkpoint(path, which)
    info = read_state(ckpt)
    model_tensors = read_model_weights(ckpt)
    train_tensors, _ = read_tensors(ckpt / OPTIM_FILE)
    return CheckpointData(
        ckpt, info["step"], info["state"], model_tensors, train_tensors, info["optimizer"]
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
