#!/usr/bin/env python3
"""Compare training runs by their dev BLEU curves: a markdown table and one PNG.

    python scripts/compare_runs.py runs/x/base runs/x/rdrop [--at 10,20] [--png curves.png]

For each run (its ``metrics.jsonl``): the dev BLEU of the last validation at or before each
``--at`` minute of training wall-clock, the best dev BLEU with its step and minute, and the
steps per minute. Runs of one budget are compared at the same wall-clock, as the issue's
"same budget" asks; the PNG draws every run's dev BLEU against minutes
(:func:`nmt.plots.plot_dev_bleu`, needs the viz extra). Label a run ``LABEL=RUN_DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nmt.plots import dev_bleu_points, plot_dev_bleu  # noqa: E402
from nmt.training.progress import read_metrics  # noqa: E402


def bleu_at(records: Sequence[Mapping[str, Any]], minute: float) -> float | None:
    """Dev BLEU of the last validation at or before ``minute`` (None: none yet)."""
    minutes, bleu = dev_bleu_points(records)
    before = [b for m, b in zip(minutes, bleu, strict=True) if m <= minute + 1e-9]
    return before[-1] if before else None


def summary(records: Sequence[Mapping[str, Any]], at: Sequence[float]) -> dict[str, Any]:
    """The figures of one run's table row."""
    valid = [r for r in records if r.get("event") == "valid" and r.get("dev_bleu") is not None]
    best = max(valid, key=lambda r: float(r["dev_bleu"]), default=None)
    last = max((r for r in records if r.get("wall_s") is not None),
               key=lambda r: float(r["wall_s"]), default=None)  # fmt: skip
    minutes = float(last["wall_s"]) / 60 if last else 0.0
    steps = int(last["step"]) if last else 0
    return {
        "at": {m: bleu_at(records, m) for m in at},
        "best": None if best is None else float(best["dev_bleu"]),
        "best_step": None if best is None else int(best["step"]),
        "best_minute": None if best is None else float(best["wall_s"]) / 60,
        "steps": steps, "minutes": minutes,
        "steps_per_minute": steps / minutes if minutes else None,
    }  # fmt: skip


def table(rows: Mapping[str, Mapping[str, Any]], at: Sequence[float]) -> str:
    def num(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    head = ["run", *(f"dev BLEU @{m:g} min" for m in at), "best (step, min)", "steps",
            "steps/min"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for label, row in rows.items():
        best = (f"{num(row['best'], '.2f')} ({row['best_step']}, {row['best_minute']:.1f})"
                if row["best"] is not None else "-")  # fmt: skip
        cells = [label, *(num(row["at"][m], ".2f") for m in at), best, str(row["steps"]),
                 num(row["steps_per_minute"], ".1f")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="RUN_DIR or LABEL=RUN_DIR")
    parser.add_argument("--at", default="10,20", help="minutes, comma-separated")
    parser.add_argument("--png", type=Path, help="draw the dev BLEU curves into this PNG")
    args = parser.parse_args(argv)
    try:
        at = [float(m) for m in args.at.split(",") if m.strip()]
    except ValueError:
        parser.error(f"--at: expected minutes like 10,20, got {args.at!r}")
    runs: dict[str, list[dict[str, Any]]] = {}
    for spec in args.runs:
        label, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).name, "", spec)
        records = read_metrics(path)
        if not records:
            print(f"compare_runs: {path}: no metrics.jsonl records", file=sys.stderr)
            return 2
        runs[label] = records
    print(table({label: summary(r, at) for label, r in runs.items()}, at))
    if args.png is not None:
        written = plot_dev_bleu(runs, args.png, "dev BLEU against training wall-clock")
        print(f"\n{written or 'no PNG (matplotlib missing, or no validations)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
