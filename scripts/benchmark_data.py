#!/usr/bin/env python
"""Data benchmark: ``nmt build-vocab`` and the start of ``nmt train`` on corpora of millions of
pairs (``python scripts/benchmark.py --data`` runs this script).

    python scripts/benchmark_data.py                      # N = 1M and 3M, 1 and 2 workers
    python scripts/benchmark_data.py --sizes 1000000 --workers 2 --baseline 2e3c970

The corpus is generated from the shared cmn-eng training split (never committed): the split is
repeated with a copy number in front of both sides (``[17] Tom is here.`` / ``[17]汤姆在这儿。``),
so every pair is distinct while the vocabulary stays that of the split plus one token per copy.
(A different number per *pair* would add N distinct tokens, so the vocabulary counts themselves
would grow with N; the issue allows them to, but then the figures would measure that and not
the pipeline.) The files go to ``OUT/corpus-N.tsv``.

For each corpus size and worker count (an *arm*), with the jieba + Moses tokenizers and
``min_freq: 2``:

- ``build-vocab``: wall time, pairs/s, peak RSS of the largest process (``wait4``, as
  ``scripts/benchmark.py`` measures ``nmt translate``) and the peak of the whole process tree
  (main process plus workers, summed PSS sampled every 0.2 s);
- time to the first training step: ``nmt train`` of a tiny Transformer with ``max_steps: 1`` and
  no dev set (its own start, the token cache, one step and the checkpoint), with its peak RSS.
  Batches of 1,024 tokens: the first step's memory depends on which batch comes first, and at
  2,048 tokens that alone moved the figure by 130 MiB between two runs;
- the raw corpus to first step total, and the size of the token cache on disk;
- for training also the peak *anonymous* RSS of the process (sampled every 50 ms): the process
  peak counts the token cache's file pages that the first batches map, which the OS keeps in
  its page cache and shares between processes (the issue's "memory-mapped cache pages").

``--baseline REV`` also runs the code of git revision ``REV`` (a worktree under ``OUT``) at the
first size, one worker (it has no others), in the same run: the ratio of the totals is the
"tokenize once" figure. Each command runs alone; nothing else should load the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "cmn-eng" / "train.tsv"

_MEASURE_CHILD = r"""
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    json.dump({"wall": wall, "rss_mib": usage.ru_maxrss / 1024,
               "code": os.waitstatus_to_exitcode(status)}, f)
"""


def generate_corpus(n: int, out: Path, source: Path = SHARED) -> Path:
    """``OUT/corpus-N.tsv``: the first ``n`` pairs of the numbered copies of ``source``."""
    path = out / f"corpus-{n}.tsv"
    if path.is_file():
        return path
    lines = [ln for ln in source.read_text(encoding="utf-8").split("\n") if ln.strip()]
    tmp = path.with_suffix(".tmp")
    written = 0
    with open(tmp, "w", encoding="utf-8") as f:
        copy = 0
        while written < n:
            for line in lines:
                if written == n:
                    break
                en, zh, *rest = line.split("\t")
                f.write("\t".join([f"[{copy}] {en}", f"[{copy}]{zh}", *rest]) + "\n")
                written += 1
            copy += 1
    tmp.replace(path)
    return path


def _tree_pss_mib(root: int) -> float:
    """Summed PSS of ``root`` and all its descendants (MiB); 0 where /proc is unreadable."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total_kib = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total_kib += int(line.split()[1])
                        break
        except OSError:
            continue
    return total_kib / 1024


