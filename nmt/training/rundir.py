"""Getting a run directory ready: vocabulary, resolved config, and what to resume from."""

from __future__ import annotations

import logging
from pathlib import Path

from nmt.checkpoint.locate import find_checkpoint
from nmt.config import Config, DataConfig, dump_config, load_config, with_absolute_paths
from nmt.datautil.build import build_vocab, vocab_change
from nmt.datautil.pipeline import vocab_layout
from nmt.errors import CheckpointError, ConfigError
from nmt.fileio import atomic_write_text

log = logging.getLogger(__name__)


def _built_with(run_dir: Path) -> DataConfig | None:
    """The data settings of the run's saved config.yaml, which the existing vocabulary was
    built with; None when there is none to compare with (e.g. a vocabulary copied in)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        return with_absolute_paths(load_config(path)).data
    except ConfigError as e:
        log.warning("cannot compare the vocabulary settings with %s: %s", path, e)
        return None


def prepare_run_dir(cfg: Config, resume: bool) -> Path | None:
    """Build the vocabulary when missing or built with other settings, save ``config.yaml``
    (paths absolute); return the checkpoint to resume from (None: start from step 0).

    Raises:
        CheckpointError: a fresh start was asked for in a directory that holds a run; the
            message says how to continue it instead.
        ConfigError: the run has checkpoints and a setting its vocabulary was built from
            changed (e.g. a ``--set`` on ``--resume``); names the key.
    """
    run_dir = Path(cfg.run_dir)
    found = find_checkpoint(run_dir)
    if found is not None and not resume:
        raise CheckpointError(
            f"{run_dir} already holds a training run ({found.name}); continue it with "
            f"'nmt train --resume {run_dir}' or choose another --run-dir"
        )
    if resume and found is None:
        log.warning("%s has no checkpoint yet: starting from step 0", run_dir)
    cfg = with_absolute_paths(cfg)
    built = _built_with(run_dir)
    change = vocab_change(built, cfg.data) if built is not None else None
    if change is not None:
        key, old, new = change
        if found is not None:
            raise ConfigError(
                f"{key}: {run_dir} was trained with {key}={old!r}, not {new!r}, and its model "
                f"only works with the vocabulary built from that: keep {key}={old!r} or train "
                "in another --run-dir"
            )
        log.info("%s: %s changed (%r -> %r): rebuilding the vocabulary", run_dir, key, old, new)
    layout = vocab_layout(run_dir, cfg.data)
    missing = not (layout.src_vocab.is_file() and layout.tgt_vocab.is_file())
    if missing and change is None:
        log.info("%s has no vocabulary yet: building it", run_dir)
    if missing or change is not None:
        log.info("%s", build_vocab(cfg).format())
    # The resolved config (with this session's overrides) is what translate and --resume read.
    atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
    return found
