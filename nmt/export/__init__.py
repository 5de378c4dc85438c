"""Export a trained run for another inference engine: ``nmt export RUN_DIR --to FORMAT OUT``.

One format so far, ``ctranslate2`` (:mod:`nmt.export.ctranslate2`, the ``export`` extra):
Transformer runs only; the exported directory is translated by ``nmt translate --engine
ctranslate2 --model OUT`` or ``Translator.load(OUT, engine="ctranslate2")`` with nmt's own text
processing (:mod:`nmt.translate.ctranslate2_engine`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nmt.config import Config, load_config
from nmt.errors import CheckpointError, ConfigError
from nmt.translate.ctranslate2_engine import import_ctranslate2

if TYPE_CHECKING:
    from nmt.export.ctranslate2 import ExportReport

__all__ = ["FORMATS", "export_run"]

FORMATS = ("ctranslate2",)


def export_run(
    run_dir: str | Path, out_dir: str | Path, to: str = "ctranslate2", *,
    quantization: str | None = None, checkpoint: str | Path = "best", force: bool = False,
) -> ExportReport:
    """Write the model of ``run_dir`` (its ``checkpoint``) as a ``to`` model in ``out_dir``.

    Args:
        quantization: the converter's weight type (``int8``, ``int8_float32``, ``float16``,
            ``bfloat16``, ...); None keeps float32.
        checkpoint: as for ``nmt translate --checkpoint`` (``best``, ``latest``, a name, a
            directory).
        force: replace ``out_dir`` when it is there and not empty.

    Raises:
        ConfigError: an unknown format, a model type the format cannot express (the GRU),
            ctranslate2 not installed, or a bad quantization or output directory.
        CheckpointError: the run directory, its config or checkpoint are missing or broken.
    """
    if to not in FORMATS:
        raise ConfigError(f"--to: expected one of {', '.join(FORMATS)}, got {to!r}")
    run = Path(run_dir)
    cfg = _run_config(run)
    if cfg.model.type != "transformer":
        raise ConfigError(f"{run}: model.type is {cfg.model.type}; CTranslate2 has no "
                          f"attention-GRU architecture, only Transformer runs can be exported "
                          f"(translate this run with the torch engine)")  # fmt: skip
    import_ctranslate2()  # before torch and the model are loaded: fail fast, in one line
    from nmt.export.ctranslate2 import export_ctranslate2

    return export_ctranslate2(run, cfg, Path(out_dir), quantization=quantization,
                              checkpoint=checkpoint, force=force)  # fmt: skip


def _run_config(run: Path) -> Config:
    if not run.is_dir():
        raise CheckpointError(f"{run}: no such run directory")
    config_path = run / "config.yaml"
    if not config_path.is_file():
        raise CheckpointError(f"{run}: no config.yaml; expected a run directory of 'nmt train'")
    return load_config(config_path)
