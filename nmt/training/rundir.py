"""Getting a run directory ready: vocabulary, resolved config, and what to resume from."""

from __future__ import annotations

import logging
from pathlib import Path

from nmt.config import Config, dump_config
from nmt.datautil.build import build_vocab
from nmt.datautil.pipeline import vocab_layout
from nmt.errors import CheckpointError
from nmt.fileio import atomic_write_text
from nmt.training.checkpoint import find_checkpoint

log = logging.getLogger(__name__)


def prepare_run_dir(cfg: Config, resume: bool) -> Path | None:
    """Build the vocabulary when missing, save ``config.yaml``; return the checkpoint to
    resume from (None: start from step 0).

    Raises:
        CheckpointError: a fresh start was asked for in a directory that holds a run; the
            message says how to continue it instead.
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
    layout = vocab_layout(run_dir, cfg.data)
    if not (layout.src_vocab.is_file() and layout.tgt_vocab.is_file()):
        log.info("%s has no vocabulary yet: building it", run_dir)
        log.info("%s", build_vocab(cfg).format())
    # The resolved config (with this session's overrides) is what translate will read.
    atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
    return found
