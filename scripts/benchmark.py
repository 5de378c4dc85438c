#!/usr/bin/env python
"""Speed benchmark: training and decoding throughput, MFU, peak memory, translate latency.

    python scripts/benchmark.py                          # the cmn-eng Transformer and GRU recipes
    python scripts/benchmark.py --model runs/cmn_zh_en_transformer   # a trained run
    python scripts/benchmark.py --quick --out /tmp/bench              # CI smoke, < 1 minute
    python scripts/benchmark.py --data          # build-vocab and training start at 1M/3M pairs

Writes ``OUT/benchmark.json`` and ``OUT/benchmark.md`` (default OUT: ``runs/benchmark``) and
prints the table. Every job (one training precision, the decoding grid, one ``nmt translate``)
runs in its own process, so each peak RSS is that job's alone (``os.wait4``).

What is measured, per model:

- training: the trainer's step (autocast forward, label-smoothed loss, backward, clipping, the
  fused optimizer) on the corpus' own length-bucketed batches, fp32 and bf16; after warm-up
  steps, several timed windows; the median window's real (non-padding) target tokens/s and
  source+target tokens/s. MFU = model FLOPs of those batches (``nmt.models.flops``: matmul
  FLOPs of the forward pass from the architecture and the real lengths, x3 for training) / time
  / the peak matmul FLOP/s measured here with large ``torch.mm`` in the same dtype and threads;
- decoding: greedy, beam 5 and sampling, batch 1 and 64, with and without the Transformer's
  key/value cache (the GRU has none), on the test set sorted by length as ``nmt translate``
  does; sentences/s and generated tokens/s; bf16 greedy and beam search with their agreement
  with fp32;
- ``nmt translate``: process start to output for one sentence (median of several), and the
  whole process on the test set with beam 5 (wall time and peak RSS); it runs with
  ``OMP_NUM_THREADS`` set to ``--threads``, which torch's default thread count follows.
- ``nmt serve`` (section ``serve``): the server on loopback, greedy, with 1, 8 and 64
  concurrent clients each sending one sentence per request (``scripts/serve_load.py``), with
  continuous batching (``--continuous``) and then batch by batch (the default):
  sentences/s and p50/p99 latency, next to the offline Translator of the same model measured
  in the same job just before (batch-64 greedy throughput from text, and the latency of a
  one-sentence ``translate`` call);
- CTranslate2 (section ``ctranslate2``, Transformers only): the run exported with ``nmt export``
  (float32 and int8), greedy and beam 5 at batch 64 from text, next to nmt's own engine
  (fp32, and int8 where it runs) with the share of lines identical to nmt's fp32 (each engine
  kind in a process of its own; the CTranslate2 one imports no torch); and
  ``nmt translate --engine ctranslate2`` on the test set, beam 5, as a whole process (wall
  time and peak RSS), next to the torch engine's row.

Threads: every job uses ``--threads`` (default: one per physical core). When other processes
keep the cores busy, more than one thread makes every parallel region wait for a descheduled
worker (here 7-8 ms per Linear call instead of 0.05 ms); measure with ``--threads 1`` then.

Untrained models (``--config``; the default) are saved as a step-0 checkpoint. They would decode
to the length limit, so their decoding is held to realistic lengths: ``max_len_a`` is set to the
test set's (target tokens + 1) / source tokens and ``max_len_b`` to 0, which makes the mean
output length match the references' (the table shows it). ``--model RUN_DIR`` decodes with a
trained run's checkpoint and its own decoding settings instead.

Noise: on a shared machine the absolute figures move with the other jobs; the JSON records the
load average before and after. Compare variants in one run, not across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # a fresh clone works without installing the package
    sys.path.insert(0, str(REPO))

DEFAULT_CONFIGS = ["configs/cmn_zh_en_transformer.yaml", "configs/cmn_zh_en_gru.yaml"]
SECTIONS = ("train", "decode", "startup", "translate", "serve", "ctranslate2")


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does (``--quick`` or full)."""

    peak_n: int  # square matmul side
    peak_repeats: int
    train_pairs: int  # 0 = the whole corpus
    train_warmup: int  # steps
    train_windows: int
    train_window_steps: int
    batch_tokens: int  # 0 = the config's
    decode_sentences: int  # at batch 64; 0 = the whole test set
    decode_sentences_b1: int  # at batch 1
    decode_repeats: int
    startup_repeats: int
    translate_sentences: int  # 0 = the whole test set
    translate_repeats: int
    tiny_model: bool  # shrink the recipes' models
    serve_requests: int = 2000  # per client count (a tenth, at least 50, for one client)
    serve_sentences: int = 0  # sentences the clients cycle through; 0 = the whole test set
    single_calls: int = 100  # one-sentence Translator calls, for the latency reference


FULL = Sizes(2048, 5, 0, 5, 5, 8, 0, 0, 200, 3, 5, 0, 3, False)
QUICK = Sizes(256, 3, 2000, 1, 2, 2, 1024, 32, 8, 1, 1, 32, 1, True,
              serve_requests=64, serve_sentences=32, single_calls=8)


# =========================================================================== jobs (subprocesses)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@contextlib.contextmanager
def _timed(device: Any, out: list[float]) -> Iterator[None]:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out.append(time.perf_counter() - start)


def measure_peak(device_name: str, threads: int, n: int, repeats: int) -> dict[str, Any]:
    """Matmul FLOP/s of ``n x n`` products in fp32 and bf16 (median and best of ``repeats``)."""
    import torch

    from nmt.runtime import select_device

    _set_threads(threads)
    device = select_device(device_name)
    result: dict[str, Any] = {"n": n}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        times: list[float] = []
        a @ b  # warm-up
        for _ in range(repeats):
            with _timed(device, times):
                for _ in range(4):
                    a @ b
        flops = 4 * 2 * n**3
        result[name] = {"median_gflops": flops / statistics.median(times) / 1e9,
                        "best_gflops": flops / min(times) / 1e9}
    return result


