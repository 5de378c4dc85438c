"""Optimizer construction and an update that is skipped on non-finite values without a sync.

A step whose loss or gradient norm is NaN/inf must not change the model. Checking that on the
host would stall the device every step, so the fused Adam/AdamW kernels are given a
``found_inf`` flag (the hook ``torch.amp.GradScaler`` uses): when it is 1 they leave parameters,
moments and step counts untouched, decided on the device. Optimizers without that hook fall back
to one host check per step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nmt.config import TrainConfig


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """Adam or AdamW over the trainable parameters, fused where the device supports it."""
    params = [p for p in model.parameters() if p.requires_grad]
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    fused = True if device.type in ("cpu", "cuda") else None
    return cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=fused)


def make_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 autocast (bf16 and fp32 have the range to go without)."""
    if dtype is torch.float16:
        return torch.amp.GradScaler(device.type)
    return None


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def clip_gradients(
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, max_norm: float
) -> Tensor:
    """Unscale (fp16), clip to ``max_norm`` (0 = off) and return the total norm on the device.

    The norm is computed even without clipping: it is the cheapest non-finite gradient check.
    """
    if scaler is not None:
        scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else math.inf)


def optimizer_step(
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, skip: Tensor
) -> None:
    """Update unless ``skip`` (a 0-dim bool device tensor) is true, then clear the gradients."""
    if scaler is not None:
        # The scaler finds inf/NaN gradients itself and skips (and shrinks its scale).
        scaler.step(optimizer)
        scaler.update()
    elif getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer.grad_scale = None  # type: ignore[attr-defined]
        optimizer.found_inf = skip.float()  # type: ignore[attr-defined]
        optimizer.step()
        optimizer.found_inf = None  # type: ignore[attr-defined]
    elif not bool(skip):  # host sync: this optimizer cannot skip on the device
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
