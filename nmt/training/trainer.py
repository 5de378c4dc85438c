"""The design card's trainer: the step loop, validation, early stopping and checkpoints.

One optimizer *step* consumes ``train.accum_steps`` batches from an endless stream that runs
through the epochs in order; ``(epoch, batch_in_epoch)`` in :class:`TrainState` is the position
of the next batch. Since each epoch's batch list is a pure function of ``(seed, epoch)`` and
the checkpoint holds weights, optimizer, schedule, counters and every RNG state, a resumed run
repeats the uninterrupted one exactly (on CPU).

Nothing in the step synchronises with the device: losses and the non-finite counters are
accumulated in device tensors and read once per log interval (:meth:`Trainer._flush`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt.config import Config
from nmt.datautil.batching import TokenBatchSampler, collate
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.vocab import PAD_ID
from nmt.errors import DataError, TrainingError
from nmt.models.factory import build_model, count_parameters
from nmt.runtime import autocast, resolve_precision, seed_everything, select_device, set_threads
from nmt.training import checkpoint as ckpt
from nmt.training.data import load_dev, load_train
from nmt.training.loss import label_smoothed_loss
from nmt.training.meter import StepMeter
from nmt.training.optim import clip_gradients, make_optimizer, make_scaler, optimizer_step, set_lr
from nmt.training.progress import Progress, plot_learning_curve, truncate_metrics
from nmt.training.rundir import prepare_run_dir
from nmt.training.schedule import LRSchedule
from nmt.training.signals import StopSignals
from nmt.training.state import TrainState, capture_rng, restore_rng
from nmt.training.validation import ValidationAborted, validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """How a training session ended.

    ``status``: ``finished`` (max_epochs), ``max_steps``, ``time_limit``, ``early_stopped`` or
    ``interrupted`` (then ``signal`` is the signal number and a checkpoint was saved).
    """

    status: str
    step: int
    run_dir: str
    best_bleu: float | None
    checkpoint: Path | None
    signal: int | None = None


def train(cfg: Config, resume: bool = False) -> TrainResult:
    """Train (or, with ``resume``, continue) the run ``cfg.run_dir``."""
    return Trainer(cfg, resume).run()


class Trainer:
    """Everything one training session holds; :meth:`run` does the work."""

    def __init__(self, cfg: Config, resume: bool = False) -> None:
        self.cfg, self.run_dir = cfg, Path(cfg.run_dir)
        set_threads(cfg.train.threads)
        self.device = select_device(cfg.train.device)
        self.dtype = resolve_precision(cfg.train.precision, self.device)
        start_from = prepare_run_dir(cfg, resume)
        if start_from is None:
            seed_everything(cfg.seed)  # before the model is built: its init draws from it
        self.processor = TextProcessor.load(self.run_dir, cfg.data)
        self.corpus = load_train(cfg, self.processor)
        if not len(self.corpus):
            raise DataError(f"{cfg.data.train}: no training pairs left after filtering")
        self.dev = load_dev(cfg, self.processor)
        self.sampler = TokenBatchSampler(
            self.corpus.src_lengths(), self.corpus.tgt_lengths(), cfg.train.batch_tokens, cfg.seed
        )
        self._epoch_cache: tuple[int, list[list[int]]] = (-1, [])
        src_size, tgt_size = len(self.processor.src_vocab), len(self.processor.tgt_vocab)
        self.model = build_model(
            cfg.model, src_size, tgt_size, shared_vocab=self.processor.joint, pad_id=PAD_ID
        ).to(self.device)
        self.optimizer = make_optimizer(self.model, cfg.train, self.device)
        self.scaler = make_scaler(self.device, self.dtype)
        self.schedule = LRSchedule(cfg.train)
        self.state = TrainState()
        self.meter = StepMeter(self.device)
        self.saved_step = -1
        if start_from is not None:
            self._restore(start_from)
        self._describe()

    # ----------------------------------------------------------------- setup

    def _restore(self, path: Path) -> None:
        data = ckpt.read_checkpoint(path)
        ckpt.restore(data, self.model, self.optimizer)
        self.state = TrainState.from_dict(data.state["train"])
        self.schedule.load_state_dict(self.state.schedule)
        if self.scaler is not None and self.state.scaler:
            self.scaler.load_state_dict(self.state.scaler)
        self.meter = StepMeter(self.device, run=self.state.nonfinite_in_row)
        if self.state.data_order not in ("", self._data_order()):
            log.warning("the batching settings or the corpus changed since the checkpoint (%s, "
                        "now %s): data order differs from an uninterrupted run",
                        self.state.data_order, self._data_order())  # fmt: skip
        restore_rng(data.train_tensors, data.state["rng"])  # last: nothing may draw after it
        truncate_metrics(self.run_dir, self.state.step)
        self.saved_step = self.state.step
        s = self.state
        log.info("resuming %s at step %d (epoch %d, batch %d)", path, s.step, s.epoch,
                 s.batch_in_epoch)  # fmt: skip

    def _describe(self) -> None:
        batches = self._epoch_batches(self.state.epoch)
        log.info(
            "%d training pairs, %d batches per epoch (padding %.1f%%), %d parameters, %s%s",
            len(self.corpus), len(batches), 100 * self.sampler.padding_fraction(batches),
            count_parameters(self.model), self.device, f" {self.dtype}" if self.dtype else "",
        )  # fmt: skip

    def _data_order(self) -> str:
        """What the batch lists depend on, to detect a resume that changes them."""
        c = self.cfg
        return f"seed={c.seed} batch_tokens={c.train.batch_tokens} pairs={len(self.corpus)}"

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        if self._epoch_cache[0] != epoch:
            self._epoch_cache = (epoch, self.sampler.epoch_batches(epoch))
        return self._epoch_cache[1]

    # ----------------------------------------------------------------- the loop

    def run(self) -> TrainResult:
        self.session_start = self.interval_start = time.monotonic()
        self.elapsed_before = self.state.elapsed_seconds  # earlier sessions of this run
        self.interval_tokens = 0
        t = self.cfg.train
        total = t.max_steps or math.ceil(len(self._epoch_batches(0)) / t.accum_steps) * t.max_epochs
        self.progress = Progress(self.run_dir, total, self.state.step)
        try:
            with StopSignals() as self.signals:
                status = self._loop()
                status = self._finish(status)
        finally:
            self.progress.close()
        plot_learning_curve(self.run_dir)
        s = self.state
        latest = ckpt.find_checkpoint(self.run_dir)
        return TrainResult(
            status, s.step, str(self.run_dir), s.best_bleu, latest, self.signals.signum
        )

    def _loop(self) -> str:
        t, s = self.cfg.train, self.state
        # Resumed from a save whose scheduled validation was cut short by a signal: do it now.
        missed = s.step > 0 and s.step % t.valid_every == 0 and s.validated_step != s.step
        if missed and self.dev is not None and self._validate(scheduled=True):
            return "early_stopped"
        while True:
            reason = self._stop_reason()
            if reason is not None:
                return reason
            group = self._next_group()
            if not group:
                return "finished"
            self._step(group)
            self.progress.advance()
            if self.state.step % t.log_every == 0:
                self._flush()
            if self.state.step % t.valid_every == 0 and self._validate(scheduled=True):
                return "early_stopped"

    def _stop_reason(self) -> str | None:
        t, s = self.cfg.train, self.state
        if self.signals.signum is not None:
            return "interrupted"
        if t.early_stopping_patience and s.bad_validations >= t.early_stopping_patience:
            return "early_stopped"
        if t.max_steps and s.step >= t.max_steps:
            return "max_steps"
        session = time.monotonic() - self.session_start
        if t.time_limit_minutes and session >= 60 * t.time_limit_minutes:
            return "time_limit"
        return None

    def _next_group(self) -> list[list[int]]:
        """The next ``accum_steps`` batches; fewer (or none) when the last epoch runs out."""
        s = self.state
        group: list[list[int]] = []
        while len(group) < self.cfg.train.accum_steps and s.epoch < self.cfg.train.max_epochs:
            batches = self._epoch_batches(s.epoch)
            if s.batch_in_epoch >= len(batches):  # resumed with settings giving fewer batches
                s.epoch, s.batch_in_epoch = s.epoch + 1, 0
                continue
            group.append(batches[s.batch_in_epoch])
            s.batch_in_epoch += 1
            if s.batch_in_epoch == len(batches):  # the boundary belongs to the next epoch
                s.epoch, s.batch_in_epoch = s.epoch + 1, 0
        return group

    def _step(self, group: list[list[int]]) -> None:
        """One update from the batches ``group`` (lists of example indices)."""
        t = self.cfg.train
        batches = [collate(self.corpus, indices) for indices in group]
        total = sum(b.n_tgt_tokens for b in batches)  # known on the host: no sync
        set_lr(self.optimizer, self.schedule.lr(self.state.step + 1))
        sums = torch.zeros(3, device=self.device)  # loss, nll, tokens
        for cpu_batch in batches:
            b = cpu_batch.to(self.device)
            with autocast(self.device, self.dtype):
                logits = self.model(b.src, b.src_mask, b.tgt_in, teacher_forcing=t.teacher_forcing)
            out = label_smoothed_loss(logits, b.tgt_out, t.label_smoothing, PAD_ID)
            # Dividing by the token count of the whole step makes accumulation exact.
            loss = out.loss / total
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            sums += torch.stack([out.loss.detach(), out.nll.detach(), out.tokens.float()])
        norm = clip_gradients(self.optimizer, self.scaler, t.clip_norm)
        bad = ~(torch.isfinite(sums[0]) & torch.isfinite(norm))
        optimizer_step(self.optimizer, self.scaler, bad)
        self.meter.add(sums, bad)
        self.state.step += 1
        self.interval_tokens += total

    # ----------------------------------------------------------------- logging

    def _flush(self) -> None:
        """Read the interval's sums (the one sync), log them, stop on too many bad steps."""
        now = time.monotonic()
        st = self.meter.read()
        s, t = self.state, self.cfg.train
        s.nonfinite_in_row, s.nonfinite_total = st.run, s.nonfinite_total + st.skipped
        if st.skipped:
            log.warning("step %d: %d step(s) with a non-finite loss or gradient were skipped",
                        s.step, st.skipped)  # fmt: skip
        if st.max_run >= t.max_nonfinite:
            raise TrainingError(
                f"training stopped at step {s.step}: {st.max_run} non-finite losses in a row "
                f"(train.max_nonfinite={t.max_nonfinite}); lower train.lr or check the data; "
                f"the last good checkpoint is {ckpt.find_checkpoint(self.run_dir) or 'none'}"
            )
        per_epoch = len(self._epoch_batches(s.epoch))
        self.progress.record("train", {
            "step": s.step, "epoch": round(s.epoch + s.batch_in_epoch / per_epoch, 4),
            "loss": st.loss / st.tokens if st.tokens else math.nan,
            "ppl": math.exp(min(st.nll / st.tokens, 100.0)) if st.tokens else math.nan,
            "lr": self.optimizer.param_groups[0]["lr"],
            "tokens_per_s": self.interval_tokens / max(now - self.interval_start, 1e-9),
            "skipped": st.skipped, "wall_s": round(self._elapsed(), 3),
        })  # fmt: skip
        self.interval_start, self.interval_tokens = now, 0

    def _elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.session_start

    # ----------------------------------------------------------------- validation, saving

    def _validate(self, scheduled: bool) -> bool:
        """Validate, update best/early stopping, save; True when patience has run out.

        Only ``scheduled`` validations feed early stopping and the plateau schedule, so an extra
        one at a stop point cannot change what a resumed run does.
        """
        s, t = self.state, self.cfg.train
        if self.dev is None:
            self._save()
            return False
        try:
            res = validate(
                self.model, self.dev, self.processor, self.cfg, self.device, self.dtype,
                should_stop=lambda: self.signals.signum is not None,
            )  # fmt: skip
        except ValidationAborted:
            return False
        s.validated_step = s.step
        best = s.best_bleu is None or res.bleu > s.best_bleu
        if best:
            s.best_bleu, s.best_step = res.bleu, s.step
        if scheduled:
            self.schedule.observe(res.loss)
            if s.es_best_bleu is None or res.bleu > s.es_best_bleu:
                s.es_best_bleu, s.bad_validations = res.bleu, 0
            else:
                s.bad_validations += 1
        self.progress.record("valid", {
            "step": s.step, "epoch": s.epoch, "dev_loss": res.loss, "dev_ppl": res.ppl,
            "dev_bleu": res.bleu, "best_bleu": s.best_bleu, "valid_s": round(res.seconds, 3),
            "scheduled": scheduled, "wall_s": round(self._elapsed(), 3),
        })  # fmt: skip
        self._save(best=best)
        return bool(t.early_stopping_patience and s.bad_validations >= t.early_stopping_patience)

    def _save(self, best: bool = False) -> None:
        s = self.state
        if s.step == self.saved_step and not best:
            return
        if self.meter.steps:
            self._flush()
        s.elapsed_seconds = self._elapsed()
        s.schedule = self.schedule.state_dict()
        s.data_order = self._data_order()
        s.scaler = dict(self.scaler.state_dict()) if self.scaler is not None else {}
        tensors, rng = capture_rng()
        ckpt.save_checkpoint(
            self.run_dir, s.step, self.model, self.optimizer, {"train": s.to_dict(), "rng": rng},
            tensors, keep_last=self.cfg.train.keep_last, best=best,
        )  # fmt: skip
        self.saved_step = s.step

    def _finish(self, status: str) -> str:
        """Final validation (unless this step was validated or training was interrupted) and
        checkpoint; an interrupt during the final validation still saves."""
        s = self.state
        if status != "interrupted" and s.step > 0 and s.validated_step != s.step:
            self._validate(scheduled=False)
            if self.signals.signum is not None:
                status = "interrupted"
        if s.step > 0:
            self._save()
        if status == "interrupted":
            log.info("stopped by a signal at step %d", s.step)
        return status
