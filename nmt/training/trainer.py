"""The design card's trainer: the step loop, validation, early stopping and checkpoints.

The session's parts (data, model, optimizer, resume) are set up by
:class:`nmt.training.session.TrainingSession`; this module runs the steps.

Nothing in the step synchronises with the device: losses and the non-finite counters are
accumulated in device tensors and read once per log interval (:meth:`Trainer._flush`).

Under torchrun every process runs this same loop on its shard of each epoch's batches
(:mod:`nmt.training.distributed`); ``self.dist`` is a no-op for a single process.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from nmt import checkpoint as ckpt
from nmt import perf
from nmt.config import Config, TrainConfig
from nmt.datautil.batching import Batch, PairSource, collate
from nmt.datautil.vocab import PAD_ID
from nmt.errors import TrainingError
from nmt.runtime import autocast
from nmt.training.distributed import Dist, DistEnv, distributed_session
from nmt.training.loss import label_smoothed_loss, rdrop_loss
from nmt.training.optim import clip_gradients, optimizer_step, set_lr
from nmt.training.progress import Progress, plot_learning_curve
from nmt.training.session import TrainingSession
from nmt.training.signals import StopSignals
from nmt.training.state import capture_rng, pack_rank_rng
from nmt.training.validation import DevResult, ValidationAborted, validate

log = logging.getLogger(__name__)


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches: Sequence[Batch],
    total_tokens: int, cfg: TrainConfig, device: torch.device, dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler | None = None, dist: Dist | None = None,
) -> tuple[Tensor, Tensor]:
    """One optimizer update from the (CPU) ``batches``, their gradients accumulated.

    The trainer's step, also timed by ``scripts/benchmark.py``. Nothing here waits for the
    device. ``total_tokens`` is the target token count of the whole step (all batches, all
    ranks): dividing by it makes accumulation exact.

    Returns:
        The step's ``(loss, nll, tokens)`` sums over all ranks, and whether the update was
        skipped for a non-finite loss or gradient (both device tensors).
    """
    dist = dist or Dist()
    # DDP averages the ranks' gradients, hence the factor of world.
    divisor = total_tokens if dist.world == 1 else total_tokens / dist.world
    sums = torch.zeros(3, device=device)  # loss, nll, tokens
    for i, cpu_batch in enumerate(batches):
        b = cpu_batch.to(device)
        with dist.sync_grads(model, sync=i == len(batches) - 1):
            src, src_mask, tgt_in = b.src, b.src_mask, b.tgt_in
            if cfg.rdrop_alpha > 0:  # both passes in one forward: each copy its own dropout
                src, src_mask, tgt_in = (torch.cat([x, x]) for x in (src, src_mask, tgt_in))
            with autocast(device, dtype):
                logits = model(src, src_mask, tgt_in, teacher_forcing=cfg.teacher_forcing)
            if cfg.rdrop_alpha > 0:
                out = rdrop_loss(logits, b.tgt_out, cfg.label_smoothing, PAD_ID,
                                 cfg.rdrop_alpha)  # fmt: skip
            else:
                out = label_smoothed_loss(logits, b.tgt_out, cfg.label_smoothing, PAD_ID)
            # The log-softmax keeps its own output for the backward pass, not the logits:
            # dropping them here frees a (tokens x vocab) matrix, ~70 MB at the recipe's
            # batch, before the backward pass needs its memory.
            del logits
            loss = out.loss / divisor
            (scaler.scale(loss) if scaler is not None else loss).backward()
        sums += torch.stack([out.loss.detach(), out.nll.detach(), out.tokens.float()])
    # Global sums: the logged loss is the whole step's, and a non-finite loss on any rank
    # makes every rank skip the step (the gradients alone might all be finite).
    dist.all_reduce_(sums)
    norm = clip_gradients(optimizer, scaler, cfg.clip_norm)
    bad = ~(torch.isfinite(sums[0]) & torch.isfinite(norm))
    optimizer_step(optimizer, scaler, bad)
    return sums, bad


@dataclass(frozen=True)
class TrainResult:
    """How a training session ended.

    ``status``: ``finished`` (max_epochs), ``max_steps``, ``time_limit``, ``early_stopped`` or
    ``interrupted`` (then ``signal`` is the signal number and a checkpoint was saved).
    ``rank`` is this process's rank in a data-parallel run (0 otherwise): only rank 0 reports.
    """

    status: str
    step: int
    run_dir: str
    best_bleu: float | None
    checkpoint: Path | None
    signal: int | None = None
    rank: int = 0


def train(cfg: Config, resume: bool = False) -> TrainResult:
    """Train (or, with ``resume``, continue) the run ``cfg.run_dir``; started by torchrun,
    as one process of a data-parallel job."""
    perf.apply()  # as the CLI does, before the first kernel runs
    env = DistEnv.from_env()
    if env.world_size == 1:
        return Trainer(cfg, resume).run()
    with distributed_session(env, cfg.train) as dist:
        return Trainer(cfg, resume, dist).run()


class Trainer(TrainingSession):
    """A training session and its loop; :meth:`run` does the work."""

    # ----------------------------------------------------------------- the loop

    def run(self) -> TrainResult:
        self.session_start = self.interval_start = time.monotonic()
        self.elapsed_before = self.state.elapsed_seconds  # earlier sessions of this run
        self.interval_tokens = 0
        t = self.cfg.train
        # Snapshots still ahead: a resumed run does not go back for the ones it passed.
        root = ckpt.checkpoint_root(self.run_dir)
        self.pending_snapshots = sorted(
            m for m in set(t.snapshot_minutes)
            if 60 * m > self.elapsed_before and not (root / ckpt.snapshot_name(m)).is_dir()
        )
        per_epoch = len(self._epoch_batches(self.state.epoch))
        total = t.max_steps or math.ceil(per_epoch / t.accum_steps) * t.max_epochs
        self.progress = Progress(self.run_dir, total, self.state.step, self.dist.is_main)
        try:
            with StopSignals(repeat_window_s=2.0 if self.dist.world > 1 else 0.0) as self.signals:
                status = self._loop()
                status = self._finish(status)
        finally:
            self.progress.close()
        if self.dist.world > 1:
            self.dist.check_replicas(self.model)
        if self.dist.is_main:
            plot_learning_curve(self.run_dir)
        s = self.state
        latest = ckpt.find_checkpoint(self.run_dir)
        signum = self.signum if self.signum is not None else self.signals.signum
        return TrainResult(
            status, s.step, str(self.run_dir), s.best_bleu, latest, signum, self.dist.rank
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
            if self.pending_snapshots and self._elapsed() >= 60 * self.pending_snapshots[0]:
                self._snapshot()
            perf.trim_after_training_step(self.state.step, self.device)
            if self.state.step % t.log_every == 0:
                self._flush()
            if self.state.step % t.valid_every == 0 and self._validate(scheduled=True):
                return "early_stopped"

    def _stop_reason(self) -> str | None:
        t, s = self.cfg.train, self.state
        # The budget is the run's, not the session's (as snapshot_minutes): a recipe interrupted
        # and resumed trains as long as one that ran through. A finished run is extended by
        # resuming with a larger train.time_limit_minutes.
        time_up = bool(t.time_limit_minutes and self._elapsed() >= 60 * t.time_limit_minutes)
        # Signals and clocks are per process: every rank must stop at the same step.
        self.signum, time_up = self.dist.agree_stop(self.signals.signum, time_up)
        if self.signum is not None:
            return "interrupted"
        if t.early_stopping_patience and s.bad_validations >= t.early_stopping_patience:
            return "early_stopped"
        if t.max_steps and s.step >= t.max_steps:
            return "max_steps"
        if time_up:
            return "time_limit"
        return None

    def _step(self, group: list[tuple[PairSource, list[int]]]) -> None:
        """One update from the batches ``group`` (example indices into their corpus)."""
        batches = [collate(corpus, indices) for corpus, indices in group]
        local = sum(b.n_tgt_tokens for b in batches)  # known on the host: no device sync
        total = self.dist.sum_tokens(local)  # of all ranks
        set_lr(self.optimizer, self.schedule.lr(self.state.step + 1))
        sums, bad = train_step(self.train_model, self.optimizer, batches, total, self.cfg.train,
                               self.device, self.dtype, self.scaler, self.dist)  # fmt: skip
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
        res = self.dist.on_main(self._dev_result)  # rank 0 validates, the others wait
        if res is None:
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

    def _dev_result(self) -> DevResult | None:
        """Validate; None when a signal cut it short."""
        try:
            assert self.dev is not None  # _validate checked
            return validate(
                self.model, self.dev, self.processor, self.cfg, self.device, self.dtype,
                should_stop=lambda: self.signals.signum is not None,
            )  # fmt: skip
        except ValidationAborted:
            return None

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
        s.world_size = self.dist.world
        # Every rank's generators (their dropout differs), so each resumes its own stream.
        tensors, rng = pack_rank_rng(self.dist.gather_to_main(capture_rng()))
        self.dist.on_main(lambda: ckpt.save_checkpoint(
            self.run_dir, s.step, self.model, self.optimizer, {"train": s.to_dict(), "rng": rng},
            tensors, keep_last=self.cfg.train.keep_last, best=best,
        ))  # fmt: skip
        self.saved_step = s.step

    def _snapshot(self) -> None:
        """``train.snapshot_minutes``: keep the weights as they are now (rank 0 writes them;
        every rank holds the same weights, so no rank waits)."""
        due = [m for m in self.pending_snapshots if self._elapsed() >= 60 * m]
        self.pending_snapshots = self.pending_snapshots[len(due):]
        if self.dist.is_main:
            # Several passed at once (a long step or validation): this state is the latest's.
            if len(due) > 1:
                log.warning("no snapshot for minute(s) %s: the run was past them already",
                            ", ".join(f"{m:g}" for m in due[:-1]))  # fmt: skip
            path = ckpt.save_snapshot(self.run_dir, due[-1], self.model, self.state.step,
                                      self._elapsed())  # fmt: skip
            log.info("step %d: kept the model after %g minutes as %s", self.state.step,
                     due[-1], path)  # fmt: skip

    def _finish(self, status: str) -> str:
        """Final validation (unless this step was validated or training was interrupted) and
        checkpoint; an interrupt during the final validation still saves."""
        s = self.state
        if status != "interrupted" and s.step > 0 and s.validated_step != s.step:
            self._validate(scheduled=False)
            self.signum, _ = self.dist.agree_stop(self.signals.signum, False)
            if self.signum is not None:
                status = "interrupted"
        if s.step > 0:
            self._save()
        if status == "interrupted":
            log.info("stopped by a signal at step %d", s.step)
        return status
