"""``nmt train --nproc K``: start ``torchrun`` with K processes on this machine.

Each process runs ``python -m nmt train`` with the same arguments (minus ``--nproc``) and finds
its place in the job in the environment torchrun sets (:mod:`nmt.training.distributed`). For
several machines, call ``torchrun`` directly (see the README).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

from nmt.errors import ConfigError

_FORWARDED = (signal.SIGINT, signal.SIGTERM)


def torchrun_command(nproc: int, train_args: Sequence[str]) -> list[str]:
    """The torchrun command line for ``nmt train TRAIN_ARGS`` in ``nproc`` processes.

    ``--standalone`` runs the rendezvous on this machine on a free port, so two jobs on one
    machine do not collide on torchrun's default port.
    """
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", "-m", "nmt", "train", *train_args,
    ]  # fmt: skip


def launch(nproc: int, train_args: Sequence[str]) -> int:
    """Run torchrun until it ends; return its exit code (``128 + signal`` when stopped by one).

    Raises:
        ConfigError: ``nproc`` < 1, or this process already runs under torchrun.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc {nproc}: must be >= 1")
    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc starts torchrun, but this process already runs under it "
                          "(WORLD_SIZE is set): drop --nproc")  # fmt: skip
    # torchrun gets its own session: a Ctrl-C at the terminal then reaches only this process,
    # which forwards it once; torchrun forwards it to the workers. (Started from a terminal
    # directly, workers get it twice, which StopSignals' repeat window absorbs.)
    proc = subprocess.Popen(torchrun_command(nproc, train_args), start_new_session=True)
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        code = proc.wait()  # PEP 475: the wait resumes after each forwarded signal
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + received[0] if received else code
