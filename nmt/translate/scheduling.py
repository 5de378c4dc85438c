"""Decoding a list of sources in batches: which batches, in what order, on how many threads.

Batches come from :func:`nmt.decoding.batches.length_sorted_batches` (longest first), as in
training validation; on a CPU, batches run concurrently, one per intra-op thread.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import torch
from tqdm import tqdm

from nmt.config import DecodeConfig
from nmt.datautil.batching import collate_src
from nmt.decoding import Hypothesis, search
from nmt.decoding.batches import length_sorted_batches
from nmt.models.interface import Seq2Seq
from nmt.runtime import autocast, release_free_memory, torch_threads

FEW_SENTENCES = 4  # calls with at most this many sentences decode on one CPU thread


def batch_seed(seed: int, index: int) -> int:
    """The sampling seed of batch ``index`` of a call with ``seed`` (batch 0 keeps ``seed``)."""
    return (seed + index * 0x9E3779B97F4A7C15) % 2**64  # a large odd step: no nearby overlaps


def decode_batches(
    model: Seq2Seq, sources: list[list[int]], decode: DecodeConfig, seed: int, *,
    device: torch.device, autocast_dtype: torch.dtype | None, max_len_cap: int | None,
    need_attention: bool = False, progress: bool = False, use_cache: bool = True,
) -> list[list[Hypothesis]]:
    """Decode token ids (no </s>): the n-best lists in input order (``[]`` for an empty one)."""
    nbests: list[list[Hypothesis]] = [[] for _ in sources]
    batches = length_sorted_batches([len(ids) for ids in sources], decode.batch_size)
    n_sentences = sum(len(b) for b in batches)
    workers = decode_workers(device, len(batches))
    bar = tqdm(total=n_sentences, unit="sent", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, leave=False)

    def run(index: int) -> None:
        chunk = batches[index]
        src, src_mask = collate_src([sources[i] for i in chunk])
        # Each batch samples from its own stream, so samples do not depend on how many
        # batches run at once. Inference mode and autocast are per thread: entered here.
        generator = torch.Generator(device).manual_seed(batch_seed(seed, index))
        with torch.inference_mode(), autocast(device, autocast_dtype):
            result = search(
                model, src.to(device), src_mask.to(device), decode,
                generator=generator, max_len_cap=max_len_cap,
                need_attention=need_attention, use_cache=use_cache,
            )
        for i, hyps in zip(chunk, result, strict=True):
            nbests[i] = hyps
        bar.update(len(chunk))
        if device.type == "cpu":  # batches differ in shape: keep the heap small
            release_free_memory()

    # A few sentences decode fastest on one thread (see torch_threads); so do concurrent
    # batches, each on its own thread; other jobs keep the process's setting.
    few = device.type == "cpu" and n_sentences <= FEW_SENTENCES
    with bar, torch_threads(1 if few or workers > 1 else 0):
        if workers == 1:
            for index in range(len(batches)):
                run(index)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="nmt-decode") as pool:
                # Re-raises a batch's error; the batches not yet started are then dropped.
                for _ in pool.map(run, range(len(batches))):
                    pass
    return nbests



def decode_workers(device: torch.device, n_batches: int) -> int:
    """How many batches decode at once: on a CPU one per intra-op thread, else one.

    A decoding step is a chain of small operations (64-320 rows), which split badly over
    threads: on 2 cores, greedy search of the cmn-eng test set at batch 64 ran 1.1x faster
    on 2 threads than on 1, while two batches at once, one thread each, ran 1.4x faster
    (beam 5: 1.2x); the interpreter work of one batch overlaps the other's arithmetic
    (docs/performance.md).
    """
    if device.type != "cpu" or n_batches < 2:
        return 1
    return max(1, min(torch.get_num_threads(), n_batches))

