"""What a checkpoint must remember besides weights and optimizer, for an exact resume.

:class:`TrainState` is plain JSON. The random number generators are captured as tensors (torch,
CUDA, NumPy keys) plus JSON (Python's Mersenne Twister, NumPy's position), so loading them never
unpickles anything.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nmt.errors import CheckpointError


@dataclass
class TrainState:
    """Counters of a run. ``(epoch, batch_in_epoch)`` is the position of the *next* batch.

    Attributes:
        step: optimizer updates done (skipped non-finite steps included).
        best_bleu / best_step: the best dev BLEU of any validation and where (``best`` pointer).
        es_best_bleu / bad_validations: early-stopping bookkeeping, fed only by the scheduled
            validations (every ``valid_every`` steps), so an extra validation at a stop point
            never changes the course of a resumed run.
        nonfinite_in_row: consecutive non-finite steps at the time of saving.
        validated_step: the step of the last validation (a resume does not repeat it).
        elapsed_seconds: wall-clock training time summed over all sessions of the run.
        data_order: the settings the epochs' batch lists were made from.
        world_size: processes of the run (data parallel); ``batch_in_epoch`` counts the
            batches of one rank's shard of the epoch.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_bleu: float | None = None
    best_step: int | None = None
    es_best_bleu: float | None = None
    bad_validations: int = 0
    nonfinite_in_row: int = 0
    nonfinite_total: int = 0
    validated_step: int = -1
    elapsed_seconds: float = 0.0
    data_order: str = ""
    world_size: int = 1
    schedule: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> TrainState:
        if not isinstance(d, dict):
            raise CheckpointError(f"training state: expected a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise CheckpointError(f"training state has unknown fields {sorted(unknown)}")
        return cls(**d)


# --------------------------------------------------------------------------- RNG states


def capture_rng() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The state of every generator a training step can draw from (dropout, sampling)."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    info = {
        "python": [version, list(mt), gauss],
        "numpy": [name, int(pos), int(has_gauss), float(cached)],
    }
    return tensors, info


def restore_rng(tensors: dict[str, Tensor], info: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    try:
        torch.set_rng_state(tensors["rng.torch"])
        cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k[9:]))
        if cuda and torch.cuda.is_available():
            states = [tensors[k] for k in cuda][: torch.cuda.device_count()]
            torch.cuda.set_rng_state_all(states)
        version, mt, gauss = info["python"]
        random.setstate((version, tuple(mt), gauss))
        name, pos, has_gauss, cached = info["numpy"]
        keys = tensors["rng.numpy"].numpy().astype(np.uint32)
        np.random.set_state((name, keys, pos, has_gauss, cached))
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint RNG state is damaged: {e}") from None


def pack_rank_rng(
    states: list[tuple[dict[str, Tensor], dict[str, Any]]],
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Every rank's :func:`capture_rng` in one checkpoint: rank 0's under the usual names (so
    a single-process checkpoint is unchanged), rank ``r``'s tensors as ``rank{r}.rng.*``."""
    tensors, info = dict(states[0][0]), dict(states[0][1])
    if len(states) > 1:
        info["ranks"] = {str(r): s[1] for r, s in enumerate(states) if r}
    for r, (t, _) in enumerate(states[1:], start=1):
        tensors.update({f"rank{r}.{k}": v for k, v in t.items()})
    return tensors, info


def unpack_rank_rng(
    tensors: dict[str, Tensor], info: dict[str, Any], rank: int
) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """Inverse of :func:`pack_rank_rng` for one rank; None when the checkpoint has no state
    for it (it was written by fewer processes)."""
    if rank == 0:
        return tensors, info
    prefix = f"rank{rank}."
    mine = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    rank_info = info.get("ranks", {}).get(str(rank))
    return (mine, rank_info) if mine and rank_info is not None else None