def job_train(spec: dict[str, Any]) -> dict[str, Any]:
    """Training throughput of one model in one precision."""
    import torch

    from nmt import perf
    from nmt.config import load_config
    from nmt.datautil.batching import TokenBatchSampler, TokenizedCorpus, collate
    from nmt.datautil.pipeline import TextProcessor
    from nmt.models.factory import build_model
    from nmt.models.flops import training_flops
    from nmt.runtime import seed_everything, select_device
    from nmt.training.data import load_train
    from nmt.training.optim import make_optimizer, make_scaler
    from nmt.training.trainer import train_step

    _set_threads(spec["threads"])
    cfg = load_config(Path(spec["run_dir"]) / "config.yaml")
    device = select_device(spec["device"])
    dtype = torch.bfloat16 if spec["precision"] == "bf16" else None
    seed_everything(cfg.seed)
    processor = TextProcessor.load(cfg.run_dir, cfg.data)
    corpus = load_train(cfg, processor)  # the trainer's cached token ids
    if spec["train_pairs"] and len(corpus) > spec["train_pairs"]:
        n = spec["train_pairs"]
        corpus = TokenizedCorpus.from_lists([corpus.src(i).tolist() for i in range(n)],
                                            [corpus.tgt(i).tolist() for i in range(n)])
    batch_tokens = spec["batch_tokens"] or cfg.train.batch_tokens
    sampler = TokenBatchSampler(corpus.src_lengths(), corpus.tgt_lengths(), batch_tokens, cfg.seed)
    vocab = len(processor.tgt_vocab)
    model = build_model(cfg.model, len(processor.src_vocab), vocab, processor.joint).to(device)
    model.train()
    optimizer = make_optimizer(model, cfg.train, device)
    t = cfg.train

    def batches() -> Iterator[list[int]]:
        epoch = 0
        while True:
            yield from sampler.epoch_batches(epoch)
            epoch += 1

    stream = batches()
    scaler = make_scaler(device, dtype)  # one for the run, as the trainer keeps (fp16 only)
    steps_done = 0

    src_len, tgt_len = corpus.src_lengths() + 1, corpus.tgt_lengths() + 1  # </s>; <s> + y

    def step() -> tuple[int, int, list[list[int]]]:
        """The trainer's update (single process): target and source tokens, the batches."""
        group = [next(stream) for _ in range(t.accum_steps)]
        cpu = [collate(corpus, indices) for indices in group]
        total = sum(b.n_tgt_tokens for b in cpu)
        train_step(model, optimizer, cpu, total, t, device, dtype, scaler)
        nonlocal steps_done
        steps_done += 1
        perf.trim_after_training_step(steps_done, device)  # as the trainer does
        return total, sum(b.n_src_tokens for b in cpu), group

    for _ in range(spec["warmup"]):
        step()
    windows: list[dict[str, float]] = []
    used: list[list[int]] = []
    for _ in range(spec["windows"]):
        tgt = src = 0
        batches_done: list[list[int]] = []
        times: list[float] = []
        with _timed(device, times):
            for _ in range(spec["window_steps"]):
                n_tgt, n_src, group = step()
                tgt, src, batches_done = tgt + n_tgt, src + n_src, batches_done + group
        rows = [i for b in batches_done for i in b]
        flops = training_flops(cfg.model, vocab, src_len[rows].tolist(), tgt_len[rows].tolist())
        windows.append({"seconds": times[0], "tgt_tokens": tgt, "src_tokens": src,
                        "flops": flops})
        used += batches_done
    rates = [w["tgt_tokens"] / w["seconds"] for w in windows]
    mid = windows[rates.index(statistics.median_low(rates))]
    steps = spec["windows"] * spec["window_steps"]
    return {
        "precision": spec["precision"],
        "tgt_tokens_per_s": mid["tgt_tokens"] / mid["seconds"],
        "src_tgt_tokens_per_s": (mid["tgt_tokens"] + mid["src_tokens"]) / mid["seconds"],
        "achieved_gflops": mid["flops"] / mid["seconds"] / 1e9,
        "train_flops_per_tgt_token": mid["flops"] / mid["tgt_tokens"],
        "tgt_tokens_per_step": sum(w["tgt_tokens"] for w in windows) / steps,
        "padding_fraction": sampler.padding_fraction(used),
        "window_tgt_tokens_per_s": rates,
        "steps_timed": steps,
        "batch_tokens": batch_tokens,
        "parameters": sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()),
    }


