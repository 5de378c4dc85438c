"""Translate-and-score with a trained run: ``nmt evaluate --model`` and ``nmt tune``.

The sentences come from files or from one of the run's configured corpus splits
(``data.dev`` / ``data.test``), read with the corpus rules of :mod:`nmt.datautil.corpus`
(same line splitting, same skipped lines) but not normalized: the source goes through the
Translator's :class:`~nmt.datautil.pipeline.TextProcessor` like any input to ``nmt translate``,
and the reference is the corpus' target side as written (whitespace-stripped), so the score is
what a user would get by translating the file and scoring it against the references.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmt.config import Config, config_to_dict, load_config
from nmt.datautil.corpus import read_parallel, reference_text
from nmt.datautil.glossary import Glossary
from nmt.errors import CheckpointError, ConfigError, DataError, NmtError
from nmt.evaluate import DecodeStats, default_tokenize, timed_translate

if TYPE_CHECKING:
    from nmt.translate import Translator

log = logging.getLogger(__name__)

SPLITS = ("dev", "test")


@dataclass(frozen=True)
class EvalSet:
    """Source sentences and their references; ``name`` says where they came from."""

    name: str
    sources: list[str]
    references: list[str]


def run_config(run_dir: str | Path, decode: Mapping[str, Any] | None = None) -> Config:
    """``RUN_DIR/config.yaml`` with the given (non-None) ``decode.*`` options applied.

    The options are validated exactly as ``--set decode.KEY=VALUE`` overrides are.

    Raises:
        CheckpointError: ``run_dir`` is not a run directory.
        ConfigError: an option is invalid (the message names it).
    """
    config_path = Path(run_dir) / "config.yaml"
    if not config_path.is_file():
        raise CheckpointError(
            f"{run_dir}: no config.yaml; expected a run directory from 'nmt train'"
        )
    sets = [f"decode.{k}={_scalar(v)}" for k, v in (decode or {}).items() if v is not None]
    return load_config(config_path, sets)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def read_split(cfg: Config, split: str) -> EvalSet:
    """The run's ``data.<split>`` corpus as sources and raw references.

    Raises:
        ConfigError: ``split`` is not dev/test, or the run has no such corpus configured.
        DataError: the corpus is missing, unreadable or has no usable pair.
    """
    if split not in SPLITS:
        raise ConfigError(f"--split: expected dev or test, got {split!r}")
    path = getattr(cfg.data, split)
    if not path:
        raise ConfigError(
            f"{cfg.run_dir}: data.{split} is not set in the run's config.yaml; "
            "give --src FILE --ref FILE instead"
        )
    pairs = read_parallel(path, cfg.data, normalize=False)
    if not len(pairs):
        raise DataError(f"{path}: no sentence pairs to evaluate on")
    return EvalSet(f"{split}: {path}", list(pairs.src), [reference_text(t) for t in pairs.tgt])


def load_translator(
    run_dir: str | Path, device: str, checkpoint: str, precision: str | None = None,
    to: str | None = None,
) -> Translator:
    """:meth:`Translator.load`, imported only when a model is needed."""
    try:
        from nmt.translate import Translator
    except ImportError as e:
        if e.name not in ("nmt.translate", "nmt"):
            raise  # a real import error inside nmt.translate must not be hidden
        raise NmtError(
            "'nmt evaluate --model' needs nmt.translate, which this version "
            "does not have yet; translate with another tool and use --hyp"
        ) from None
    return Translator.load(run_dir, device=device, checkpoint=checkpoint, precision=precision,
                           to=to)


def translate_timed(
    translator: Translator,
    cfg: Config,
    sources: Sequence[str],
    options: Mapping[str, Any],
    settings: Mapping[str, Any],
    tokenize: str | None = None,
    glossary: Glossary | None = None,
) -> tuple[list[str], DecodeStats]:
    """Translate ``sources`` once with ``options``, timed; ``settings`` are reported with the
    run's decode config (options applied) in the :class:`DecodeStats`."""
    given = {k: v for k, v in options.items() if v is not None}
    reported = {**settings, **config_to_dict(cfg.decode), **given}
    extra: dict[str, Any] = {} if glossary is None else {"glossary": glossary}
    log.info("translating %d sentences", len(sources))
    return timed_translate(
        lambda xs: translator.translate(xs, **given, **extra),
        sources,
        tokenize or default_tokenize(cfg.data.tgt_lang),
        reported,
    )
