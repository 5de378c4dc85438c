"""The performance policy: every place where ``nmt`` departs from PyTorch's defaults for speed
or memory, each with the measurement that justifies it (docs/performance.md, "The performance
policy").

* **Kernel caches** (:data:`KERNEL_CACHES`, set by :func:`apply`): oneDNN's and ideep's
  per-shape caches capped at 16 and 8 entries instead of 1,024.
* **Threads**: one intra-op thread per physical core (:func:`default_threads`,
  :func:`training_threads`); on a CPU, decoding runs one batch per intra-op thread
  (:func:`decode_workers`) and a few sentences on one thread (:func:`decode_threads`).
* **Memory**: freed heap memory handed back to the OS (:func:`release_free_memory`) after a
  model load, after each decoding batch and every 8 training steps
  (:func:`trim_after_training_step`).
* **Attention**: the explicit ``softmax(QKᵀ/√d)V`` instead of SDPA where SDPA is slower on a
  CPU (:func:`explicit_attention_is_faster`); fp32 attention in ungrouped bf16 decoding steps
  on a CPU (:func:`decoding_attention_dtype`).

:func:`apply` is called by the CLI's ``main``, by ``Translator.load`` and by
:func:`nmt.training.trainer.train`, so the command line and the Python API run alike. It is
idempotent, and must run before the first CPU kernel: oneDNN and ideep read their cache sizes
once, when they first run.

``NMT_PERF_POLICY=off`` turns the whole policy off: :func:`apply` sets nothing, threads stay as
torch chose them, nothing is trimmed, attention always goes through SDPA (unless its weights
are needed) and in the keys' own dtype. ``on`` (or unset) is the default; any other value is a
:class:`~nmt.errors.ConfigError`. The switch is read at every call, so it can be flipped in a
running process, except for the cache sizes, which the libraries read once.

torch is imported inside the functions, not at the top: the CLI applies the policy before
every command, and ``nmt --help`` or ``nmt build-vocab`` never import torch (1.3-1.9 s).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from nmt.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

POLICY_ENV = "NMT_PERF_POLICY"


def enabled() -> bool:
    """Whether the policy is on: ``NMT_PERF_POLICY`` is unset, empty, ``on`` or ``off``."""
    value = os.environ.get(POLICY_ENV, "").strip().lower()
    if value not in {"", "on", "off"}:
        raise ConfigError(f"{POLICY_ENV}={value!r}: expected on or off")
    return value != "off"


# ------------------------------------------------------------------ kernel caches

# docs/performance.md#policy-kernel-caches. oneDNN keeps a compiled kernel per matrix shape
# and ideep a prepared operation per shape, 1,024 of each, and never give that memory back;
# decoding meets a new shape at almost every step. bf16 beam search of the test set peaked at
# 726 MiB uncapped, 482 at 64/32, 434-438 at 16/8 (as fast as 64/32; 8/4 slower); bf16
# training 1,781 / 1,380 / 1,201 MiB at the same speed; bf16 greedy on one thread, uncapped vs
# 16/8: 414 / 427 vs 411 / 373 sent/s at a peak of 463 vs 340 MiB.
KERNEL_CACHES = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", "LRU_CACHE_CAPACITY": "8"}


def apply() -> None:
    """Apply the process-wide part of the policy (the kernel-cache caps); idempotent.

    A value the user set is kept. Under ``NMT_PERF_POLICY=off`` nothing is set.
    """
    if not enabled():
        return
    for name, value in KERNEL_CACHES.items():
        os.environ.setdefault(name, value)


# ------------------------------------------------------------------ threads


def set_threads(threads: int) -> None:
    """Set torch's intra-op threads when asked (``0`` keeps the current setting)."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block on ``threads`` intra-op threads, then restore the previous setting.

    ``0`` leaves the setting as it is.
    """
    import torch

    before = torch.get_num_threads()
    if threads > 0 and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def physical_cores() -> int:
    """Cores this process may run on, counting SMT siblings (hyper-threads) once."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux: no topology to read
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
        try:
            with open(path, encoding="ascii") as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def default_threads() -> int:
    """Intra-op threads when none are configured: one per physical core.

    A thread on a hyper-thread sibling only adds synchronisation to this model's small matrix
    products (docs/performance.md#policy-threads; not measured on a machine with SMT). Policy
    off: torch's current setting.
    """
    if not enabled():
        import torch

        return torch.get_num_threads()
    return physical_cores()


def training_threads(configured: int) -> int:
    """The intra-op threads of a training session: ``train.threads`` when set (> 0), else
    :func:`default_threads`, but never more than torch already uses (a lower count chosen by
    ``OMP_NUM_THREADS`` or a caller is kept)."""
    import torch

    return configured or min(torch.get_num_threads(), default_threads())


FEW_SENTENCES = 4  # calls with at most this many sentences decode on one CPU thread


def decode_workers(device: torch.device, n_batches: int) -> int:
    """How many batches decode at once: on a CPU one per intra-op thread, else one.

    A decoding step is a chain of small operations (64-320 rows), which split badly over
    threads; two batches at once, one thread each, let one batch's interpreter work overlap
    the other's arithmetic: greedy 620 -> 878 sent/s (1.42x), beam 5 244 -> 303 (1.24x) on
    2 cores, bf16 weights; three batches on 2 cores were slower (beam 239 vs 267 sent/s)
    (docs/performance.md#policy-threads). Policy off: one batch at a time.
    """
    if not enabled() or device.type != "cpu" or n_batches < 2:
        return 1
    import torch

    return max(1, min(torch.get_num_threads(), n_batches))