def job_decode(spec: dict[str, Any]) -> dict[str, Any]:
    """The decoding grid of one model: strategies x batch sizes x cache, and bf16 (and, on x86
    CPUs, int8) greedy and beam search at batch 64 (with their agreement with fp32).

    Every row decodes as ``nmt translate`` does (:meth:`Translator.search_ids`: batches sorted
    by length, on a CPU several at once), from token ids, so tokenizing is not timed.
    """
    from nmt.translate import Translator

    _set_threads(spec["threads"])
    precisions = ["fp32", "bf16"] + (["int8"] if spec.get("int8") else [])
    translators = {
        precision: Translator.load(spec["run_dir"], device=spec["device"], precision=precision)
        for precision in precisions
    }
    translator = translators["fp32"]
    cfg = translator.config
    lines = Path(spec["test_src"]).read_text(encoding="utf-8").splitlines()
    ids = [translator.processor.encode_src(s)[: translator.max_src_tokens] for s in lines]
    ids = [x for x in ids if x]
    max_len = spec.get("max_len") or {}
    rows: list[dict[str, Any]] = []
    reference: dict[tuple[str, int], list[list[int]]] = {}
    cache_options = [True, False] if cfg.model.type == "transformer" else [True]
    grid = [(s, b, c, "fp32") for s in ("greedy", "beam", "sample") for b in (64, 1)
            for c in cache_options]
    grid += [(s, 64, True, p) for p in precisions[1:] for s in ("greedy", "beam")]
    for strategy, batch, cache, precision in grid:
        n = spec["sentences"] if batch > 1 else spec["sentences_b1"]
        subset = ids[:: max(1, len(ids) // n)][:n] if n and n < len(ids) else ids
        chosen = translators[precision]
        decode = chosen.decode_config(strategy=strategy, beam_size=5, n_best=1,
                                      batch_size=batch, **max_len)

        def run(subset: list[list[int]] = subset, decode: Any = decode, cache: bool = cache,
                chosen: Translator = chosen) -> list[list[int]]:
            nbests = chosen.search_ids(subset, decode, cfg.seed, use_cache=cache)
            return [nbest[0].tokens for nbest in nbests]

        run(subset[: decode.batch_size])  # warm-up
        times: list[float] = []
        outputs: list[list[int]] = []
        for _ in range(spec["repeats"]):
            with _timed(chosen.device, times):
                outputs = run()
        seconds = statistics.median(times)
        tokens = sum(len(o) for o in outputs)
        row = {"strategy": strategy, "batch": batch, "cache": cache, "precision": precision,
               "sentences": len(subset), "sent_per_s": len(subset) / seconds,
               "tokens_per_s": tokens / seconds, "mean_len": tokens / len(subset),
               "seconds": seconds}
        if strategy in ("greedy", "beam") and batch == 64 and cache:
            key = (strategy, len(subset))
            if precision == "fp32":
                reference[key] = outputs
            elif key in reference:
                ref = reference[key]
                same = sum(a == b for a, b in zip(ref, outputs, strict=True))
                row["same_as_fp32"] = same / len(ref)
        rows.append(row)
    return {"rows": rows}


def _test_lines(spec: dict[str, Any], key: str = "sentences") -> list[str]:
    lines = [x for x in Path(spec["test_src"]).read_text(encoding="utf-8").splitlines()
             if x.strip()]  # fmt: skip
    n = spec.get(key) or 0
    return lines[::max(1, len(lines) // n)][:n] if n and n < len(lines) else lines


def job_serve(spec: dict[str, Any]) -> dict[str, Any]:
    """``nmt serve`` under 1, 8 and 64 concurrent one-sentence clients, and the offline
    Translator of the same model just before: batch-64 greedy throughput and the latency of a
    one-sentence call (both from text, as the server decodes)."""
    import gc

    sys.path.insert(0, str(REPO / "scripts"))
    import serve_load

    from nmt.translate import Translator

    _set_threads(spec["threads"])
    lines = _test_lines(spec)
    greedy = {"strategy": "greedy", **(spec.get("max_len") or {})}
    translator = Translator.load(spec["run_dir"], device=spec["device"])
    translator.translate(lines[:64], greedy, batch_size=64)  # warm-up
    times: list[float] = []
    for _ in range(spec["repeats"]):
        with _timed(translator.device, times):
            translator.translate(lines, greedy, batch_size=64)
    offline = len(lines) / statistics.median(times)
    singles: list[float] = []
    for sentence in (lines * 2)[: spec["single_calls"]]:
        with _timed(translator.device, singles):
            translator.translate([sentence], greedy)
    precision = translator.precision
    del translator
    gc.collect()

    rows: list[dict[str, Any]] = []
    exits: list[int | None] = []
    # Continuous batching and batch by batch (the default), each its own server, one after
    # the other in this job: their ratio is the comparison.
    for mode, flag in (("continuous", "--continuous"), ("batch by batch", "--no-continuous")):
        mode_rows, exit_code = _serve_rows(spec, lines, greedy, flag)
        rows += [{**row, "mode": mode} for row in mode_rows]
        exits.append(exit_code)
    return {"sentences": len(lines), "precision": precision, "offline_b64_sent_per_s": offline,
            "single_call_ms": {"p50": 1000 * statistics.median(singles),
                               "p99": serve_load.percentile_ms(sorted(singles), 99)},
            "rows": rows, "server_exit": exits}


def _serve_rows(spec: dict[str, Any], lines: list[str], greedy: dict[str, Any], flag: str
                ) -> tuple[list[dict[str, Any]], int | None]:  # fmt: skip
    """One ``nmt serve`` (with ``flag``) under 1, 8 and 64 clients; its rows and exit code."""
    import signal
    import urllib.request

    import serve_load

    port = serve_load.free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "nmt", "serve", "--model", spec["run_dir"], "--port", str(port),
           "--device", spec["device"], flag]
    for key, value in greedy.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    rows = []
    with open(spec["log"], "ab") as log:
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"nmt serve did not start; see {spec['log']}") from None
                    time.sleep(0.2)
            for clients in (1, 8, 64):
                requests = spec["requests"] if clients > 1 else max(50, spec["requests"] // 10)
                requests = max(requests, 2 * clients)
                # the length limits are the server's (set on its command line above)
                row = serve_load.measure(url, lines, clients, requests,
                                         options={"strategy": "greedy"},
                                         warmup=min(2 * clients, 128), time_limit=300)
                rows.append(row)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
    return rows, server.returncode


def job_export_ctranslate2(spec: dict[str, Any]) -> dict[str, Any]:
    """Export the run to CTranslate2, float32 and int8, into ``spec["work"]``."""
    from nmt.config import load_config
    from nmt.export.ctranslate2 import export_ctranslate2

    run = Path(spec["run_dir"])
    cfg = load_config(run / "config.yaml")
    exports = {}
    for label, quantization in (("fp32", None), ("int8", "int8")):
        out = Path(spec["work"]) / f"ct2-{label}"
        export_ctranslate2(run, cfg, out, quantization=quantization, force=True)
        exports[label] = str(out)
    return {"exports": exports}


def job_engines(spec: dict[str, Any]) -> dict[str, Any]:
    """Greedy and beam 5 at batch 64, from text, with either nmt's engine (``spec["engine"]``
    ``nmt``: fp32, and int8 where it runs) or the CTranslate2 exports (``ctranslate2``). One
    engine kind per process: torch's OpenMP threads, idle but spinning, slow CTranslate2 down
    (greedy 229 vs 756 sentences/s beside a loaded torch), and CTranslate2 needs no torch.
    The caller passes one export per process: a second loaded ``ctranslate2.Translator`` (its
    own thread pool) slowed the first one's greedy decoding from 660-781 to 274-287
    sentences/s on this 2-core CPU."""
    os.environ["OMP_NUM_THREADS"] = str(spec["threads"])  # before either starts its pool
    engines: dict[str, Any] = {}
    if spec["engine"] == "nmt":
        from nmt.translate import Translator

        _set_threads(spec["threads"])
        engines["nmt fp32"] = Translator.load(spec["run_dir"], spec["device"], precision="fp32")
        if spec.get("int8"):
            engines["nmt int8"] = Translator.load(spec["run_dir"], spec["device"],
                                                  precision="int8")  # fmt: skip
    else:
        from nmt.translate.ctranslate2_engine import CTranslate2Translator

        for label, path in spec["exports"].items():
            engines[f"ctranslate2 {label}"] = CTranslate2Translator.load(path, spec["device"])
    lines = _test_lines(spec)
    rows: list[dict[str, Any]] = []
    for strategy in ("greedy", "beam"):
        options = {"strategy": strategy, "beam_size": 5, "n_best": 1, "batch_size": 64,
                   **(spec.get("max_len") or {})}
        for name, engine in engines.items():
            engine.translate(lines[:64], options)  # warm-up
            times: list[float] = []
            outputs: list[str] = []
            for _ in range(spec["repeats"]):
                start = time.perf_counter()
                outputs = engine.translate(lines, options)
                times.append(time.perf_counter() - start)
            rows.append({"engine": name, "strategy": strategy, "sentences": len(lines),
                         "sent_per_s": len(lines) / statistics.median(times),
                         "outputs": outputs, "torch_loaded": "torch" in sys.modules})
    return {"rows": rows}


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "train": job_train, "decode": job_decode, "serve": job_serve,
    "export_ctranslate2": job_export_ctranslate2, "engines": job_engines,
}


# =========================================================================== orchestration


@dataclass
class Model:
    """One model to benchmark: its run directory (vocab, config, a checkpoint)."""

    name: str
    run_dir: Path
    trained: bool
    test_src: Path
    max_len: dict[str, Any]  # decoding length overrides (untrained models)
    sentence: str  # for the start-up latency


def _resolve(path: str | None, base: Path) -> str | None:
    """A data path as given if it exists from here, else relative to ``base`` (the repo)."""
    if not path or Path(path).exists():
        return path
    for candidate in (base / path, REPO / path):
        if candidate.exists() or Path(str(candidate) + ".zh").exists():
            return str(candidate)
    return path


def _data_missing(cfg: Any) -> str | None:
    from nmt.datautil.corpus import aligned_paths

    for path in (cfg.data.train, cfg.data.test or cfg.data.dev):
        if path is None:
            return "the config names no test or dev set"
        files = list(aligned_paths(path)) if cfg.data.format == "aligned" else [Path(path)]
        for f in files:
            if not Path(f).is_file():
                return f"{f} not found (the cmn-eng data: python scripts/get_tatoeba.py)"
    return None


def prepare_config_model(config: Path, work: Path, sizes: Sizes) -> Model | str:
    """Run dir for an untrained ``config``: vocabulary, token cache, a step-0 checkpoint."""
    import torch

    from nmt.checkpoint import find_checkpoint, save_checkpoint
    from nmt.config import config_from_dict, config_to_dict, dump_config, load_config
    from nmt.datautil.build import build_vocab
    from nmt.datautil.pipeline import TextProcessor, vocab_layout
    from nmt.fileio import atomic_write_text
    from nmt.models.factory import build_model

    raw = config_to_dict(load_config(config))
    name = config.stem
    run_dir = work / name
    raw["run_dir"] = str(run_dir)
    for key in ("train", "dev", "test"):
        raw["data"][key] = _resolve(raw["data"][key], config.resolve().parent.parent)
    if sizes.tiny_model:
        raw["model"].update(d_model=64, hidden_size=64, ff_size=128, enc_layers=1, dec_layers=1)
        if raw["model"]["type"] == "transformer":
            raw["model"]["heads"] = 2
    cfg = config_from_dict(raw)
    missing = _data_missing(cfg)
    if missing:
        return f"skipping {name}: {missing}"
    layout = vocab_layout(run_dir, cfg.data)
    if not (layout.src_vocab.is_file() and layout.tgt_vocab.is_file()):
        _reuse_or_build_vocab(cfg, work, build_vocab)
    atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
    if find_checkpoint(run_dir) is None:
        processor = TextProcessor.load(run_dir, cfg.data)
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, len(processor.src_vocab), len(processor.tgt_vocab),
                            processor.joint)
        save_checkpoint(run_dir, 0, model, None, {"benchmark": "untrained weights"})
    return _describe_model(name, cfg, run_dir, work, trained=False)


def _reuse_or_build_vocab(cfg: Any, work: Path, build: Callable[[Any], Any]) -> None:
    """Copy the vocabulary of an earlier model with the same data settings, or build it."""
    from nmt.config import config_to_dict

    key = json.dumps(config_to_dict(cfg.data), sort_keys=True)
    for other in work.glob("*/vocab"):
        marker = other / ".data-settings.json"
        if marker.is_file() and marker.read_text(encoding="utf-8") == key:
            shutil.copytree(other, Path(cfg.run_dir) / "vocab", dirs_exist_ok=True)
            return
    print(f"[benchmark] building the vocabulary of {cfg.run_dir}", file=sys.stderr)
    build(cfg)
    (Path(cfg.run_dir) / "vocab" / ".data-settings.json").write_text(key, encoding="utf-8")


def prepare_trained_model(run: Path, work: Path) -> Model | str:
    from nmt.checkpoint import find_checkpoint
    from nmt.config import config_from_dict, config_to_dict, load_config

    if find_checkpoint(run, "best") is None and find_checkpoint(run) is None:
        return f"skipping {run}: no checkpoint (train it first)"
    raw = config_to_dict(load_config(run / "config.yaml"))
    for key in ("train", "dev", "test"):
        raw["data"][key] = _resolve(raw["data"][key], REPO)
    cfg = config_from_dict(raw)
    missing = _data_missing(cfg)
    if missing:
        return f"skipping {run}: {missing}"
    return _describe_model(run.name, cfg, run, work, trained=True)


def _describe_model(name: str, cfg: Any, run_dir: Path, work: Path, trained: bool) -> Model:
    """Write the test sources and work out the decoding lengths."""
    from nmt.datautil.corpus import read_parallel
    from nmt.datautil.pipeline import TextProcessor

    pairs = read_parallel(cfg.data.test or cfg.data.dev, cfg.data, normalize=False)
    test_src = work / f"{name}.test.src"
    test_src.write_text("".join(s.replace("\n", " ") + "\n" for s in pairs.src), encoding="utf-8")
    max_len: dict[str, Any] = {}
    if not trained:  # hold outputs to the references' mean length (see the module docstring)
        processor = TextProcessor.load(run_dir, cfg.data)
        src = sum(len(processor.encode_src(s)) + 1 for s in pairs.src)
        tgt = sum(len(processor.encode_tgt(t)) + 1 for t in pairs.tgt)
        max_len = {"max_len_a": round(tgt / src, 4), "max_len_b": 0}
    return Model(name, run_dir, trained, test_src, max_len, pairs.src[0])


def run_job(kind: str, spec: dict[str, Any], logs: Path) -> tuple[dict[str, Any], float, float]:
    """Run a job in a fresh process; its result, wall seconds and peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--job", kind,
               "--spec", json.dumps(spec), "--result", str(result_path)]
        wall, rss, code = _run_measured(cmd, logs / f"{kind}-{spec.get('label', '')}.log")
        if code != 0:
            raise RuntimeError(f"job {kind} failed (exit {code}); see {logs}")
        return json.loads(result_path.read_text(encoding="utf-8")), wall, rss


# Runs a measured command from a small, fresh Python process and reports its figures as JSON.
# Why not wait4 from here: Linux starts a child's peak RSS (ru_maxrss) at the RSS of the process
# that forked it, and this process holds torch and the peak-matmul matrices (300+ MiB), which
# would floor every figure (a `/bin/true` run from a 600 MiB parent reports 611 MiB).
_MEASURE_CHILD = r"""
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024  # bytes vs KiB
with open(sys.argv[1], "w") as f:
    json.dump({"wall": wall, "rss_mib": usage.ru_maxrss * scale,
               "code": os.waitstatus_to_exitcode(status)}, f)
"""


def _run_measured(
    cmd: list[str], log: Path, threads: int | None = None
) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB, of this child alone) and exit code of ``cmd``.

    ``threads`` sets ``OMP_NUM_THREADS``, which torch's default thread count follows (for
    ``nmt translate``, which has no thread option of its own).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with open(log, "wb") as out, tempfile.TemporaryDirectory() as tmp:
        if not hasattr(os, "wait4"):  # pragma: no cover - Windows
            start = time.perf_counter()
            code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
            return time.perf_counter() - start, float("nan"), code
        report = Path(tmp) / "measured.json"
        launcher = [sys.executable, "-c", _MEASURE_CHILD, str(report), *cmd]
        subprocess.run(launcher, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                       check=True)
        measured = json.loads(report.read_text(encoding="utf-8"))
        return measured["wall"], measured["rss_mib"], measured["code"]


def translate_cmd(model: Model, *args: str) -> list[str]:
    extra: list[str] = []
    for key, value in model.max_len.items():
        extra += [f"--{key.replace('_', '-')}", str(value)]
    return [sys.executable, "-m", "nmt", "translate", "-m", str(model.run_dir), *extra, *args]


def measure_model(model: Model, args: argparse.Namespace, sizes: Sizes, logs: Path,
                  skip: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"run_dir": str(model.run_dir), "trained": model.trained,
                           "decode_max_len": model.max_len}
    common = {"run_dir": str(model.run_dir), "threads": args.threads, "device": args.device}
    if "train" not in skip:
        out["train"] = []
        for precision in args.precisions:
            spec = {**common, "label": f"{model.name}-{precision}", "precision": precision,
                    "train_pairs": sizes.train_pairs, "batch_tokens": sizes.batch_tokens,
                    "warmup": sizes.train_warmup, "windows": sizes.train_windows,
                    "window_steps": sizes.train_window_steps}
            _say(f"{model.name}: training, {precision}")
            result, _, rss = run_job("train", spec, logs)
            out["train"].append({**result, "peak_rss_mib": rss})
    if "decode" not in skip:
        _say(f"{model.name}: decoding grid")
        spec = {**common, "label": model.name, "test_src": str(model.test_src),
                "max_len": model.max_len, "sentences": sizes.decode_sentences,
                "sentences_b1": sizes.decode_sentences_b1, "repeats": sizes.decode_repeats,
                "int8": _int8_here(args)}
        result, _, rss = run_job("decode", spec, logs)
        out["decode"] = {**result, "peak_rss_mib": rss}
    if "startup" not in skip:
        _say(f"{model.name}: nmt translate start-up")
        walls = []
        for i in range(sizes.startup_repeats):
            wall, _, code = _run_measured(translate_cmd(model, model.sentence),
                                          logs / f"startup-{model.name}-{i}.log", args.threads)
            if code != 0:
                raise RuntimeError(f"nmt translate failed; see {logs}")
            walls.append(wall)
        out["startup_s"] = {"median": statistics.median(walls), "all": walls}
    if "translate" not in skip:
        _say(f"{model.name}: nmt translate of the test set, beam 5")
        src = model.test_src
        if sizes.translate_sentences:
            lines = src.read_text(encoding="utf-8").splitlines()[: sizes.translate_sentences]
            src = src.with_suffix(".subset.src")
            src.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
        n = len(src.read_text(encoding="utf-8").splitlines())
        # The run's own precision, then int8 where it is available (a separate row).
        for key, extra in [("translate", [])] + (
            [("translate_int8", ["--precision", "int8"])] if _int8_here(args) else []
        ):
            runs = []
            for i in range(sizes.translate_repeats):
                hyp = logs / f"{key}-{model.name}.hyp"
                cmd = translate_cmd(model, "--input", str(src), "--output", str(hyp),
                                    "--strategy", "beam", "--beam-size", "5", *extra)
                wall, rss, code = _run_measured(cmd, logs / f"{key}-{model.name}-{i}.log",
                                                args.threads)
                if code != 0:
                    raise RuntimeError(f"nmt translate failed; see {logs}")
                runs.append((wall, rss))
            walls = [w for w, _ in runs]
            out[key] = {"sentences": n, "seconds": statistics.median(walls),
                        "all": walls, "peak_rss_mib": max(r for _, r in runs)}
    if "serve" not in skip:
        missing = _missing_extra("starlette", "uvicorn", "prometheus_client")
        if missing:
            out["serve_skipped"] = f"no {missing}: pip install 'nmt[serve]'"
        else:
            _say(f"{model.name}: nmt serve, 1/8/64 clients")
            spec = {**common, "label": model.name, "test_src": str(model.test_src),
                    "max_len": model.max_len, "sentences": sizes.serve_sentences,
                    "requests": sizes.serve_requests, "single_calls": sizes.single_calls,
                    "repeats": sizes.decode_repeats, "log": str(logs / f"serve-{model.name}.log")}
            out["serve"] = run_job("serve", spec, logs)[0]
    if "ctranslate2" not in skip:
        from nmt.config import load_config

        missing = _missing_extra("ctranslate2")
        if load_config(model.run_dir / "config.yaml").model.type != "transformer":
            pass  # CTranslate2 has no attention GRU
        elif missing:
            out["ctranslate2_skipped"] = "no ctranslate2: pip install 'nmt[export]'"
        else:
            _say(f"{model.name}: CTranslate2 export and decoding")
            work = str(logs.parent / "work" / f"ct2-{model.name}")
            exports = run_job("export_ctranslate2", {**common, "label": model.name,
                                                     "work": work}, logs)[0]["exports"]
            spec = {**common, "test_src": str(model.test_src), "max_len": model.max_len,
                    "sentences": sizes.decode_sentences, "repeats": sizes.decode_repeats,
                    "int8": _int8_here(args), "exports": exports}
            rows = run_job("engines", {**spec, "engine": "nmt", "label": f"{model.name}-nmt"},
                           logs)[0]["rows"]  # fmt: skip
            for label, path in exports.items():  # one CTranslate2 model per process (below)
                spec_e = {**spec, "engine": "ctranslate2", "exports": {label: path},
                          "label": f"{model.name}-ct2-{label}"}
                rows += run_job("engines", spec_e, logs)[0]["rows"]
            for row in rows:  # agreement with nmt's fp32 engine, line by line
                ref = next(r for r in rows if r["engine"] == "nmt fp32"
                           and r["strategy"] == row["strategy"])["outputs"]  # fmt: skip
                row["same_as_nmt_fp32"] = sum(
                    a == b for a, b in zip(ref, row["outputs"], strict=True)) / len(ref)
            for row in rows:
                del row["outputs"]
            result = {"rows": rows, "exports": exports}
            out["ctranslate2"] = result
            src = model.test_src
            n = len(src.read_text(encoding="utf-8").splitlines())
            for label, path in result["exports"].items():
                runs = []
                for i in range(sizes.translate_repeats):
                    cmd = [*translate_cmd(model, "--input", str(src), "--output",
                                          str(logs / f"ct2-{label}-{model.name}.hyp"),
                                          "--strategy", "beam", "--beam-size", "5",
                                          "--engine", "ctranslate2")]
                    cmd[cmd.index(str(model.run_dir))] = path  # -m EXPORT_DIR
                    wall, rss, code = _run_measured(
                        cmd, logs / f"ct2-{label}-{model.name}-{i}.log", args.threads)
                    if code != 0:
                        raise RuntimeError(f"nmt translate --engine ctranslate2 failed; see {logs}")
                    runs.append((wall, rss))
                walls = [w for w, _ in runs]
                out[f"translate_ct2_{label}"] = {
                    "sentences": n, "seconds": statistics.median(walls), "all": walls,
                    "peak_rss_mib": max(r for _, r in runs)}
    return out


def _missing_extra(*modules: str) -> str:
    """The first of ``modules`` that cannot be imported (``""``: all can)."""
    import importlib.util

    return next((m for m in modules if importlib.util.find_spec(m) is None), "")


def _int8_here(args: argparse.Namespace) -> bool:
    """Whether the int8 decoding rows run: on the CPU, with PyTorch's FBGEMM kernels."""
    from nmt.models.int8 import int8_available

    return args.device == "cpu" and int8_available()


def _say(text: str) -> None:
    print(f"[benchmark] {text}", file=sys.stderr, flush=True)


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from nmt.perf import physical_cores
    from nmt.runtime import cpu_name

    info = {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "physical_cores": physical_cores(),
            "torch": torch.__version__, "python": platform.python_version(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": args.threads, "device": args.device,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    if hasattr(os, "getloadavg"):
        info["loadavg_start"] = os.getloadavg()
    return info


# =========================================================================== report


def markdown(results: dict[str, Any]) -> str:
    m, peak = results["machine"], results.get("peak")
    lines = [
        f"Machine: {m['cpu']}, {m['physical_cores']} cores, torch {m['torch']} "
        f"({m['cpu_capability']}), {m['threads']} threads"
        + (f", GPU {m['gpu']}" if m.get("gpu") and m["device"] != "cpu" else "")
        + (f"; load average {m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f}"
           if "loadavg_end" in m else "") + f"; mode: {results['mode']}.",
        "",
    ]
    if peak is not None:
        lines += [
            f"Peak matmul ({peak['n']}x{peak['n']} torch.mm, "
            f"best of {results['sizes']['peak_repeats']}): "
            f"fp32 {peak['fp32']['best_gflops']:.0f} GFLOP/s, "
            f"bf16 {peak['bf16']['best_gflops']:.0f} GFLOP/s.",
            "",
        ]
    models = results["models"]
    train_rows = [(n, r) for n, m_ in models.items() for r in m_.get("train", [])]
    if train_rows:
        lines += ["| model | precision | target tok/s | src+tgt tok/s | target tok/step | padding "
                  "| train GFLOP/target tok | MFU | peak RSS |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in train_rows:
            mfu = r["achieved_gflops"] / peak[r["precision"]]["best_gflops"]
            lines.append(
                f"| {name} | {r['precision']} | {r['tgt_tokens_per_s']:,.0f} "
                f"| {r['src_tgt_tokens_per_s']:,.0f} | {r['tgt_tokens_per_step']:,.0f} "
                f"| {100 * r['padding_fraction']:.1f}% "
                f"| {r['train_flops_per_tgt_token'] / 1e9:.3f} "
                f"| {100 * mfu:.0f}% | {r['peak_rss_mib']:,.0f} MiB |")
        lines.append("")
    decode = [(n, m_["decode"]) for n, m_ in models.items() if "decode" in m_]
    if decode:
        lines += ["| model | strategy | batch | KV cache | precision | sent/s | tokens/s "
                  "| mean len | sentences |",
                  "| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: |"]
        for name, d in decode:
            for r in d["rows"]:
                cache = ("on" if r["cache"] else "off") if "transformer" in _model_type(
                    results, name) else "n/a"
                prec = r["precision"] + (f" ({100 * r['same_as_fp32']:.0f}% = fp32)"
                                         if "same_as_fp32" in r else "")
                strategy = {"beam": "beam 5"}.get(r["strategy"], r["strategy"])
                lines.append(
                    f"| {name} | {strategy} | {r['batch']} | {cache} | {prec} "
                    f"| {r['sent_per_s']:,.1f} | {r['tokens_per_s']:,.0f} | {r['mean_len']:.1f} "
                    f"| {r['sentences']} |")
        lines.append("")
    proc = [(n, m_) for n, m_ in models.items() if "startup_s" in m_ or "translate" in m_]
    if proc:
        lines += ["| model | `nmt translate` 1 sentence | test set, beam 5 | sentences "
                  "| translate peak RSS | decoding-grid peak RSS |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, m_ in proc:
            st = f"{m_['startup_s']['median']:.2f} s" if "startup_s" in m_ else "-"
            rows = [(name, "translate", st, _grid_rss(m_))]
            if "translate_int8" in m_:
                rows.append((f"{name}, `--precision int8`", "translate_int8", "-", "-"))
            for label in ("fp32", "int8"):
                if f"translate_ct2_{label}" in m_:
                    rows.append((f"{name}, `--engine ctranslate2` ({label} export)",
                                 f"translate_ct2_{label}", "-", "-"))
            for label, key, startup, grid in rows:
                tr = m_.get(key)
                whole = f"{tr['seconds']:.2f} s" if tr else "-"
                rss = f"{tr['peak_rss_mib']:,.0f} MiB" if tr else "-"
                n = tr["sentences"] if tr else "-"
                lines.append(f"| {label} | {startup} | {whole} | {n} | {rss} | {grid} |")
        lines.append("")
    served = [(n, m_["serve"]) for n, m_ in models.items() if "serve" in m_]
    if served:
        lines += ["| model | `nmt serve`, greedy | sent/s | vs offline batch-64 | p50 | p99 "
                  "| errors |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, sv in served:
            offline = sv["offline_b64_sent_per_s"]
            single = sv["single_call_ms"]
            lines.append(f"| {name} | offline `Translator`, batch 64 | {offline:,.1f} | 100% "
                         f"| - | - | - |")
            lines.append(f"| {name} | offline `Translator`, one sentence a call | "
                         f"{1000 / single['p50']:,.1f} | - | {single['p50']:.1f} ms "
                         f"| {single['p99']:.1f} ms | - |")
            for r in sv["rows"]:
                mode = r.get("mode", "batch by batch")
                lines.append(
                    f"| {name} | {mode}: {r['clients']} client(s), 1 sentence/request "
                    f"| {r['sentences_per_s']:,.1f} | {100 * r['sentences_per_s'] / offline:.0f}% "
                    f"| {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['errors']} |")
        lines.append("")
    ct2 = [(n, m_["ctranslate2"]) for n, m_ in models.items() if "ctranslate2" in m_]
    if ct2:
        lines += ["| model | engine | strategy | sent/s | lines = nmt fp32 | sentences |",
                  "| --- | --- | --- | ---: | ---: | ---: |"]
        for name, c in ct2:
            for r in c["rows"]:
                strategy = {"beam": "beam 5"}.get(r["strategy"], r["strategy"])
                lines.append(f"| {name} | {r['engine']} | {strategy} | {r['sent_per_s']:,.1f} "
                             f"| {100 * r['same_as_nmt_fp32']:.1f}% | {r['sentences']} |")
        lines.append("")
    for name, m_ in models.items():
        for key in ("serve_skipped", "ctranslate2_skipped"):
            if key in m_:
                lines.append(f"{name}: {key.split('_')[0]} skipped ({m_[key]}).")
        if not m_["trained"]:
            a = m_["decode_max_len"].get("max_len_a")
            lines.append(f"{name}: untrained weights; decoding held to the references' mean "
                         f"length (max_len_a={a}, max_len_b=0).")
    for note in results.get("skipped", []):
        lines.append(note)
    return "\n".join(lines).rstrip() + "\n"


def _grid_rss(m: dict[str, Any]) -> str:
    return f"{m['decode']['peak_rss_mib']:,.0f} MiB" if "decode" in m else "-"


def _model_type(results: dict[str, Any], name: str) -> str:
    return str(results["models"][name].get("type", ""))


# =========================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", type=Path, default=None,
                   help="config of an (untrained) model to benchmark; repeatable. Default: "
                        + ", ".join(DEFAULT_CONFIGS) + " (unless --model is given)")
    p.add_argument("--model", action="append", type=Path, default=[],
                   help="run directory of a trained model; repeatable")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "benchmark",
                   help="where benchmark.json, benchmark.md and the work files go")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few steps (< 1 minute)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads for every job (default: one per physical core)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto, ...")
    p.add_argument("--precisions", default="fp32,bf16", help="training precisions")
    p.add_argument("--skip", default="", help=f"comma list of sections to skip: {SECTIONS}")
    p.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.precisions = [x for x in args.precisions.split(",") if x]
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--data" in argv:  # the data benchmark: its own script, its own options
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import benchmark_data

        return int(benchmark_data.main([a for a in argv if a != "--data"]))
    args = parse_args(argv)
    if args.job:  # inside a job process, set up as `nmt` is
        from nmt import perf

        perf.apply()
        result = JOBS[args.job](json.loads(args.spec))
        args.result.write_text(json.dumps(result), encoding="utf-8")
        return 0
    from nmt.perf import default_threads

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(SECTIONS)
    if unknown:
        print(f"benchmark: unknown --skip {sorted(unknown)}; choose from {SECTIONS}",
              file=sys.stderr)
        return 2
    args.threads = args.threads or default_threads()
    sizes = QUICK if args.quick else FULL
    out = args.out.resolve()
    work, logs = out / "work", out / "logs"
    work.mkdir(parents=True, exist_ok=True)
    configs = args.config if args.config is not None else ([] if args.model else
                                                           [REPO / c for c in DEFAULT_CONFIGS])
    results: dict[str, Any] = {"mode": "quick" if args.quick else "full",
                               "sizes": sizes.__dict__, "machine": machine_info(args),
                               "models": {}, "skipped": []}
    if "train" not in skip:  # the peak is what training's MFU is measured against
        _say(f"peak matmul ({sizes.peak_n}^3, {args.threads} threads)")
        results["peak"] = measure_peak(args.device, args.threads, sizes.peak_n,
                                       sizes.peak_repeats)
    prepared: list[Model] = []
    for config in configs:
        m = prepare_config_model(Path(config), work, sizes)
        (prepared.append(m) if isinstance(m, Model) else results["skipped"].append(m))
    for run in args.model:
        m = prepare_trained_model(run.resolve(), work)
        (prepared.append(m) if isinstance(m, Model) else results["skipped"].append(m))
    for note in results["skipped"]:
        print(f"benchmark: {note}", file=sys.stderr)
    from nmt.config import load_config

    for model in prepared:
        measured = measure_model(model, args, sizes, logs, skip)
        measured["type"] = load_config(model.run_dir / "config.yaml").model.type
        results["models"][model.name] = measured
        write_report(results, out)  # partial results survive an interrupted run
    print(write_report(results, out))
    return 0


def write_report(results: dict[str, Any], out: Path) -> str:
    """Write benchmark.json and benchmark.md; return the markdown."""
    if hasattr(os, "getloadavg"):
        results["machine"]["loadavg_end"] = os.getloadavg()
    (out / "benchmark.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    table = markdown(results)
    (out / "benchmark.md").write_text(table, encoding="utf-8")
    return table


if __name__ == "__main__":
    sys.exit(main())
