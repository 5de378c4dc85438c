"""Training statistics kept on the device, read once per log interval.

Calling ``.item()`` on the loss every step would stall an accelerator until the step has
finished; instead the sums live in one small device tensor and :meth:`StepMeter.read` copies
them to the host in a single transfer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Slots: interval sums, then the running count of non-finite steps in a row (kept across reads).
_LOSS, _NLL, _TOKENS, _SKIPPED, _MAX_RUN, _RUN = range(6)


@dataclass(frozen=True)
class IntervalStats:
    """What happened since the previous read."""

    loss: float  # summed label-smoothed loss of the applied steps
    nll: float  # summed NLL of the applied steps
    tokens: float  # target tokens of the applied steps
    skipped: int  # steps skipped for a non-finite loss or gradient
    max_run: int  # longest run of consecutive skipped steps seen (across reads)
    run: int  # consecutive skipped steps right now


class StepMeter:
    """Device-side sums for the steps of one log interval."""

    def __init__(self, device: torch.device, run: int = 0) -> None:
        self.acc = torch.zeros(6, device=device)
        self.acc[_RUN] = run
        self.steps = 0

    def add(self, sums: Tensor, bad: Tensor) -> None:
        """Count one step: ``sums`` = ``(3,)`` loss, nll, tokens; ``bad`` 0-dim bool."""
        acc = self.acc
        acc[:3] += torch.where(bad, torch.zeros_like(sums), sums)  # NaN * 0 would be NaN
        acc[_SKIPPED] += bad.float()
        acc[_RUN] = (acc[_RUN] + 1) * bad.float()
        acc[_MAX_RUN] = torch.maximum(acc[_MAX_RUN], acc[_RUN])
        self.steps += 1

    def read(self) -> IntervalStats:
        """The interval's figures (one host sync); the interval sums start again from zero."""
        loss, nll, tokens, skipped, max_run, run = self.acc.tolist()
        self.acc[:_RUN] = 0
        self.steps = 0
        return IntervalStats(loss, nll, tokens, int(skipped), int(max_run), int(run))
