"""Length-penalty tuning on dev: decode the dev split once per alpha, keep the best BLEU.

Beam search prefers short hypotheses (every token costs log-probability); the GNMT length
penalty ``((5 + |y|) / 6) ** alpha`` (Wu et al. 2016, section 7) divides that away, and the
best ``alpha`` depends on the model and the data, so it is chosen on dev, never on test.
``--write`` stores the winner in ``RUN_DIR/config.yaml`` (``decode.length_penalty``), where
``nmt translate`` and ``nmt evaluate`` take their defaults from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmt.config import DecodeConfig, decode_with, dump_config, replace
from nmt.errors import ConfigError
from nmt.evaluate import default_tokenize, score
from nmt.fileio import atomic_write_text
from nmt.run_eval import load_translator, read_split, run_config

log = logging.getLogger(__name__)

# Up to 3.0: the tuned recipes' dev BLEU still rose at 1.6 (the old edge), and the both-ways
# model's en->zh side peaked at 3.0 (README, "Small-data options").
DEFAULT_VALUES = (0.0, 0.4, 0.8, 1.0, 1.2, 1.6, 2.0, 2.5, 3.0)


@dataclass(frozen=True)
class TuneResult:
    """Dev BLEU per length penalty.

    ``best`` has the highest BLEU; on a tie the run's ``current`` value if it is among the
    winners (no change without a gain), else the first winner in the order given.
    """

    values: tuple[float, ...]
    bleu: tuple[float, ...]
    signature: str
    beam_size: int
    split: str
    sentences: int
    seconds: float
    current: float | None = None

    @property
    def best(self) -> float:
        winners = [v for v, b in zip(self.values, self.bleu, strict=True) if b == max(self.bleu)]
        return self.current if self.current in winners else winners[0]

    def format_table(self) -> str:
        rows = [f"{'length_penalty':>14}  {'BLEU':>6}"]
        for value, bleu in zip(self.values, self.bleu, strict=True):
            mark = "  <- best" if value == self.best else ""
            rows.append(f"{value:>14g}  {bleu:>6.2f}{mark}")
        rows.append(f"{self.split}, {self.sentences} sentences, beam {self.beam_size}, "
                    f"{self.seconds:.1f} s; {self.signature}")  # fmt: skip
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split, "sentences": self.sentences, "beam_size": self.beam_size,
            "signature": self.signature, "seconds": round(self.seconds, 2), "best": self.best,
            "bleu": {f"{v:g}": round(b, 2) for v, b in zip(self.values, self.bleu, strict=True)},
        }  # fmt: skip


def parse_values(text: str) -> tuple[float, ...]:
    """``"0,0.6,1.0"`` -> ``(0.0, 0.6, 1.0)``, duplicates dropped; each value is held to the
    rule of ``decode.length_penalty``."""
    values: list[float] = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"--length-penalty: {item.strip()!r} is not a number") from None
        decode = _with_penalty(DecodeConfig(), value, f"--length-penalty {item.strip()}")
        if decode.length_penalty not in values:
            values.append(decode.length_penalty)
    return tuple(values)


def _with_penalty(decode: DecodeConfig, value: Any, where: str) -> DecodeConfig:
    """``decode`` with length penalty ``value``, held to the ``decode.length_penalty`` rule."""
    try:
        return decode_with(decode, {"length_penalty": value})
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def tune_length_penalty(
    run_dir: str | Path,
    values: Sequence[float] = DEFAULT_VALUES,
    beam_size: int | None = None,
    split: str = "dev",
    device: str = "auto",
    checkpoint: str = "best",
    batch_size: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> TuneResult:
    """Beam-decode the run's ``split`` once per length penalty and score each with BLEU.

    Args:
        beam_size: default the run's ``decode.beam_size``.
        options: other ``decode.*`` keys to decode with (steering, length limits, ...); the
            strategy is always beam and the length penalty each of ``values``.

    Raises:
        ConfigError: no values, a value ``decode.length_penalty`` refuses, or the run has no
            such split configured.
    """
    if not values:
        raise ConfigError("--length-penalty: give at least one value")
    given = {**(options or {}), "beam_size": beam_size, "batch_size": batch_size}
    cfg = run_config(run_dir, {k: v for k, v in given.items() if v is not None}
                     | {"strategy": "beam"})  # fmt: skip
    # All of them before the first decode: a bad last value must not cost the others' time.
    values = [_with_penalty(cfg.decode, v, f"--length-penalty {v}").length_penalty
              for v in values]
    data = read_split(cfg, split)
    translator = load_translator(run_dir, device, checkpoint)
    tokenize = default_tokenize(cfg.data.tgt_lang)
    start = time.perf_counter()
    bleu, signature = [], ""
    for value in values:
        hyps = translator.translate(data.sources, cfg.decode, length_penalty=value)
        result = score([h.rstrip() for h in hyps], [data.references], tokenize, ("bleu",))
        bleu.append(result["bleu"].score)
        signature = result["bleu"].signature
        log.info("length_penalty %g: %s BLEU %.2f", value, split, bleu[-1])
    return TuneResult(tuple(values), tuple(bleu), signature, cfg.decode.beam_size, data.name,
                      len(data.sources), time.perf_counter() - start,
                      cfg.decode.length_penalty)  # fmt: skip


def write_length_penalty(run_dir: str | Path, value: float) -> Path:
    """Set ``decode.length_penalty`` in ``RUN_DIR/config.yaml``: validated as that key of the
    file is, then the resolved config is written back atomically (as ``nmt train`` wrote it)."""
    path = Path(run_dir) / "config.yaml"
    cfg = run_config(run_dir)  # a missing run directory is a CheckpointError naming it
    decode = _with_penalty(cfg.decode, value, str(path))
    atomic_write_text(path, dump_config(replace(cfg, decode=decode)))
    return path