def decode_threads(device: torch.device, n_sentences: int, n_batches: int) -> int:
    """Intra-op threads of a decoding call, for :func:`torch_threads` (``0``: keep the setting).

    On a CPU: one when batches decode concurrently (:func:`decode_workers`: each on its own
    thread) and one for at most :data:`FEW_SENTENCES` sentences, whose matrix products are too
    small to split; with another process on the second core a Linear call took 7-8 ms on 2
    threads against 0.05 ms on 1, ~1.2 s per sentence (with a core free one thread was a
    little slower: 42 vs 37 ms) (docs/performance.md#policy-threads). Policy off: ``0``.
    """
    if not enabled() or device.type != "cpu":
        return 0
    few = n_sentences <= FEW_SENTENCES
    return 1 if few or decode_workers(device, n_batches) > 1 else 0


def serve_decoders(device: torch.device, workers: int) -> tuple[int, int]:
    """``nmt serve``'s decoders and the intra-op threads they run on (``0``: keep the setting).

    ``workers`` 0 picks as :func:`decode_workers` does for a long input: on a CPU one decoder
    per intra-op thread, each on one thread, so that one decoder's batch fills the cores while
    another's last few long sentences keep one busy (2 cores, zh->en recipe: two decoders of one
    thread 1.5-2.2x the sentences/s of one decoder of two, on random 48- and 64-sentence
    batches; nmt.serve.batcher). An explicit count shares the threads among the decoders.
    """
    import torch

    decoders = workers or decode_workers(device, n_batches=1 << 30)
    if decoders == 1 or not enabled() or device.type != "cpu":
        return decoders, 0
    return decoders, max(1, torch.get_num_threads() // decoders)


# ------------------------------------------------------------------ memory

TRIM_EVERY_STEPS = 8  # training on a CPU trims the heap every this many optimizer steps


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here: ~6 ms that a command which never trims need not pay

    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    return trim


def release_free_memory(device: torch.device | None = None) -> None:
    """Hand heap memory that torch has freed back to the operating system (glibc only).

    glibc keeps freed memory for reuse, and tensors of varying shapes fragment it, so a long
    CPU job's resident memory creeps well above what it uses at any one time
    (docs/performance.md#policy-memory-trimming): after a model load 370 -> 338 MB; decoding
    the test set, trimming after each batch, peak 410-414 instead of 456-459 MiB (1.06-1.09x
    slower). With ``device`` given, only when it is the CPU (other devices' tensors do not
    live on the heap). Elsewhere, and with the policy off, nothing is done.
    """
    if device is not None and device.type != "cpu":
        return
    trim = _malloc_trim()
    if trim is not None and enabled():
        trim(0)


def trim_after_training_step(step: int, device: torch.device) -> None:
    """:func:`release_free_memory` every :data:`TRIM_EVERY_STEPS` steps of CPU training.

    bf16 training peaked at 1.82 GiB without, 1.46 GiB trimming every 8 steps
    (docs/performance.md#policy-memory-trimming).
    """
    if step % TRIM_EVERY_STEPS == 0:
        release_free_memory(device)


# ------------------------------------------------------------------ attention


def few_queries_many_keys(q: Tensor, k: Tensor) -> bool:
    """A decoding step's shape: at most 8 queries per row over at least 8 keys, and at least
    256 queries in all (rows x heads x queries), for ``(batch, heads, len, head_dim)`` inputs."""
    return q.size(2) <= 8 and k.size(2) >= 8 and q.size(0) * q.size(1) * q.size(2) >= 256


def explicit_attention_is_faster(q: Tensor, k: Tensor) -> bool:
    """Whether the explicit ``softmax(QKᵀ/√d)V`` beats ``F.scaled_dot_product_attention`` here.

    On a CPU, two cases (docs/performance.md#policy-attention-without-sdpa):

    * 16-bit floats: SDPA's flash kernel took ~10x longer for the backward pass of short
      sentences (106 vs 9 ms at 360x4x11x64 bf16), which would cost bf16 training most of its
      gain;
    * :func:`few_queries_many_keys`: SDPA's CPU kernel is built for long queries; it was
      1.2-2.5x slower for 64-320 rows x 4 heads x 1 query over 12-30 keys, 1.1-1.2x for
      64 rows x 4 heads x 5 queries (beam search 1.05x faster without it).

    Policy off: never.
    """
    if q.device.type != "cpu" or not enabled():
        return False
    import torch

    return q.dtype != torch.float32 or few_queries_many_keys(q, k)


def decoding_attention_dtype(keys: Tensor) -> torch.dtype:
    """The dtype of the keys/values a decoding step attends over (its queries follow).

    fp32 for bf16 keys on a CPU outside autocast: a step's attention is many tiny matrix
    products (one query per row and head over a few dozen keys), for which the CPU has no
    fast bf16 kernel; in fp32 they ran ~2x faster (64 rows x 4 heads x 1 query over 12 keys:
    164 vs 310 us) and greedy search 1.12-1.19x faster, while the projections around them
    stay in bf16. Not so once beam search groups a sentence's beams (5 queries per matrix:
    581 us in bf16, 732 in fp32), so the grouped state casts back
    (docs/performance.md#policy-fp32-attention-in-bf16-decoding). Otherwise, and with the
    policy off, the keys' own dtype.
    """
    import torch

    cpu_bf16 = keys.device.type == "cpu" and keys.dtype == torch.bfloat16
    # (under autocast, the matmuls would cast back to bf16)
    if cpu_bf16 and not torch.is_autocast_enabled("cpu") and enabled():
        return torch.float32
    return keys.dtype
