"""Checkpoint averaging: the element-wise mean of the weights of several checkpoints.

Averaging the last few checkpoints of a run smooths out the noise of the final updates and
usually gains a little BLEU for free (Vaswani et al. 2017, section 6.1, averaged the last 5 or
20). The result is written as ``RUN_DIR/checkpoints/averaged/`` (or another name), a checkpoint
directory that ``Translator.load(run_dir, checkpoint="averaged")`` and ``nmt translate
--checkpoint averaged`` load like any other. It holds weights only (an empty optimizer state):
it is for decoding, not for resuming, and the trainer's pruning never touches it.

Tied tensors (the shared embeddings) are averaged once and stay tied. Means are accumulated in
float64 and cast back, so averaging identical tensors returns them bit for bit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from nmt.checkpoint.locate import resolve_checkpoint
from nmt.checkpoint.read import read_state
from nmt.checkpoint.store import (
    MODEL_FILE,
    STATE_FILE,
    checkpoint_root,
    list_checkpoints,
    write_weights_only,
)
from nmt.checkpoint.tensors import read_tensors
from nmt.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

AVERAGED = "averaged"
_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_RESERVED = re.compile(r"^(latest|best|step-\d+)$")  # pointers and the trainer's own names


@dataclass(frozen=True)
class AverageResult:
    """Where the averaged checkpoint went and what went into it."""

    path: Path
    sources: tuple[Path, ...]
    step: int

    def format(self) -> str:
        names = ", ".join(p.name for p in self.sources)
        return f"averaged {len(self.sources)} checkpoints ({names}) into {self.path}"


def select_checkpoints(
    run_dir: str | Path,
    last: int | None = None,
    names: Sequence[str] = (),
    allow_fewer: bool = False,
) -> list[Path]:
    """The checkpoints to average: the ``last`` N saved ones (by step), or those ``names``
    (checkpoint names such as ``step-001000`` inside the run, or checkpoint directories).

    Raises:
        ConfigError: neither or both of ``last``/``names``, or ``last`` < 1.
        CheckpointError: a named checkpoint is missing, or fewer than ``last`` exist (unless
            ``allow_fewer``); the message says to raise ``train.keep_last``.
    """
    if (last is None) == (not names):
        raise ConfigError("give either --last N or --checkpoints NAME,... (one of the two)")
    root = checkpoint_root(run_dir)
    if names:
        found = [_named(root, name) for name in names]
        if len({p.resolve() for p in found}) < len(found):
            raise ConfigError("--checkpoints: a checkpoint is named twice")
        return found
    assert last is not None
    if last < 1:
        raise ConfigError(f"--last: must be >= 1, got {last}")
    saved = list_checkpoints(root)
    if not saved:
        raise CheckpointError(f"{run_dir}: no checkpoint in {root}; train the model first")
    if len(saved) < last and not allow_fewer:
        raise CheckpointError(
            f"{root} holds {len(saved)} checkpoint(s), fewer than --last {last}; the trainer "
            f"keeps only train.keep_last of them: set train.keep_last >= {last} for this run"
        )
    return saved[-last:]


def _named(root: Path, name: str) -> Path:
    inside = root / name
    if _OUTPUT_NAME.match(name) and (inside / STATE_FILE).is_file():
        return inside
    return resolve_checkpoint(name)  # a directory path; names a missing one in its error


def average_tensors(
    states: Sequence[dict[str, Tensor]], where: Sequence[Path]
) -> dict[str, Tensor]:
    """Element-wise mean of state dicts with the same names, shapes and ties.

    Names that alias one tensor (tied weights) get one averaged tensor, shared again. Non
    floating-point tensors (integer buffers) must be equal and are kept as they are.

    Raises:
        CheckpointError: the checkpoints do not hold the same tensors.
    """
    first = states[0]
    for state, path in zip(states[1:], where[1:], strict=True):
        _check_compatible(first, state, where[0], path)
    averaged: dict[str, Tensor] = {}
    done: dict[int, Tensor] = {}  # id of a first-state tensor -> its average (ties)
    for name, tensor in first.items():
        if id(tensor) in done:
            averaged[name] = done[id(tensor)]
            continue
        others = [state[name] for state in states[1:]]
        if tensor.is_floating_point():
            total = tensor.to(torch.float64).clone()
            for other in others:
                total += other.to(torch.float64)
            mean = (total / len(states)).to(tensor.dtype)
        else:
            if any(not torch.equal(tensor, o) for o in others):
                raise CheckpointError(f"{name}: integer tensor differs between checkpoints")
            mean = tensor.clone()
        averaged[name] = done[id(tensor)] = mean
    return averaged


def _check_compatible(a: dict[str, Tensor], b: dict[str, Tensor], pa: Path, pb: Path) -> None:
    if a.keys() != b.keys():
        diff = sorted(a.keys() ^ b.keys())[:3]
        raise CheckpointError(f"{pb} and {pa} hold different tensors (e.g. {', '.join(diff)}); "
                              "only checkpoints of the same model can be averaged")
    for name, t in a.items():
        if t.shape != b[name].shape or t.dtype != b[name].dtype:
            raise CheckpointError(f"{pb}: {name} is {tuple(b[name].shape)} {b[name].dtype}, "
                                  f"but {tuple(t.shape)} {t.dtype} in {pa}")
    if _ties(a) != _ties(b):
        raise CheckpointError(f"{pb} and {pa} tie different weights; cannot average them")


def _ties(state: dict[str, Tensor]) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for name, t in state.items():
        groups.setdefault(id(t), set()).add(name)
    return {frozenset(g) for g in groups.values() if len(g) > 1}


def average_checkpoints(
    run_dir: str | Path,
    last: int | None = None,
    names: Sequence[str] = (),
    output: str = AVERAGED,
    allow_fewer: bool = False,
) -> AverageResult:
    """Average checkpoints of ``run_dir`` (see :func:`select_checkpoints`) into
    ``RUN_DIR/checkpoints/<output>/``, replacing an earlier one atomically."""
    if not _OUTPUT_NAME.match(output) or _RESERVED.match(output):
        raise ConfigError(
            f"--output: {output!r} is not a usable checkpoint name (letters, digits, '_.-'; "
            "not latest, best or step-N, which the trainer owns)"
        )
    sources = select_checkpoints(run_dir, last, names, allow_fewer)
    states = [read_tensors(p / MODEL_FILE)[0] for p in sources]
    steps = [_step_of(p) for p in sources]
    weights = average_tensors(states, sources)
    state = {"averaged_from": [p.name for p in sources], "steps": steps}
    path = write_weights_only(checkpoint_root(run_dir), output, weights, max(steps), state,
                              {"averaged": "true"})  # fmt: skip
    result = AverageResult(path, tuple(sources), max(steps))
    log.info("%s", result.format())
    return result


def _step_of(path: Path) -> int:
    step: int = read_state(path)["step"]
    return step


def average_after_training(run_dir: str | Path, last: int) -> AverageResult | None:
    """``train.average_last``: average the last ``last`` checkpoints into ``averaged/`` once a
    run has ended (fewer when a short run saved fewer, with a warning); None when off."""
    if last <= 0:
        return None
    saved = list_checkpoints(checkpoint_root(run_dir))
    if 0 < len(saved) < last:
        log.warning("%s: only %d checkpoint(s) to average (train.average_last=%d)",
                    run_dir, len(saved), last)  # fmt: skip
    return average_checkpoints(run_dir, last=last, allow_fewer=True)
