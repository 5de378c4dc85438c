"""Figures for reports: dev BLEU against wall-clock minutes, from ``metrics.jsonl`` records.

matplotlib is optional (``pip install 'nmt[viz]'``); it is imported only when a figure is drawn,
with the Agg canvas, so no display is needed. PNGs are written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nmt.fileio import atomic_write_bytes

Records = Sequence[Mapping[str, Any]]


def pyplot() -> Any | None:
    """``matplotlib.pyplot`` on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_png(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def dev_bleu_points(records: Records) -> tuple[list[float], list[float]]:
    """(wall-clock minutes, dev BLEU) of every validation record, in file order."""
    valid = [r for r in records if r.get("event") == "valid" and r.get("dev_bleu") is not None
             and r.get("wall_s") is not None]  # fmt: skip
    return [float(r["wall_s"]) / 60 for r in valid], [float(r["dev_bleu"]) for r in valid]


def plot_dev_bleu(
    runs: Mapping[str, Records], path: str | Path, title: str | None = None
) -> Path | None:
    """One line per run: dev BLEU (y) against training wall-clock minutes (x), best marked.

    Args:
        runs: label -> the run's ``metrics.jsonl`` records (see
            :func:`nmt.training.progress.read_metrics`).

    Returns:
        The PNG written, or None (nothing drawn) without matplotlib or without validations.
    """
    plt = pyplot()
    series = {label: dev_bleu_points(records) for label, records in runs.items()}
    series = {label: xy for label, xy in series.items() if xy[0]}
    if plt is None or not series:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for label, (minutes, bleu) in series.items():
        (line,) = ax.plot(minutes, bleu, "o-", markersize=3, label=label)
        best = max(range(len(bleu)), key=bleu.__getitem__)
        ax.annotate(f"{bleu[best]:.1f}", (minutes[best], bleu[best]), textcoords="offset points",
                    xytext=(0, 6), ha="center", color=line.get_color())  # fmt: skip
    ax.set_xlabel("training wall-clock (minutes)")
    ax.set_ylabel("dev BLEU")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    return save_png(fig, path)
