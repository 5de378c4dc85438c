"""Data-parallel training (DDP) across the processes ``torchrun`` starts, on one machine or many.

``torchrun`` gives every process ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them (or
with ``WORLD_SIZE=1``) nothing here touches ``torch.distributed`` and the trainer runs exactly as
a single process. With them, :func:`distributed_session` joins the process group (NCCL on GPUs,
one ``cuda:LOCAL_RANK`` each; gloo on CPU) and hands the trainer a :class:`Dist`: the few
collectives it needs, each a no-op for one process.

Every rank runs the same loop over the same counters, so the collectives line up by
construction; what only rank 0 does (validation, checkpoint writes) goes through
:meth:`Dist.on_main`, which also carries rank 0's failure to the others instead of leaving
them waiting. Host-side agreement (stop flags, token counts, rank 0's results) travels on a
CPU gloo group, so it never waits for queued GPU work.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import inspect
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from nmt.config import TrainConfig
from nmt.errors import ConfigError, TrainingError
from nmt.runtime import derived_seed

log = logging.getLogger(__name__)

T = TypeVar("T")

DIGEST_DIR_ENV = "NMT_PARAM_DIGEST_DIR"  # tests: each rank writes its parameter digest here


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job, as torchrun describes it."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> DistEnv:
        """Read ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``; a single process when they are absent."""
        world = _env_int(environ, "WORLD_SIZE", 1)
        if world <= 1:
            return cls()
        rank = _env_int(environ, "RANK", None)
        local = _env_int(environ, "LOCAL_RANK", rank)
        if not 0 <= rank < world:
            raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world}; start with torchrun")
        return cls(rank, local, world)


def _env_int(environ: Mapping[str, str], name: str, default: int | None) -> int:
    text = environ.get(name)
    if text is None:
        if default is None:
            raise ConfigError(f"{name} is not set although WORLD_SIZE > 1; start with torchrun")
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not an integer") from None


def rank_seed(seed: int, rank: int) -> int:
    """A seed for ``rank``'s dropout stream, distinct per rank and from the neighbouring seeds."""
    return derived_seed(seed % 2**32, rank)