def _anon_mib(root: int) -> float:
    """Anonymous RSS of the measured command (the launcher's child): its heap, without the
    file pages it maps (the token cache), which the OS keeps in the page cache and shares."""
    try:
        with open(f"/proc/{root}/task/{root}/children") as f:
            child = int(f.read().split()[0])
        with open(f"/proc/{child}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0.0


def run_measured(cmd: list[str], log: Path, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Wall seconds, peak RSS of the largest process, peak summed PSS of the tree, peak
    anonymous RSS of the command's own process (sampled), exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out, tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "measured.json"
        launcher = subprocess.Popen(
            [sys.executable, "-c", _MEASURE_CHILD, str(report), *cmd],
            stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
        )
        peak = [0.0, 0.0]
        done = threading.Event()

        def sample() -> None:
            n = 0
            while not done.wait(0.05):
                peak[1] = max(peak[1], _anon_mib(launcher.pid))
                n += 1
                if n % 4 == 0:
                    peak[0] = max(peak[0], _tree_pss_mib(launcher.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        launcher.wait()
        done.set()
        sampler.join()
        measured = json.loads(report.read_text(encoding="utf-8"))
    measured["tree_pss_mib"] = peak[0]
    measured["anon_mib"] = peak[1]
    return measured


def write_config(path: Path, run_dir: Path, corpus: Path) -> None:
    path.write_text(
        f"""run_dir: {run_dir}
data:
  train: {corpus}
  dev: null
  test: null
  src_lang: zh
  tgt_lang: en
  src_tokenizer: {{type: jieba}}
  tgt_tokenizer: {{type: moses}}
  min_freq: 2
model: {{type: transformer, d_model: 64, enc_layers: 1, dec_layers: 1, heads: 2, ff_size: 128}}
train: {{max_steps: 1, batch_tokens: 1024, warmup_steps: 10, keep_last: 1, device: cpu,
         precision: fp32}}
""",
        encoding="utf-8",
    )


def _du_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def measure_train(name: str, code: Path, out: Path) -> dict[str, Any]:
    """Only the training start of an arm whose build-vocab ran before (its checkpoints are
    removed first): for a change that touches training alone."""
    run_dir = out / "runs" / name
    for sub in ("checkpoints", "metrics.jsonl", "tensorboard"):
        subprocess.run(["rm", "-rf", str(run_dir / sub)], check=True)
    env = {**os.environ, "PYTHONPATH": str(code)}
    train = run_measured([sys.executable, "-m", "nmt", "train", "-c", str(out / f"{name}.yaml")],
                         out / "logs" / f"{name}-train.log", code, env)
    if train["code"] != 0:
        raise RuntimeError(f"{name}: train failed; see {out / 'logs'}")
    return train


def run_arm(name: str, code: Path, corpus: Path, n: int, workers: int | None, out: Path
            ) -> dict[str, Any]:
    """build-vocab then the first training step of one arm; the measured figures."""
    run_dir = out / "runs" / name
    if run_dir.exists():
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    config = out / f"{name}.yaml"
    write_config(config, run_dir, corpus)
    # Each arm imports its own checkout: PYTHONPATH first, and cwd (python -m puts it first).
    env = {**os.environ, "PYTHONPATH": str(code)}
    extra = ["--workers", str(workers)] if workers is not None else []
    build = run_measured([sys.executable, "-m", "nmt", "build-vocab", "-c", str(config), *extra],
                         out / "logs" / f"{name}-build-vocab.log", code, env)
    if build["code"] != 0:
        raise RuntimeError(f"{name}: build-vocab failed; see {out / 'logs'}")
    train = run_measured([sys.executable, "-m", "nmt", "train", "-c", str(config)],
                         out / "logs" / f"{name}-train.log", code, env)
    if train["code"] != 0:
        raise RuntimeError(f"{name}: train failed; see {out / 'logs'}")
    cache = run_dir / "cache"
    result = {
        "pairs": n, "workers": workers or 1, "code": str(code),
        "build_vocab_s": build["wall"], "pairs_per_s": n / build["wall"],
        "build_vocab_rss_mib": build["rss_mib"], "build_vocab_tree_pss_mib": build["tree_pss_mib"],
        "first_step_s": train["wall"], "train_rss_mib": train["rss_mib"],
        "train_tree_pss_mib": train["tree_pss_mib"], "train_anon_mib": train["anon_mib"],
        "build_vocab_anon_mib": build["anon_mib"],
        "total_s": build["wall"] + train["wall"],
        "cache_mib": _du_mib(cache) if cache.is_dir() else 0.0,
    }
    _say(f"{name}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in result.items() if k != "code"))
    return result


def _say(text: str) -> None:
    print(f"[benchmark-data] {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def markdown(results: dict[str, Any]) -> str:
    rows = ["| arm | pairs | workers | build-vocab s | pairs/s | build-vocab RSS / tree PSS MiB "
            "| first step s | train RSS / anon MiB | corpus to first step s | cache MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results["arms"].items():
        rows.append(
            f"| {name} | {r['pairs']:,} | {r['workers']} | {r['build_vocab_s']:.1f} | "
            f"{r['pairs_per_s']:,.0f} | {r['build_vocab_rss_mib']:.0f} / "
            f"{r['build_vocab_tree_pss_mib']:.0f} | {r['first_step_s']:.1f} | "
            f"{r['train_rss_mib']:.0f} / {r.get('train_anon_mib', float('nan')):.0f} | "
            f"{r['total_s']:.1f} | {r['cache_mib']:.1f} |"
        )
    lines = ["\n".join(rows), ""]
    lines += [f"- {k}: {v}" for k, v in results.get("ratios", {}).items()]
    return "\n".join(lines) + "\n"


def ratios(results: dict[str, Any], sizes: list[int], workers: list[int]) -> dict[str, str]:
    arms = results["arms"]
    out: dict[str, str] = {}
    small, big, w = sizes[0], sizes[-1], max(workers)
    new_small = arms.get(f"new-{small}-w{w}")
    base = arms.get(f"baseline-{small}")
    if base and new_small:
        out["raw corpus to first step, baseline / new"] = (
            f"{base['total_s'] / new_small['total_s']:.2f}x ({base['total_s']:.0f} s vs "
            f"{new_small['total_s']:.0f} s, {w} workers, {small:,} pairs)")
    for k in workers:
        a, b = arms.get(f"new-{small}-w{k}"), arms.get(f"new-{big}-w{k}")
        if a and b and big != small:
            out[f"{k} worker(s): pairs/s at {big:,} / at {small:,}"] = (
                f"{b['pairs_per_s'] / a['pairs_per_s']:.3f}")
            for key in ("build_vocab_rss_mib", "build_vocab_tree_pss_mib", "train_rss_mib",
                        "train_anon_mib"):
                if key not in a or key not in b:
                    continue
                out[f"{k} worker(s): {key} at {big:,} / at {small:,}"] = (
                    f"{b[key] / a[key]:.3f} ({b[key]:.0f} vs {a[key]:.0f} MiB)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000000,3000000", help="corpus sizes (pairs), comma list")
    p.add_argument("--workers", default="1,2", help="worker counts, comma list")
    p.add_argument("--baseline", default="", help="git revision of today's code path to compare")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "benchmark_data")
    p.add_argument("--source", type=Path, default=SHARED, help="the cmn-eng train.tsv")
    p.add_argument("--only-baseline", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--train-only", action="store_true",
                   help="re-measure only the training start of the new arms of an earlier run")
    args = p.parse_args(argv)
    if not args.source.is_file():
        print(f"benchmark-data: {args.source} not found (the shared cmn-eng data)",
              file=sys.stderr)
        return 2
    sizes = [int(x) for x in args.sizes.split(",") if x]
    workers = [int(x) for x in args.workers.split(",") if x]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "benchmark_data.json"
    results: dict[str, Any] = {"arms": {}, "loadavg_start": os.getloadavg()}
    if results_path.is_file():  # arms of an earlier, interrupted or partial run are kept
        results["arms"] = json.loads(results_path.read_text(encoding="utf-8"))["arms"]
    corpora = {n: generate_corpus(n, out, args.source) for n in sizes}

    def save() -> None:
        results["ratios"] = ratios(results, sizes, workers)
        results["loadavg_end"] = os.getloadavg()
        results_path.write_text(json.dumps(results, indent=1), encoding="utf-8")
        (out / "benchmark_data.md").write_text(markdown(results), encoding="utf-8")

    if args.train_only:
        for name, arm in results["arms"].items():
            if name.startswith("new-"):
                train = measure_train(name, REPO, out)
                arm.update(first_step_s=train["wall"], train_rss_mib=train["rss_mib"],
                           train_tree_pss_mib=train["tree_pss_mib"],
                           train_anon_mib=train["anon_mib"],
                           total_s=arm["build_vocab_s"] + train["wall"])
                arm["train_remeasured"] = time.strftime("%Y-%m-%d %H:%M")
                _say(f"{name}: first step {train['wall']:.1f} s, {train['rss_mib']:.0f} MiB")
        save()
        print(markdown(results))
        return 0
    if args.baseline:
        tree = out / f"baseline-{args.baseline}"
        if not tree.is_dir():
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree),
                            args.baseline], check=True, capture_output=True)
        name = f"baseline-{sizes[0]}"
        results["arms"][name] = run_arm(name, tree, corpora[sizes[0]], sizes[0], None, out)
        results["arms"][name]["revision"] = args.baseline
        save()
    if not args.only_baseline:
        for n in sizes:
            for k in workers:
                name = f"new-{n}-w{k}"
                results["arms"][name] = run_arm(name, REPO, corpora[n], n, k, out)
                save()
    save()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
