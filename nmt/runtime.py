"""Seeds, device choice, precision and autocast. Nothing global is kept here.

The performance policy (threads, memory trimming, kernel caches, attention kernels) is in
:mod:`nmt.perf`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from nmt.errors import ConfigError


def derived_seed(*parts: int) -> int:
    """A 32-bit seed from non-negative integers (a run seed and an epoch, a rank), spread by
    numpy's SeedSequence: neighbouring inputs give unrelated streams."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so CPU runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS is not available on this machine")
    return device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain fp32.

    ``auto`` is bf16 on GPUs that support it (fp16 otherwise), bf16 on CPUs that compute it
    natively (:func:`cpu_has_native_bf16`) and fp32 on other CPUs, where bf16 is emulated and
    slower than fp32.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type == "cpu":
            raise ConfigError("train.precision: fp16 autocast needs a GPU; use bf16 or fp32 on CPU")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


def precision_name(dtype: torch.dtype | None) -> str:
    """``fp32``, ``bf16`` or ``fp16``: the name of an autocast dtype (None = no autocast)."""
    if dtype is None:
        return "fp32"
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


CPU_BF16_ENV = "NMT_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively: x86 AVX512-BF16 or AMX-BF16, or the
    Arm BF16 extension, read from ``/proc/cpuinfo`` (other systems: False).

    ``NMT_CPU_BF16=0`` or ``1`` overrides the answer (the tests pin it to 0, so that CPU runs
    are fp32 and give the same numbers on every machine).
    """
    override = os.environ.get(CPU_BF16_ENV, "").strip()
    if override in {"0", "1"}:
        return override == "1"
    return _cpuinfo_has_bf16(_read_cpuinfo())


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` reports."""
    for line in _read_cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    import platform

    return platform.processor() or platform.machine()


@functools.cache
def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _cpuinfo_has_bf16(cpuinfo: str) -> bool:
    """True when the first ``flags`` (x86) or ``Features`` (Arm) line names a bf16 extension."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(value.split()))
    return False


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Autocast to ``dtype`` on ``device``, or nothing when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
