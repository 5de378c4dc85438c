"""Where the training token cache lives and the key that says whether it still fits.

``build-vocab`` writes the cache (it tokenizes the corpus anyway) and ``nmt train`` opens it:
both compute the same key, from the corpus files' bytes, the vocabulary files' bytes and the
data settings that shape the ids. Settings that only select pairs at load time (``max_len``)
or that do not change the result (``workers``, ``dev``, ``test``) are not part of it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nmt.config import Config, DataConfig, config_to_dict, train_paths
from nmt.datautil.corpus import aligned_paths
from nmt.datautil.pipeline import vocab_layout
from nmt.fileio import open_binary

CACHE_DIR = "cache"

# The data settings a vocabulary is built from. A model trained on it is tied to these values;
# the other data keys (max_len, dev, test, strict, workers) can change at any time.
VOCAB_KEYS = ("format", "train", "src_lang", "tgt_lang", "src_tokenizer", "tgt_tokenizer",
              "joint_vocab", "min_freq", "max_size", "traditional_to_simplified", "filters",
              "sp_sample_sentences", "sp_threads")
# What the cached ids depend on besides the files: strict decides whether a malformed line
# stops the build or is skipped.
_CACHE_KEYS = (*VOCAB_KEYS, "strict")


def corpus_files(data_cfg: DataConfig, path: str) -> list[Path]:
    """The files a corpus setting reads (one TSV, or the two aligned files)."""
    if data_cfg.format == "aligned":
        return list(aligned_paths(path))
    return [Path(path)]


def hash_files(files: Sequence[str | Path], settings: str, salt: str) -> str:
    """Hash of the files' contents (in order) and a settings string.

    Raises:
        DataError: a file is missing or unreadable (it names the file).
    """
    h = hashlib.sha256(salt.encode())
    for path in files:
        h.update(b"\0file\0")
        with open_binary(path) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    h.update(b"\0settings\0" + settings.encode("utf-8"))
    return h.hexdigest()[:24]


def train_cache_key(cfg: Config) -> str:
    """The key of the training token cache for ``cfg`` (pass it with absolute paths, as
    :func:`nmt.config.with_absolute_paths` gives, so every command computes the same)."""
    from nmt.datautil.shards import SHARD_FORMAT

    layout = vocab_layout(cfg.run_dir, cfg.data)
    vocab_files = sorted(p for p in layout.directory.iterdir() if p.is_file())
    data: dict[str, Any] = config_to_dict(cfg.data)
    settings = json.dumps({k: data[k] for k in _CACHE_KEYS}, sort_keys=True)
    files = [f for path in train_paths(cfg.data) for f in corpus_files(cfg.data, path)]
    return hash_files([*files, *vocab_files], settings, SHARD_FORMAT)


def train_cache_dir(run_dir: str | Path, key: str) -> Path:
    return Path(run_dir) / CACHE_DIR / f"train-{key}"


def remove_other_train_caches(run_dir: str | Path, keep: Path) -> None:
    """Older training caches (of other keys, or of the single-file format before shards)."""
    root = Path(run_dir) / CACHE_DIR
    for old in root.glob("train-*"):
        if old == keep:
            continue
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
