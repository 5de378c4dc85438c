"""Progress reporting: tqdm bar on stderr, ``metrics.jsonl``, TensorBoard and a learning curve.

``metrics.jsonl`` holds one JSON object per event (``"event": "train"`` every
``train.log_every`` steps, ``"event": "valid"`` after each validation). A resumed run first
drops the records after its checkpoint's step, so the file never shows a step twice.
"""

from __future__ import annotations

import io
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nmt.fileio import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "learning_curve.png"


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; a torn last line (a crash mid-write) is skipped."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def truncate_metrics(run_dir: str | Path, step: int) -> None:
    """Keep only the records up to ``step`` (called when a run resumes from that step)."""
    path = Path(run_dir) / METRICS_FILE
    if path.is_file():
        kept = [r for r in read_metrics(run_dir) if int(r.get("step", 0)) <= step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


class Progress:
    """The bar and the metric sinks of one training session."""

    def __init__(
        self, run_dir: str | Path, total: int | None, initial: int, enabled: bool = True
    ) -> None:
        """``enabled=False`` (data-parallel ranks other than 0): no bar, nothing written."""
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc="train",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=None if enabled else True,  # None: no bar when stderr is not a terminal
        )
        self.writer = _tensorboard(Path(run_dir) / "tensorboard") if enabled else None

    def advance(self) -> None:
        self.bar.update(1)

    def record(self, event: str, values: dict[str, Any]) -> None:
        """Append one event to every sink and show its main figures on the bar."""
        if not self.enabled:
            return
        rec = {"event": event, **{k: _finite(v) for k, v in values.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        step = int(values["step"])
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(f"{event}/{key}", value, step)
        if event == "train" and self.bar.disable:  # no terminal: a log line instead of the bar
            log.info(
                "step %d: loss %.3f lr %.2e %.0f tok/s",
                step,
                values["loss"],
                values["lr"],
                values["tokens_per_s"],
            )
        elif event == "train":
            self.bar.set_postfix(
                loss=f"{values['loss']:.3f}",
                lr=f"{values['lr']:.2e}",
                tok_s=f"{values['tokens_per_s']:.0f}",
                refresh=False,
            )
        else:
            self.bar.write(
                f"step {step}: dev loss {values['dev_loss']:.3f} ppl {values['dev_ppl']:.1f} "
                f"BLEU {values['dev_bleu']:.2f} (best {values['best_bleu']:.2f})",
                file=sys.stderr,
            )

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _finite(value: Any) -> Any:
    # JSON has no NaN/inf; a non-finite metric is written as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _tensorboard(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(log_dir))


def plot_learning_curve(run_dir: str | Path) -> Path | None:
    """``RUN_DIR/learning_curve.png``: train loss and dev BLEU against step and wall-clock.

    Returns None (and draws nothing) when matplotlib is not installed or nothing was logged.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_metrics(run_dir)
    train = [r for r in records if r.get("event") == "train" and r.get("loss") is not None]
    valid = [r for r in records if r.get("event") == "valid" and r.get("dev_bleu") is not None]
    if not train and not valid:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x_key, label in ((axes[0], "step", "step"), (axes[1], "wall_s", "wall-clock (s)")):
        ax.plot([r[x_key] for r in train], [r["loss"] for r in train], color="tab:blue")
        ax.set_xlabel(label)
        ax.set_ylabel("train loss", color="tab:blue")
        twin = ax.twinx()
        twin.plot([r[x_key] for r in valid], [r["dev_bleu"] for r in valid], "o-", color="tab:red")
        twin.set_ylabel("dev BLEU", color="tab:red")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    out = Path(run_dir) / CURVE_FILE
    atomic_write_bytes(out, buf.getvalue())
    return out