def device_for(name: str, env: DistEnv) -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` for ``auto``/``cuda`` on a GPU machine."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name != "cuda":  # cuda:N would put every process on one GPU; mps has no DDP backend
        raise ConfigError(f"train.device={name} cannot be shared by {env.world_size} processes: "
                          "use cuda (each process takes cuda:LOCAL_RANK) or cpu")  # fmt: skip
    if not torch.cuda.is_available():
        raise ConfigError("train.device=cuda: CUDA is not available on this machine")
    if env.local_rank >= torch.cuda.device_count():
        gpus = torch.cuda.device_count()
        raise ConfigError(f"LOCAL_RANK={env.local_rank} but this machine has {gpus} GPU(s): "
                          "lower --nproc_per_node")  # fmt: skip
    return torch.device("cuda", env.local_rank)


class Dist:
    """The collectives of data-parallel training; for one process every method is trivial."""

    def __init__(self, env: DistEnv = DistEnv(), device: torch.device | None = None,
                 ctrl: Any = None) -> None:  # fmt: skip
        self.rank, self.world, self.device = env.rank, env.world_size, device
        self.ctrl = ctrl  # CPU (gloo) group for host-side agreement; None = the default group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def agree_stop(self, signum: int | None, time_up: bool) -> tuple[int | None, bool]:
        """Any rank's signal or time limit stops every rank at the same step."""
        if self.world == 1:
            return signum, time_up
        flags = torch.tensor([signum or 0, int(time_up)], dtype=torch.int64)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.ctrl)
        sig, up = flags.tolist()
        return (sig or None), bool(up)

    def sum_tokens(self, tokens: int) -> int:
        """The step's target tokens over all ranks (the loss normaliser), on the host."""
        if self.world == 1:
            return tokens
        total = torch.tensor([tokens], dtype=torch.int64)
        dist.all_reduce(total, group=self.ctrl)
        return int(total.item())

    def all_reduce_(self, sums: Tensor) -> Tensor:
        """Sum a device tensor over ranks in place (queued on the device, no host sync)."""
        if self.world > 1:
            dist.all_reduce(sums)
        return sums

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and return its result on every rank.

        The others wait here (this is the barrier); if ``fn`` fails on rank 0 they raise too,
        rather than waiting for a result that never comes. ``fn``'s result must be picklable.
        """
        if self.world == 1:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except BaseException as e:
                box[0] = ("error", f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
                dist.broadcast_object_list(box, src=0, group=self.ctrl)
                raise
        dist.broadcast_object_list(box, src=0, group=self.ctrl)
        status, value = box[0]
        if status == "error":
            raise TrainingError(f"rank {self.rank}: stopping because rank 0 failed ({value})")
        return value

    def main_first(self, fn: Callable[[], T]) -> T:
        """Rank 0 runs ``fn`` first (e.g. filling a cache on disk), then the others do."""
        if self.world == 1:
            return fn()
        kept: list[T] = []
        self.on_main(lambda: kept.append(fn()))  # only "done" travels; the result stays here
        return kept[0] if self.is_main else fn()

    def gather_to_main(self, obj: T) -> list[T]:
        """Every rank's ``obj`` on rank 0 (in rank order); ``[obj]`` elsewhere and alone."""
        if self.world == 1:
            return [obj]
        out: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0, group=self.ctrl)
        return out if out is not None else [obj]

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train through: DDP averages the gradients of all ranks in backward."""
        if self.world == 1:
            return model
        ids = [self.device] if self.device is not None and self.device.type == "cuda" else None
        # No buffer is trained (the position tables are constants): skip DDP's broadcast of
        # them before every forward. torch 2.13 renamed the flag.
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        flag = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        off: dict[str, Any] = {flag: False}
        # LayerDrop leaves a skipped layer's parameters without gradients on that step.
        unused = float(getattr(model, "layer_dropout", 0.0)) > 0
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused,
                                       **off)  # fmt: skip

    def sync_grads(self, model: nn.Module, sync: bool) -> contextlib.AbstractContextManager[Any]:
        """Around forward+backward: skip the gradient all-reduce on accumulation batches."""
        if self.world == 1 or sync or not isinstance(model, DistributedDataParallel):
            return contextlib.nullcontext()
        return model.no_sync()

    def check_replicas(self, model: nn.Module) -> str:
        """All ranks must hold the same parameters after training; a mismatch is a bug."""
        digest = parameter_digest(model)
        folder = os.environ.get(DIGEST_DIR_ENV)
        if folder:
            (Path(folder) / f"rank{self.rank}.sha256").write_text(digest + "\n", encoding="utf-8")
        if self.world == 1:
            return digest
        digests: list[Any] = [None] * self.world
        dist.all_gather_object(digests, digest, group=self.ctrl)
        if len(set(digests)) != 1:
            short = ", ".join(d[:8] for d in digests)
            raise TrainingError(f"the {self.world} processes ended with different parameters "
                                f"({short}); please report this")  # fmt: skip
        log.info("parameters identical on all %d processes (sha256 %s)", self.world, digest[:12])
        return digest


def parameter_digest(model: nn.Module) -> str:
    """sha256 over every parameter's name and bytes (exact: any differing bit shows)."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def distributed_session(env: DistEnv, cfg: TrainConfig) -> Iterator[Dist]:
    """Join the process group for the training session; leave it (and say why) at the end.

    A collective that fails (a peer crashed, or did not arrive within
    ``train.dist_timeout_minutes``) becomes a :class:`TrainingError` naming this rank.
    """
    device = device_for(cfg.device, env)
    timeout = datetime.timedelta(minutes=cfg.dist_timeout_minutes)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timeout,
                            device_id=device if device.type == "cuda" else None)  # fmt: skip
    nmt_log = logging.getLogger("nmt")
    level = nmt_log.level
    if env.rank != 0:  # K copies of every progress line help nobody; warnings still show
        nmt_log.setLevel(logging.WARNING)
    try:
        ctrl = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
        yield Dist(env, device, ctrl)
    except RuntimeError as e:
        # NCCL failures are DistErrors; gloo's (a peer gone, a timeout) plain RuntimeErrors.
        if not (isinstance(e, dist.DistError) or "gloo" in str(e)):
            raise
        detail = " ".join(str(e).split())[:200]
        raise TrainingError(
            f"rank {env.rank}/{env.world_size}: lost contact with the other processes "
            f"({detail}); one of them stopped or crashed (see its messages above), or took "
            f"longer than train.dist_timeout_minutes={cfg.dist_timeout_minutes}"
        ) from None
    finally:
        nmt_log.setLevel(level)
        with contextlib.suppress(Exception):  # a broken group cannot always be torn down
            dist.destroy_process_group()
