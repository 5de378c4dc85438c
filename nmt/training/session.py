"""What a training session holds, built fresh or restored from a checkpoint, and where it is
in the data.

One optimizer *step* consumes ``train.accum_steps`` batches from an endless stream that runs
through the epochs in order; ``(epoch, batch_in_epoch)`` in :class:`TrainState` is the position
of the next batch. Since each epoch's batch list is a pure function of ``(seed, epoch)`` and
the checkpoint holds weights, optimizer, schedule, counters and every RNG state, a resumed run
repeats the uninterrupted one exactly (on CPU). In a data-parallel run every rank computes the
same epoch list and takes its own shard of it (equal lengths), so the position means the same
on every rank and one checkpoint resumes them all. With ``train.sp_alpha`` an epoch's data is
the corpus re-segmented by sampling, and its batches are packed by those lengths; rank 0 draws
it once and keeps it in the run's cache, since sentencepiece's generator draws differently in
every process even from one seed: a resumed run and the other ranks read what was drawn.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt import checkpoint as ckpt
from nmt import perf
from nmt.config import Config, with_absolute_paths
from nmt.datautil.batching import (
    PairSource,
    TokenBatchSampler,
    TokenizedCorpus,
    cached_corpus,
    shard_batches,
)
from nmt.datautil.directions import BothDirections
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.subword_sampling import SubwordSampler
from nmt.datautil.vocab import PAD_ID
from nmt.errors import DataError
from nmt.models.factory import build_model, count_parameters
from nmt.runtime import derived_seed, resolve_precision, seed_everything, select_device
from nmt.training.data import load_dev, load_train
from nmt.training.distributed import Dist, rank_seed
from nmt.training.meter import StepMeter
from nmt.training.optim import make_optimizer, make_scaler
from nmt.training.progress import truncate_metrics
from nmt.training.rundir import prepare_run_dir
from nmt.training.schedule import LRSchedule
from nmt.training.state import TrainState, restore_rng, unpack_rank_rng

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochData:
    """One epoch's examples and this rank's batches of them (lists of indices into ``corpus``):
    the run's corpus, or with ``train.sp_alpha`` that epoch's sampled segmentation of it."""

    epoch: int
    corpus: PairSource
    sampler: TokenBatchSampler
    batches: Sequence[list[int]]


class TrainingSession:
    """Config, device, data, model, optimizer, schedule and counters of one session.

    :class:`nmt.training.trainer.Trainer` adds the loop; this part only sets things up and
    walks the data.
    """

    def __init__(self, cfg: Config, resume: bool = False, dist: Dist | None = None) -> None:
        # As config.yaml records them: the token cache key (which hashes the data settings)
        # is then the same for a resumed session as for the first.
        cfg = with_absolute_paths(cfg)
        self.cfg, self.run_dir = cfg, Path(cfg.run_dir)
        self.dist = dist or Dist()
        perf.set_threads(perf.training_threads(cfg.train.threads))
        self.device = self.dist.device or select_device(cfg.train.device)
        self.dtype = resolve_precision(cfg.train.precision, self.device)
        start_from = self.dist.on_main(lambda: prepare_run_dir(cfg, resume))
        if start_from is None:
            seed_everything(cfg.seed)  # before the model is built: its init draws from it
        self.processor = TextProcessor.load(self.run_dir, cfg.data)
        # Rank 0 fills the token cache; the others then read it instead of tokenizing too.
        train = self.dist.main_first(lambda: load_train(cfg, self.processor))
        corpus: PairSource = train
        tag = self.processor.source_tag
        if tag is not None:  # both directions: each pair a second time, the other way round
            vocab, back = self.processor.src_vocab, self.processor.reversed().source_tag
            assert back is not None
            corpus = BothDirections(corpus, vocab.token_to_id(tag), vocab.token_to_id(back))
        self.corpus = corpus
        self.subwords = SubwordSampler.for_run(self.processor, cfg.train.sp_alpha,
                                               cfg.data.max_len)  # fmt: skip
        # What a sampled epoch depends on besides its number: the token cache's key (corpus,
        # vocabulary, data settings; not hashed again here) and the sampling settings.
        self._sampling_key = (f"{train.key} sp_alpha={cfg.train.sp_alpha} "
                              f"max_len={cfg.data.max_len} directions={cfg.data.directions} "
                              f"seed={cfg.seed}")  # fmt: skip
        if not len(self.corpus):
            raise DataError(f"{cfg.data.train}: no training pairs left after filtering")
        self.dev = self.dist.main_first(lambda: load_dev(cfg, self.processor))
        self.sampler = self._batch_sampler(self.corpus)
        self._epoch_cache: EpochData | None = None
        src_size, tgt_size = len(self.processor.src_vocab), len(self.processor.tgt_vocab)
        self.model = build_model(
            cfg.model, src_size, tgt_size, shared_vocab=self.processor.joint, pad_id=PAD_ID
        ).to(self.device)
        if start_from is None and self.dist.world > 1:  # same init everywhere, own dropout
            seed_everything(rank_seed(cfg.seed, self.dist.rank))
        self.optimizer = make_optimizer(self.model, cfg.train, self.device)
        self.scaler = make_scaler(self.device, self.dtype)
        self.schedule = LRSchedule(cfg.train)
        self.state = TrainState()
        self.meter = StepMeter(self.device)
        self.saved_step = -1
        self.signum: int | None = None  # the stop signal, as all ranks agreed on it
        if start_from is not None:
            self._restore(start_from)
        self.train_model = self.dist.wrap(self.model)  # forward/backward go through DDP
        self._describe()

    # ----------------------------------------------------------------- setup

    def _restore(self, path: Path) -> None:
        data = ckpt.read_checkpoint(path)
        ckpt.restore(data, self.model, self.optimizer)
        self.state = TrainState.from_dict(data.state.get("train"))
        self.schedule.load_state_dict(self.state.schedule)
        if self.scaler is not None and self.state.scaler:
            self.scaler.load_state_dict(self.state.scaler)
        self.meter = StepMeter(self.device, run=self.state.nonfinite_in_row)
        s = self.state
        if s.data_order not in ("", self._data_order()):
            log.warning("the batching settings or the corpus changed since the checkpoint (%s, "
                        "now %s): data order differs from an uninterrupted run",
                        s.data_order, self._data_order())  # fmt: skip
        if s.world_size != self.dist.world:  # about the same share of the epoch, in new shards
            s.batch_in_epoch = s.batch_in_epoch * s.world_size // self.dist.world
            s.world_size = self.dist.world
        rng = unpack_rank_rng(data.train_tensors, data.state["rng"], self.dist.rank)
        if rng is None:
            log.warning("rank %d: the checkpoint has no RNG state for it (written by fewer "
                        "processes); seeding it afresh", self.dist.rank)  # fmt: skip
            seed_everything(rank_seed(self.cfg.seed + s.step, self.dist.rank))
        else:
            restore_rng(*rng)  # last: nothing may draw after it
        if self.dist.is_main:
            truncate_metrics(self.run_dir, s.step)
        self.saved_step = s.step
        log.info("resuming %s at step %d (epoch %d, batch %d)", path, s.step, s.epoch,
                 s.batch_in_epoch)  # fmt: skip

    def _describe(self) -> None:
        data = self._epoch_data(self.state.epoch)
        where = f" on each of {self.dist.world} processes" if self.dist.world > 1 else ""
        log.info(
            "%d training pairs, %d batches per epoch%s (padding %.1f%%), %d parameters, %s%s",
            len(self.corpus), len(data.batches), where,
            100 * data.sampler.padding_fraction(data.batches),
            count_parameters(self.model), self.device, f" {self.dtype}" if self.dtype else "",
        )  # fmt: skip

    def _data_order(self) -> str:
        """What the batch lists depend on, to detect a resume that changes them."""
        c, w = self.cfg, self.dist.world
        where = f" world={w}" if w > 1 else ""
        sampled = f" sp_alpha={c.train.sp_alpha}" if self.subwords is not None else ""
        return (f"seed={c.seed} batch_tokens={c.train.batch_tokens} pairs={len(self.corpus)}"
                f"{sampled}{where}")  # fmt: skip

    def _batch_sampler(self, corpus: PairSource) -> TokenBatchSampler:
        return TokenBatchSampler(corpus.src_lengths(), corpus.tgt_lengths(),
                                 self.cfg.train.batch_tokens, self.cfg.seed)  # fmt: skip

    def _epoch_data(self, epoch: int) -> EpochData:
        """``epoch``'s examples and this rank's batches: the same list on every rank, dealt
        out so that all ranks get as many batches and each example is used once
        (``shard_batches``)."""
        if self._epoch_cache is None or self._epoch_cache.epoch != epoch:
            corpus, sampler = self.corpus, self.sampler
            if self.subwords is not None:
                corpus = self.dist.main_first(lambda: self._sampled_corpus(epoch))
                sampler = self._batch_sampler(corpus)
            batches = shard_batches(sampler.epoch_batches(epoch), self.dist.rank, self.dist.world)
            self._epoch_cache = EpochData(epoch, corpus, sampler, batches)
        return self._epoch_cache

    def _sampled_corpus(self, epoch: int) -> TokenizedCorpus:
        """``epoch``'s corpus re-segmented by sampling: read from ``cache/sampled-KEY.npz``,
        or drawn and written there (replacing the previous epoch's)."""
        subwords = self.subwords
        assert subwords is not None

        def draw() -> TokenizedCorpus:
            started = time.monotonic()
            corpus = subwords.sample_corpus(self.corpus, derived_seed(self.cfg.seed, epoch))
            log.debug("epoch %d: %d pairs re-segmented in %.1f s", epoch, len(corpus),
                      time.monotonic() - started)  # fmt: skip
            return corpus

        key = hashlib.sha256(f"{self._sampling_key} epoch={epoch}".encode()).hexdigest()[:24]
        return cached_corpus(self.run_dir / "cache", "sampled", key, draw)

    def _epoch_batches(self, epoch: int) -> Sequence[list[int]]:
        """This rank's batches of ``epoch`` (see :meth:`_epoch_data`)."""
        return self._epoch_data(epoch).batches

    def _next_group(self) -> list[tuple[PairSource, list[int]]]:
        """The next ``accum_steps`` batches, each with the examples its indices point into;
        fewer (or none) when the last epoch runs out."""
        s = self.state
        group: list[tuple[PairSource, list[int]]] = []
        while len(group) < self.cfg.train.accum_steps and s.epoch < self.cfg.train.max_epochs:
            data = self._epoch_data(s.epoch)
            batches = data.batches
            if s.batch_in_epoch >= len(batches):  # resumed with settings giving fewer batches
                s.epoch, s.batch_in_epoch = s.epoch + 1, 0
                continue
            group.append((data.corpus, batches[s.batch_in_epoch]))
            s.batch_in_epoch += 1
            if s.batch_in_epoch == len(batches):  # the boundary belongs to the next epoch
                s.epoch, s.batch_in_epoch = s.epoch + 1, 0
        return group
