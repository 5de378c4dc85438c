"""Decoding a list of sources in batches: which batches, in what order, on how many threads.

Batches come from :func:`nmt.decoding.batches.length_sorted_batches` (longest first), as in
training validation; on a CPU, batches run concurrently, one per intra-op thread
(:func:`nmt.perf.decode_workers`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from tqdm import tqdm

from nmt import perf
from nmt.config import DecodeConfig
from nmt.datautil.batching import collate_src
from nmt.decoding import Hypothesis, search
from nmt.decoding.batches import length_sorted_batches
from nmt.decoding.processors import LogitsProcessor, Steering
from nmt.models.interface import Seq2Seq
from nmt.runtime import autocast


def batch_seed(seed: int, index: int) -> int:
    """The sampling seed of batch ``index`` of a call with ``seed`` (batch 0 keeps ``seed``)."""
    return (seed + index * 0x9E3779B97F4A7C15) % 2**64  # a large odd step: no nearby overlaps


def decode_batches(
    model: Seq2Seq, sources: list[list[int]], decode: DecodeConfig, seed: int, *,
    device: torch.device, autocast_dtype: torch.dtype | None, max_len_cap: int | None,
    need_attention: bool = False, progress: bool = False, use_cache: bool = True,
    processors: Sequence[LogitsProcessor] = (), prefixes: Sequence[Sequence[int]] | None = None,
    constraints: Sequence[Sequence[Sequence[int]]] | None = None,
) -> list[list[Hypothesis]]:
    """Decode token ids (no </s>): the n-best lists in input order (``[]`` for an empty one).

    ``processors`` run in every search; ``prefixes[i]`` (target ids) starts source ``i``'s
    output (see :class:`~nmt.decoding.processors.Steering`).
    """
    nbests: list[list[Hypothesis]] = [[] for _ in sources]
    batches = length_sorted_batches([len(ids) for ids in sources], decode.batch_size)
    n_sentences = sum(len(b) for b in batches)
    workers = perf.decode_workers(device, len(batches))
    bar = tqdm(total=n_sentences, unit="sent", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, leave=False)

    def run(index: int) -> None:
        chunk = batches[index]
        src, src_mask = collate_src([sources[i] for i in chunk])
        # Each batch samples from its own stream, so samples do not depend on how many
        # batches run at once. Inference mode and autocast are per thread: entered here.
        generator = torch.Generator(device).manual_seed(batch_seed(seed, index))
        forced = None if prefixes is None else [prefixes[i] for i in chunk]
        steering = Steering(processors, forced, device)
        phrases = None if constraints is None else [constraints[i] for i in chunk]
        with torch.inference_mode(), autocast(device, autocast_dtype):
            result = search(
                model, src.to(device), src_mask.to(device), decode,
                generator=generator, max_len_cap=max_len_cap,
                need_attention=need_attention, use_cache=use_cache, steering=steering,
                constraints=phrases,
            )
        for i, hyps in zip(chunk, result, strict=True):
            nbests[i] = hyps
        bar.update(len(chunk))
        perf.release_free_memory(device)  # batches differ in shape: keep the heap small

    # A few sentences, and concurrent batches, decode on one thread each (nmt.perf).
    with bar, perf.torch_threads(perf.decode_threads(device, n_sentences, len(batches))):
        if workers == 1:
            for index in range(len(batches)):
                run(index)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="nmt-decode") as pool:
                # Re-raises a batch's error; the batches not yet started are then dropped.
                for _ in pool.map(run, range(len(batches))):
                    pass
    return nbests
