"""Run directories and their checkpoints: the format below training and inference alike.

The trainer writes checkpoints, and translate, evaluate, averaging (and a server or exporter)
read them; none of the readers needs the training package. The modules, from the bytes up:

- :mod:`~nmt.checkpoint.tensors`: tensors <-> safetensors bytes (ties, views), the optimizer
  state as tensors plus JSON, the finiteness check;
- :mod:`~nmt.checkpoint.store`: the layout, the one publish protocol (build beside, rename into
  place, then announce), training checkpoints, weights-only checkpoints, pruning;
- :mod:`~nmt.checkpoint.locate`: the ``latest``/``best`` pointers and what a user's
  ``--checkpoint`` names, with invalid pointers reported;
- :mod:`~nmt.checkpoint.read`: reading a checkpoint with bounded ``state.json`` and finite
  weights, and loading weights into a model.

Nothing here unpickles anything: safetensors and JSON only.
"""

from nmt.checkpoint.locate import checkpoint_for_decoding, find_checkpoint, resolve_checkpoint
from nmt.checkpoint.read import (
    CheckpointData,
    load_weights,
    read_checkpoint,
    read_model_weights,
    restore,
)
from nmt.checkpoint.store import (
    MODEL_FILE,
    OPTIM_FILE,
    STATE_FILE,
    checkpoint_root,
    list_checkpoints,
    save_checkpoint,
    save_snapshot,
    snapshot_name,
    step_name,
    write_weights_only,
)

__all__ = [
    "MODEL_FILE", "OPTIM_FILE", "STATE_FILE", "CheckpointData", "checkpoint_for_decoding",
    "checkpoint_root", "find_checkpoint", "list_checkpoints", "load_weights", "read_checkpoint",
    "read_model_weights", "resolve_checkpoint", "restore", "save_checkpoint", "save_snapshot",
    "snapshot_name", "step_name", "write_weights_only",
]
