#!/usr/bin/env python3
"""Render docs/results/*.json (written by scripts/reproduce.sh) as a markdown table.

    python scripts/results_table.py [RESULTS_DIR] > table.md

One row per recipe, sorted by name; the sacrebleu signatures follow the table, since they are
too long for a column. Missing figures show as "-".

A Chinese-target TER counts only when it was scored on characters (``norm:yes|asian:yes``, as
``nmt evaluate`` scores it now). Results recorded before that hold a TER over whitespace-separated
"words", i.e. whole unspaced sentences (~90-100 for any system): the table leaves such a TER out
and says so under the table instead of printing a figure that compares with nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("Recipe", "Direction", "Model", "Params", "Test BLEU", "chrF", "TER", "Train time",
          "Machine", "Decoding", "Speed")  # fmt: skip
CHARACTER_TER = ("norm:yes", "asian:yes")  # sacrebleu splits CJK characters only with both


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _metric(data: Mapping[str, Any], prefix: str) -> Mapping[str, Any] | None:
    metrics = _get(data, "test", "metrics") or {}
    return next((v for k, v in metrics.items() if k.startswith(prefix)), None)


def word_level_chinese_ter(data: Mapping[str, Any]) -> bool:
    """Whether the test TER is a Chinese target's TER not scored on characters."""
    ter = _metric(data, "TER")
    if ter is None or str(data.get("direction", "")).rpartition("-")[2] != "zh":
        return False
    fields = str(ter.get("signature", "")).split("|")
    return not all(f in fields for f in CHARACTER_TER)


def _ter(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return None if word_level_chinese_ter(data) else _metric(data, "TER")


def _budget(data: Mapping[str, Any]) -> str:
    """" (24.1 after 25 min)": test BLEU of the run's earlier checkpoints (snapshots)."""
    parts = []
    for entry in data.get("budget") or []:
        metrics = entry.get("metrics") or {}
        score = next((v.get("score") for k, v in metrics.items() if k.startswith("BLEU")), None)
        if score is not None and entry.get("training_minutes") is not None:
            parts.append(f"{score:.1f} after {entry['training_minutes']:.0f} min")
    return f" ({'; '.join(parts)})" if parts else ""


def row(data: Mapping[str, Any]) -> list[str]:
    """The table cells of one results file."""
    bleu, chrf, ter = _metric(data, "BLEU"), _metric(data, "chrF"), _ter(data)
    m, dec = data.get("machine") or {}, data.get("decoding") or {}
    params = _get(data, "model", "parameters")
    cores = m.get("available_cores") or m.get("cpu_count")
    machine = f"{m.get('cpu', '?')}, {cores} cores, {m.get('threads', '?')} threads"
    if m.get("device", "cpu") != "cpu":
        machine = f"{m['device']}; {machine}"
    strategy = dec.get("strategy") or "-"
    if strategy == "beam":
        strategy = f"beam {dec.get('beam_size')}, lp {dec.get('length_penalty')}"
    if dec.get("checkpoint") not in (None, "best"):
        strategy += f", {dec['checkpoint']}"
    model = f"{_get(data, 'model', 'type') or '-'} ({_get(data, 'model', 'tokenizers') or '-'})"
    minutes = _get(data, "training", "wall_clock_minutes")
    train_time = "-" if minutes is None else f"{minutes:.0f} min"
    if _get(data, "training", "precision") is not None:  # autocast None: plain fp32
        train_time += ", " + (_get(data, "training", "precision", "autocast") or "fp32")
    return [
        f"`{data.get('recipe', '?')}`",
        str(data.get("direction", "-")),
        model,
        "-" if params is None else f"{params / 1e6:.1f}M",
        _num(bleu and bleu.get("score"), ".1f") + _budget(data),
        _num(chrf and chrf.get("score"), ".1f"),
        _num(ter and ter.get("score"), ".1f"),
        train_time,
        f"{machine}, torch {m.get('torch', '?')}",
        strategy,
        f"{_num(dec.get('sentences_per_second'), '.1f')} sent/s",
    ]


def render(results: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table plus one signature line per recipe and metric."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    results = sorted(results, key=lambda d: str(d.get("recipe", "")))
    lines += ["| " + " | ".join(row(d)) + " |" for d in results]
    omitted = ", ".join(f"`{d.get('recipe', '?')}`" for d in results if word_level_chinese_ter(d))
    if omitted:
        lines += ["", f"TER left out (\"-\") for {omitted}: scored on whitespace-separated "
                  "words (sacrebleu's `asian:yes` splits characters only with `norm:yes`), i.e. "
                  "on whole unspaced Chinese sentences; `scripts/reproduce.sh RECIPE` re-scores "
                  f"it on characters (`{'|'.join(CHARACTER_TER)}`)."]  # fmt: skip
    signatures = [
        f"- `{d.get('recipe', '?')}` {name}: `{value.get('signature', '')}`"
        for d in results
        for name, value in (_get(d, "test", "metrics") or {}).items()
        if name.startswith(("BLEU", "chrF")) or (name == "TER" and not word_level_chinese_ter(d))
    ]
    if signatures:
        lines += ["", "sacrebleu signatures:", "", *signatures]
    return "\n".join(lines) + "\n"


def load(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else ROOT / "docs" / "results"
    results = load(directory)
    if not results:
        print(f"results_table: no *.json in {directory}; run scripts/reproduce.sh RECIPE first",
              file=sys.stderr)
        return 1
    sys.stdout.write(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
