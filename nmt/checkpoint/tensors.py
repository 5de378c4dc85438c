"""Tensors to and from safetensors bytes, and the optimizer state as tensors plus JSON.

safetensors stores plain tensors only, which is what makes loading safe; this module bridges
what PyTorch hands over: tied parameters (stored once, restored as aliases), views of a shared
storage (copied), and ``optimizer.state_dict()`` (tensors split from its plain values).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import Tensor

from nmt.errors import CheckpointError

FORMAT = "nmt-checkpoint-v1"
_MAX_HEADER = 100_000_000

# --------------------------------------------------------------------------- tensors <-> bytes


def dedup_tensors(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Contiguous CPU copies with tied tensors stored once.

    Returns:
        ``(unique, aliases)``: ``aliases[name]`` is the stored name holding the same tensor.
    """
    unique: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    storages: set[tuple[str, int]] = set()
    for name, t in tensors.items():
        t = t.detach()
        storage = (str(t.device), t.untyped_storage().data_ptr())
        ident = (*storage, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if ident in seen:
            aliases[name] = seen[ident]
            continue
        seen[ident] = name
        # Distinct views of one storage (e.g. slices of a fused weight) must not share memory
        # in safetensors, so they are copied.
        shared = storage in storages and t.numel() > 0
        storages.add(storage)
        t = t.to("cpu").contiguous()
        unique[name] = t.clone() if shared else t
    return unique, aliases


def tensors_to_bytes(tensors: dict[str, Tensor], metadata: dict[str, str]) -> bytes:
    unique, aliases = dedup_tensors(tensors)
    meta = {"format": FORMAT, "aliases": json.dumps(aliases, sort_keys=True), **metadata}
    return safetensors_save(unique, metadata=meta)


def _read_header(data: bytes, name: str) -> dict[str, Any]:
    if len(data) < 8:
        raise CheckpointError(f"{name}: truncated, not a safetensors file")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(_MAX_HEADER, len(data) - 8):
        raise CheckpointError(f"{name}: not a safetensors file (refusing to unpickle anything)")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(
            f"{name}: not a safetensors file (refusing to unpickle anything)"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: malformed safetensors header")
    return header


def read_tensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Load a safetensors file written by :func:`tensors_to_bytes`, aliases restored."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; the checkpoint is incomplete") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None
    meta = _read_header(data, str(path)).get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nmt checkpoint file (format {meta.get('format')!r})")
    try:
        tensors = safetensors_load(data)
        aliases = json.loads(meta.get("aliases", "{}"))
        for alias, name in aliases.items():
            tensors[alias] = tensors[name]
    except Exception as e:  # safetensors raises its own SafetensorError for damaged files
        raise CheckpointError(f"{path}: damaged safetensors file: {e}") from None
    return tensors, meta


# --------------------------------------------------------------------------- optimizer state


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into tensors and JSON-able values."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                plain.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain}


def optimizer_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, Tensor], info: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = t
    for pid, entry in info.get("plain_state", {}).items():
        state.setdefault(int(pid), {}).update(entry)
    # JSON turned tuples (Adam's betas) into lists; the optimizer wants them back.
    groups = [
        {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
        for g in info["param_groups"]
    ]
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"optimizer state does not fit this model/optimizer: {e}") from None


def check_finite(tensors: dict[str, Tensor], what: str) -> None:
    """Raise CheckpointError naming the first floating tensor holding NaN/inf.

    Both directions use it: saving refuses a diverged model, and loading refuses weights that
    would translate every sentence to an empty line (a NaN anywhere spreads to every logit).
    """
    floats = [(n, t) for n, t in tensors.items() if t.is_floating_point() and t.numel()]
    if not floats:
        return
    ok = torch.stack([torch.isfinite(t).all() for _, t in floats])
    if bool(ok.all()):  # one sync for the common case
        return
    bad = next(n for (n, _), good in zip(floats, ok.tolist(), strict=True) if not good)
    raise CheckpointError(f"{what}: {bad} holds NaN/inf")
