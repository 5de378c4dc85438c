"""Learning-rate schedules as pure functions of the update step.

``step`` is 1-based: the rate used by the ``step``-th optimizer update. Every schedule reaches
``train.lr`` (the peak) at the end of warmup. Reduce-on-plateau also depends on validation
results; its state is a small dataclass that is saved in the checkpoint, so resuming is exact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from nmt.config import TrainConfig


def warmup_factor(step: int, warmup: int) -> float:
    """Linear warmup ``step / warmup`` up to 1 (1 throughout when ``warmup`` is 0)."""
    if warmup <= 0:
        return 1.0
    return min(1.0, step / warmup)


def noam_lr(step: int, peak: float, warmup: int) -> float:
    """Inverse square root with linear warmup (Vaswani et al. 2017, sec. 5.3), scaled so the
    rate is ``peak`` at ``step == warmup``: ``peak * min(step / w, sqrt(w / step))``."""
    w = max(warmup, 1)
    s = max(step, 1)
    return peak * min(s / w, math.sqrt(w / s))


def constant_lr(step: int, peak: float, warmup: int) -> float:
    """``peak``, after an optional linear warmup."""
    return peak * warmup_factor(max(step, 1), warmup)


def decay_lr(step: int, peak: float, warmup: int, total: int, floor: float,
             shape: str = "linear") -> float:
    """Linear warmup to ``peak``, then down to ``floor`` at step ``total`` (and ``floor`` after
    it), in a straight line (``shape="linear"``) or half a cosine (``"cosine"``).

    Under a fixed budget a rate that reaches (near) zero by the end trains better than one that
    decays as 1/sqrt(step) and is still high when the budget stops it (Li et al. 2020, "Budgeted
    training"); ``total`` is then the number of steps the budget holds.
    """
    s = max(step, 1)
    if s <= warmup:
        return peak * warmup_factor(s, warmup)
    progress = min(1.0, (s - warmup) / max(total - warmup, 1))
    remaining = 0.5 * (1.0 + math.cos(math.pi * progress)) if shape == "cosine" else 1 - progress
    return floor + (peak - floor) * remaining


@dataclass
class PlateauState:
    """Reduce-on-plateau bookkeeping: the monitored metric is the dev loss (lower is better).

    The dev loss is used rather than BLEU because on small dev sets BLEU sits at 0 for a while
    and would cut the rate before the model has learnt anything.
    """

    lr: float
    best: float = math.inf
    bad: int = 0


def plateau_update(
    state: PlateauState, dev_loss: float, factor: float, patience: int, min_lr: float
) -> PlateauState:
    """The state after one validation: multiply the rate by ``factor`` once the loss has not
    improved for more than ``patience`` validations in a row."""
    if dev_loss < state.best:
        return PlateauState(state.lr, dev_loss, 0)
    bad = state.bad + 1
    if bad > patience:
        return PlateauState(max(state.lr * factor, min_lr), state.best, 0)
    return PlateauState(state.lr, state.best, bad)


class LRSchedule:
    """The configured schedule: ``lr(step)`` for every update, ``observe`` after validation."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.plateau = PlateauState(cfg.lr)

    def lr(self, step: int) -> float:
        c = self.cfg
        if c.schedule == "noam":
            return noam_lr(step, c.lr, c.warmup_steps)
        if c.schedule == "constant":
            return constant_lr(step, c.lr, c.warmup_steps)
        if c.schedule in ("linear", "cosine"):
            return decay_lr(step, c.lr, c.warmup_steps, c.decay_until, c.min_lr, c.schedule)
        return self.plateau.lr * warmup_factor(max(step, 1), c.warmup_steps)

    def observe(self, dev_loss: float) -> None:
        """Feed a scheduled validation's dev loss (only reduce-on-plateau uses it)."""
        if self.cfg.schedule == "plateau" and math.isfinite(dev_loss):
            c = self.cfg
            self.plateau = plateau_update(
                self.plateau, dev_loss, c.plateau_factor, c.plateau_patience, c.min_lr
            )

    def state_dict(self) -> dict[str, Any]:
        # JSON has no infinity; None stands for "no validation yet".
        d = asdict(self.plateau)
        d["best"] = None if math.isinf(self.plateau.best) else self.plateau.best
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        best = math.inf if d.get("best") is None else float(d["best"])
        self.plateau = PlateauState(float(d["lr"]), best, int(d["bad"]))
