#!/usr/bin/env python3
"""Write docs/results/RECIPE.json and RECIPE.png for a trained, tuned and evaluated recipe.

Called by scripts/reproduce.sh after `nmt evaluate --model RUN --json` and `nmt tune --json`:

    python scripts/record_result.py configs/RECIPE.yaml --eval EVAL.json --tune TUNE.json \
        --checkpoint best

Every figure is read from files the run produced (metrics.jsonl, the evaluation JSON) or from
this machine (CPU, cores, torch, threads); nothing is estimated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def machine(train_cfg: Any) -> dict[str, Any]:
    import torch

    from nmt.runtime import cpu_name, select_device

    device = select_device(train_cfg.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "available_cores": available,
        "threads": train_cfg.threads or torch.get_num_threads(),
        "device": device.type + (f" ({gpu})" if gpu else ""),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def training(records: list[dict[str, Any]]) -> dict[str, Any]:
    valid = [r for r in records if r.get("event") == "valid" and r.get("dev_bleu") is not None]
    wall = max((float(r["wall_s"]) for r in records if r.get("wall_s") is not None), default=0.0)
    return {
        "wall_clock_minutes": round(wall / 60, 1),
        "steps": max((int(r.get("step", 0)) for r in records), default=0),
        "epochs": max((float(r.get("epoch", 0)) for r in records), default=0.0),
        "best_dev_bleu_greedy": max((float(r["dev_bleu"]) for r in valid), default=None),
    }


def model_info(run: Path, checkpoint: str) -> dict[str, Any]:
    from nmt.models.factory import count_parameters
    from nmt.translate import Translator

    translator = Translator.load(run, device="cpu", checkpoint=checkpoint)
    m, d = translator.config.model, translator.config.data
    shape = (f"{m.enc_layers}+{m.dec_layers} layers, d_model {m.d_model}, {m.heads} heads, "
             f"ff {m.ff_size}" if m.type == "transformer" else
             f"{m.enc_layers}+{m.dec_layers} layers, hidden {m.hidden_size}, {m.attention}")
    return {
        "type": m.type,
        "shape": shape,
        "parameters": count_parameters(translator.model),
        "tokenizers": f"{d.src_tokenizer.type}/{d.tgt_tokenizer.type}",
        "joint_vocab": d.joint_vocab,
        "vocab_sizes": [len(translator.processor.src_vocab), len(translator.processor.tgt_vocab)],
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def scores(evaluation: dict[str, Any]) -> dict[str, Any]:
    return {m["name"]: {"score": m["score"], "signature": m["signature"]}
            for m in evaluation.get("metrics", [])}


def checkpoint_time(run: Path, checkpoint: str) -> tuple[int, float | None]:
    """Step and training minutes of a checkpoint of ``run`` (a step checkpoint or a
    ``train.snapshot_minutes`` snapshot), from its state.json."""
    info = json.loads((run / "checkpoints" / checkpoint / "state.json").read_text(encoding="utf-8"))
    state = info.get("state") or {}
    seconds = state.get("elapsed_seconds", (state.get("train") or {}).get("elapsed_seconds"))
    return int(info["step"]), None if seconds is None else round(float(seconds) / 60, 1)


def budget(run: Path, evaluations: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Test scores of earlier checkpoints (e.g. the model after 25 minutes), by training time."""
    rows = []
    for checkpoint, evaluation in evaluations.items():
        step, minutes = checkpoint_time(run, checkpoint)
        rows.append({"checkpoint": checkpoint, "step": step, "training_minutes": minutes,
                     "metrics": scores(evaluation)})  # fmt: skip
    return sorted(rows, key=lambda r: r["step"])


def precision(run: Path) -> dict[str, Any]:
    """The run's precision setting and what it meant on this machine."""
    from nmt.config import load_config
    from nmt.runtime import precision_name, resolve_precision, select_device

    train = load_config(run / "config.yaml").train
    dtype = resolve_precision(train.precision, select_device(train.device))
    autocast = None if dtype is None else precision_name(dtype)
    return {"setting": train.precision, "autocast": autocast}


def record(config: Path, evaluation: dict[str, Any], tune: dict[str, Any] | None,
           checkpoint: str, budget_evals: dict[str, dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    from nmt.config import load_config
    from nmt.training.progress import read_metrics

    cfg = load_config(config)
    run = ROOT / cfg.run_dir
    decoding = evaluation.get("decoding", {})
    settings = dict(decoding.get("settings", {}))
    if settings.get("device") in (None, "auto"):
        from nmt.runtime import select_device

        settings["device"] = select_device("auto").type
    return {
        "recipe": config.stem,
        "command": f"scripts/reproduce.sh {config.stem}",
        "direction": f"{cfg.data.src_lang}-{cfg.data.tgt_lang}",
        "test": {
            "sentences": evaluation.get("sentences"),
            "metrics": scores(evaluation),
        },
        "training": {**training(read_metrics(run)), "precision": precision(run)},
        "budget": budget(run, budget_evals or {}),
        "model": model_info(run, checkpoint),
        "decoding": {
            "checkpoint": checkpoint,
            **{k: settings.get(k)
               for k in ("strategy", "beam_size", "length_penalty", "device", "batch_size")},
            "sentences_per_second": decoding.get("sentences_per_second"),
            "tokens_per_second": decoding.get("tokens_per_second"),
        },
        "length_penalty_tuning": tune,
        "machine": machine(cfg.train),
        "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="the recipe, e.g. configs/cmn_zh_en_gru.yaml")
    parser.add_argument("--eval", required=True, type=Path, help="nmt evaluate --json output")
    parser.add_argument("--tune", type=Path, help="nmt tune --json output")
    parser.add_argument("--checkpoint", default="best", help="the checkpoint evaluated")
    parser.add_argument("--budget", action="append", default=[], metavar="CHECKPOINT=EVAL.json",
                        help="the test evaluation of an earlier checkpoint of the run, e.g. "
                             "minute-25=eval25.json (repeatable)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args(argv)

    from nmt.config import load_config
    from nmt.fileio import atomic_write_text
    from nmt.plots import plot_dev_bleu
    from nmt.training.progress import read_metrics

    evaluation = json.loads(args.eval.read_text(encoding="utf-8"))
    tune = json.loads(args.tune.read_text(encoding="utf-8")) if args.tune else None
    recipe = args.config.stem
    budget_evals = {}
    for item in args.budget:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--budget {item!r}: expected CHECKPOINT=EVAL.json")
        budget_evals[name] = json.loads(Path(path).read_text(encoding="utf-8"))
    data = record(args.config, evaluation, tune, args.checkpoint, budget_evals)
    out = args.out_dir / f"{recipe}.json"
    atomic_write_text(out, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    run = ROOT / load_config(args.config).run_dir
    png = plot_dev_bleu({recipe: read_metrics(run)}, args.out_dir / f"{recipe}.png",
                        title=f"{recipe}: dev BLEU (greedy) during training")
    print(f"wrote {out}" + (f" and {png}" if png else " (no PNG: matplotlib or metrics missing)"),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
