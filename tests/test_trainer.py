"""The trainer on the bundled sample corpus with tiny models: exact resume, signals, NaN
losses, early stopping across a resume, and that training actually learns."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from nmt import checkpoint as ckpt
from nmt.config import Config, dump_config, load_config
from nmt.datautil.build import build_vocab
from nmt.errors import CheckpointError, TrainingError
from nmt.training import trainer as trainer_mod
from nmt.training.loss import LossSums, label_smoothed_loss
from nmt.training.trainer import Trainer, train
from nmt.training.validation import DevResult

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"

TINY = [
    f"data.train={SAMPLE / 'train.tsv'}",
    f"data.dev={SAMPLE / 'dev.tsv'}",
    f"data.test={SAMPLE / 'test.tsv'}",
    "model.d_model=32", "model.enc_layers=1", "model.dec_layers=1", "model.heads=2",
    "model.ff_size=64", "model.hidden_size=32", "model.dropout=0.2",
    "train.batch_tokens=400", "train.warmup_steps=10", "train.lr=3e-3", "train.log_every=1",
    "train.valid_every=4", "train.valid_bleu_sentences=8", "train.max_epochs=50",
    "train.threads=1", "decode.max_len_b=4",
]  # fmt: skip


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("vocab_run")
    build_vocab(load_config(None, [*TINY, f"run_dir={run}"]))
    return run / "vocab"


def tiny_config(run: Path, vocab_dir: Path, *extra: str) -> Config:
    """A config for ``run`` with the shared vocabulary copied in (build-vocab runs once)."""
    if not (run / "vocab").exists():
        shutil.copytree(vocab_dir, run / "vocab")
    return load_config(None, [*TINY, f"run_dir={run}", *extra])


def train_losses(run: Path) -> dict[int, float]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    steps = [r["step"] for r in records if r["event"] == "train"]
    assert len(steps) == len(set(steps)), "a step was logged twice"
    return {r["step"]: r["loss"] for r in records if r["event"] == "train"}


def valid_records(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "valid"]


def batches_per_epoch(cfg: Config) -> int:
    trainer = Trainer(cfg)
    return len(trainer._epoch_batches(0))


# --------------------------------------------------------------------------- exact resume


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, vocab_dir: Path) -> dict[str, Any]:
    """One uninterrupted run over a little more than an epoch."""
    probe = tiny_config(tmp_path_factory.mktemp("probe"), vocab_dir)
    per_epoch = batches_per_epoch(probe)
    total = per_epoch + 3
    run = tmp_path_factory.mktemp("reference")
    result = train(tiny_config(run, vocab_dir, f"train.max_steps={total}"))
    return {"run": run, "per_epoch": per_epoch, "total": total, "result": result}


@pytest.mark.parametrize("where", ["first", "mid", "boundary", "last"])
def test_resume_is_exact(where: str, reference: dict[str, Any], vocab_dir: Path,
                         tmp_path: Path) -> None:
    total, per_epoch = reference["total"], reference["per_epoch"]
    stop = {"first": 1, "mid": per_epoch // 2 + 1, "boundary": per_epoch, "last": total}[where]
    first = train(tiny_config(tmp_path, vocab_dir, f"train.max_steps={stop}"))
    assert first.status == "max_steps" and first.step == stop
    state = ckpt.read_checkpoint(tmp_path).state["train"]
    if where == "boundary":  # the position after an epoch's last batch is the next epoch's first
        assert (state["epoch"], state["batch_in_epoch"]) == (1, 0)
    resumed = train(tiny_config(tmp_path, vocab_dir, f"train.max_steps={total}"), resume=True)
    assert resumed.status == "max_steps" and resumed.step == total
    expected, got = train_losses(reference["run"]), train_losses(tmp_path)
    assert sorted(got) == list(range(1, total + 1))
    for step, loss in expected.items():
        assert abs(got[step] - loss) <= 1e-6 * abs(loss), f"step {step}: {got[step]} != {loss}"
    final = ckpt.read_checkpoint(tmp_path).state["train"]
    ref = ckpt.read_checkpoint(reference["run"]).state["train"]
    assert (final["epoch"], final["batch_in_epoch"]) == (ref["epoch"], ref["batch_in_epoch"])


def test_resume_is_exact_for_gru_with_scheduled_sampling_and_accumulation(
    vocab_dir: Path, tmp_path: Path
) -> None:
    extra = ["model.type=gru", "train.teacher_forcing=0.5", "train.accum_steps=2",
             "train.schedule=plateau", "train.valid_every=3"]  # fmt: skip
    whole = train(tiny_config(tmp_path / "a", vocab_dir, *extra, "train.max_steps=7"))
    assert whole.step == 7
    train(tiny_config(tmp_path / "b", vocab_dir, *extra, "train.max_steps=4"))
    train(tiny_config(tmp_path / "b", vocab_dir, *extra, "train.max_steps=7"), resume=True)
    expected, got = train_losses(tmp_path / "a"), train_losses(tmp_path / "b")
    assert set(got) == set(expected) == set(range(1, 8))
    assert all(abs(got[s] - expected[s]) <= 1e-6 * abs(expected[s]) for s in expected)


def test_reference_run_learns_and_leaves_a_self_contained_run_dir(
    reference: dict[str, Any],
) -> None:
    run = reference["run"]
    valid = valid_records(run)
    assert len(valid) >= 3 and valid[-1]["dev_loss"] < valid[0]["dev_loss"]
    losses = train_losses(run)
    assert losses[reference["total"]] < losses[1]
    for name in ("config.yaml", "vocab/src.vocab", "vocab/tgt.vocab", "checkpoints/latest",
                 "checkpoints/best", "metrics.jsonl"):  # fmt: skip
        assert (run / name).is_file(), name
    pytest.importorskip("matplotlib")
    assert (run / "learning_curve.png").stat().st_size > 0


def test_fresh_run_refuses_a_dir_with_checkpoints(reference: dict[str, Any],
                                                  vocab_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="--resume"):
        Trainer(tiny_config(reference["run"], vocab_dir))


def test_resume_from_another_working_directory(
    vocab_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    relative = [f"data.{split}=data/sample/{split}.tsv" for split in ("train", "dev", "test")]
    run = tmp_path / "run"
    assert train(tiny_config(run, vocab_dir, *relative, "train.max_steps=2")).step == 2
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # what `nmt train --resume RUN_DIR` does from there:
    resumed = train(load_config(run / "config.yaml", ["train.max_steps=4"]), resume=True)
    assert resumed.status == "max_steps" and resumed.step == 4
    assert sorted(train_losses(run)) == [1, 2, 3, 4]


# --------------------------------------------------------------------------- early stopping


def test_early_stopping_patience_survives_resume(
    vocab_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scheduled validations every 2 steps: BLEU 5 (best), 4, 3 -> patience 2 runs out at step 6.
    # The extra validation at the stop point (step 5) scores 50 but must not reset patience.
    bleu = {2: 5.0, 4: 4.0, 5: 50.0, 6: 3.0, 8: 2.0}

    def fake_validate(model: Any, dev: Any, processor: Any, cfg: Config, *a: Any,
                      **k: Any) -> DevResult:
        return DevResult(1.0, bleu[trainer_mod_state["trainer"].state.step], 8, 0.0)

    trainer_mod_state: dict[str, Trainer] = {}
    monkeypatch.setattr(trainer_mod, "validate", fake_validate)
    extra = ["train.valid_every=2", "train.early_stopping_patience=2"]
    for max_steps in (5, 100):
        t = Trainer(tiny_config(tmp_path, vocab_dir, *extra, f"train.max_steps={max_steps}"),
                    resume=max_steps == 100)
        trainer_mod_state["trainer"] = t
        result = t.run()
    assert result.status == "early_stopped" and result.step == 6
    assert result.best_bleu == 50.0  # the best checkpoint is the best of any validation
    assert ckpt.find_checkpoint(tmp_path, "best") == tmp_path / "checkpoints" / "step-000005"


# --------------------------------------------------------------------------- non-finite losses


def _nan_from(monkeypatch: pytest.MonkeyPatch, bad_calls: set[int] | int) -> None:
    calls = [0]

    def poisoned(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0,
                 pad_id: int = 0) -> LossSums:
        calls[0] += 1
        out = label_smoothed_loss(logits, target, smoothing, pad_id)
        hit = calls[0] in bad_calls if isinstance(bad_calls, set) else calls[0] >= bad_calls
        return LossSums(out.loss * math.nan, out.nll, out.tokens) if hit else out

    monkeypatch.setattr(trainer_mod, "label_smoothed_loss", poisoned)


def test_nan_losses_are_skipped_then_training_stops(
    vocab_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _nan_from(monkeypatch, 3)  # every step from the third on is NaN
    cfg = tiny_config(tmp_path, vocab_dir, "train.valid_every=2", "train.max_nonfinite=3",
                      "train.max_steps=20")
    trainer = Trainer(cfg)
    with pytest.raises(TrainingError, match=r"3 non-finite losses in a row") as info:
        trainer.run()
    assert "\n" not in str(info.value)
    assert trainer.state.step == 5  # steps 3, 4, 5 were skipped; no update was made
    saved = ckpt.read_checkpoint(tmp_path, "best")
    assert saved.step == 2
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, saved.model_tensors[name]), name


def test_a_single_nan_step_is_skipped_and_logged(
    vocab_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _nan_from(monkeypatch, {2})
    result = train(tiny_config(tmp_path, vocab_dir, "train.max_steps=4"))
    assert result.status == "max_steps"
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    skipped = {r["step"]: r["skipped"] for r in records if r["event"] == "train"}
    assert skipped == {1: 0, 2: 1, 3: 0, 4: 0}
    assert ckpt.read_checkpoint(tmp_path).state["train"]["nonfinite_total"] == 1


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_resume_continues(sig: int, vocab_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, vocab_dir, "train.max_steps=100000", "train.valid_every=100000")
    (tmp_path / "cfg.yaml").write_text(dump_config(cfg), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nmt", "train", "--config", str(tmp_path / "cfg.yaml")],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 128 + sig, err
    assert f"nmt train --resume {tmp_path}" in err
    step = ckpt.read_checkpoint(tmp_path).step
    assert step >= 3
    resumed = train(load_config(tmp_path / "config.yaml", [f"train.max_steps={step + 2}"]),
                    resume=True)
    assert resumed.status == "max_steps" and resumed.step == step + 2
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["max_steps"] == step + 2


# --------------------------------------------------------------------------- budget and cache


def test_time_limit_stops_cleanly_with_validation_and_checkpoint(
    vocab_dir: Path, tmp_path: Path
) -> None:
    result = train(tiny_config(tmp_path, vocab_dir, "train.time_limit_minutes=0.003",
                               "train.valid_every=1000"))  # fmt: skip
    assert result.status == "time_limit" and result.step >= 1
    assert valid_records(tmp_path)[-1]["step"] == result.step  # the final validation ran
    assert ckpt.read_checkpoint(tmp_path).step == result.step


def test_time_limit_counts_the_whole_run_across_resumes(vocab_dir: Path, tmp_path: Path) -> None:
    limit = "train.time_limit_minutes=0.003"
    first = train(tiny_config(tmp_path, vocab_dir, limit, "train.valid_every=1000"))
    assert first.status == "time_limit"
    # The budget is spent: a resume with the same limit takes no step (a per-session clock
    # would give it another 0.18 s of training).
    again = train(tiny_config(tmp_path, vocab_dir, limit, "train.valid_every=1000"), resume=True)
    assert again.status == "time_limit" and again.step == first.step
    longer = train(tiny_config(tmp_path, vocab_dir, "train.time_limit_minutes=0.006",
                               "train.valid_every=1000"), resume=True)  # fmt: skip
    assert longer.status == "time_limit" and longer.step > first.step


def test_second_run_reads_the_token_cache(
    reference: dict[str, Any], vocab_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nmt.training.data

    def no_tokenizing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("re-tokenized although the cache is valid")

    monkeypatch.setattr(nmt.training.data, "tokenize_stream", no_tokenizing)
    trainer = Trainer(tiny_config(reference["run"], vocab_dir), resume=True)
    assert len(trainer.corpus) > 300 and trainer.dev is not None
    assert sorted(p.name.split("-")[0] for p in (reference["run"] / "cache").iterdir()) == [
        "dev", "train"
    ]  # fmt: skip


def test_snapshots_keep_the_model_at_the_given_minutes(
    vocab_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from nmt.checkpoint.tensors import read_tensors
    from nmt.translate import Translator

    # A clock of 30 s a step: minute 1 is passed at step 2, minute 2.5 at step 5; 0.2 and 0.4
    # are both passed by step 1, which is kept as 0.4 alone.
    monkeypatch.setattr(Trainer, "_elapsed", lambda self: 30.0 * self.state.step)
    cfg = tiny_config(tmp_path, vocab_dir, "train.max_steps=6", "train.valid_every=1",
                      "train.keep_last=10", "train.snapshot_minutes=[0.2, 0.4, 1, 2.5, 99]")
    with caplog.at_level("WARNING"):
        assert train(cfg).step == 6
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.glob("minute-*")) == [
        "minute-0.4", "minute-1", "minute-2.5"
    ]  # fmt: skip
    assert "no snapshot for minute(s) 0.2" in caplog.text
    for name, step in [("minute-0.4", 1), ("minute-1", 2), ("minute-2.5", 5)]:
        snap = ckpt.read_checkpoint(root / name)
        assert snap.step == step and snap.state["snapshot_minutes"] == float(name[7:])
        same_step = read_tensors(root / ckpt.step_name(step) / ckpt.MODEL_FILE)[0]
        assert snap.model_tensors.keys() == same_step.keys()
        assert all(torch.equal(snap.model_tensors[k], same_step[k]) for k in same_step)
    assert ckpt.find_checkpoint(tmp_path).name == ckpt.step_name(6)  # snapshots are not latest
    assert Translator.load(tmp_path, device="cpu", checkpoint="minute-1").translate(["我喜欢茶。"])
    # A resumed run keeps the snapshots it has and writes none of those it passed.
    def snapshot_times() -> dict[str, int]:
        return {p.name: (p / ckpt.MODEL_FILE).stat().st_mtime_ns for p in root.glob("minute-*")}

    before = snapshot_times()
    train(tiny_config(tmp_path, vocab_dir, "train.max_steps=8", "train.valid_every=1",
                      "train.keep_last=10", "train.snapshot_minutes=[0.2, 0.4, 1, 2.5, 99]"),
          resume=True)  # fmt: skip
    assert snapshot_times() == before  # minute 0.2 stays missing: the run was past it


# --------------------------------------------------------------------------- one update


def _tiny_update_setup(seed: int = 0) -> tuple[Any, Any, Any, Any]:
    from nmt.config import ModelConfig, TrainConfig
    from nmt.datautil.batching import TokenizedCorpus
    from nmt.models.factory import build_model
    torch.manual_seed(seed)
    model = build_model(ModelConfig(type="transformer", d_model=16, heads=2, ff_size=32,
                                    enc_layers=1, dec_layers=1, dropout=0.0), 20, 20, False)
    cfg = TrainConfig(label_smoothing=0.1, clip_norm=1.0)
    gen = torch.Generator().manual_seed(seed)
    lists = [torch.randint(4, 20, (n,), generator=gen).tolist() for n in (3, 5, 4, 6, 2, 5)]
    corpus = TokenizedCorpus.from_lists(lists[:3], lists[3:])
    # Plain SGD: the update is linear in the gradient, so accumulated and whole-batch updates
    # can be compared closely (Adam's first step is about lr * sign(gradient)).
    return model, torch.optim.SGD(model.parameters(), lr=0.5), cfg, corpus


def test_train_step_accumulates_exactly_and_skips_non_finite_losses() -> None:
    from nmt.datautil.batching import collate
    from nmt.training.trainer import train_step

    cpu = torch.device("cpu")
    model_a, opt_a, cfg, corpus = _tiny_update_setup()
    model_b, opt_b, _, _ = _tiny_update_setup()
    whole = collate(corpus, [0, 1, 2])
    parts = [collate(corpus, [0]), collate(corpus, [1, 2])]
    assert sum(p.n_tgt_tokens for p in parts) == whole.n_tgt_tokens
    sums_a, bad_a = train_step(model_a, opt_a, [whole], whole.n_tgt_tokens, cfg, cpu, None)
    sums_b, bad_b = train_step(model_b, opt_b, parts, whole.n_tgt_tokens, cfg, cpu, None)
    assert not bad_a and not bad_b
    torch.testing.assert_close(sums_a, sums_b)
    assert sums_a[2] == whole.n_tgt_tokens
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5)

    before = [p.detach().clone() for p in model_a.parameters()]
    with torch.no_grad():
        model_a.generator.weight[5, 0] = float("nan")  # a NaN logit: a non-finite loss
    tied = [id(p) for p in model_a.parameters()].index(id(model_a.generator.weight))
    before[tied][5, 0] = math.nan
    sums, bad = train_step(model_a, opt_a, [whole], whole.n_tgt_tokens, cfg, cpu, None)
    assert bool(bad) and not torch.isfinite(sums[0])
    for p, old in zip(model_a.parameters(), before, strict=True):
        torch.testing.assert_close(p, old, equal_nan=True)  # the update was skipped


def test_rdrop_without_dropout_updates_as_the_plain_loss_and_with_dropout_differs() -> None:
    from dataclasses import replace

    from nmt.datautil.batching import collate
    from nmt.training.trainer import train_step

    cpu = torch.device("cpu")
    model_a, opt_a, cfg, corpus = _tiny_update_setup()
    model_b, opt_b, _, _ = _tiny_update_setup()
    whole = collate(corpus, [0, 1, 2])
    rdrop = replace(cfg, rdrop_alpha=1.0)
    # No dropout in the tiny model: both passes are equal, the KL is 0, the update the same.
    sums_a, _ = train_step(model_a, opt_a, [whole], whole.n_tgt_tokens, cfg, cpu, None)
    sums_b, _ = train_step(model_b, opt_b, [whole], whole.n_tgt_tokens, rdrop, cpu, None)
    torch.testing.assert_close(sums_a, sums_b)
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5)
    # With dropout the two passes differ: the KL term raises the loss above the plain one's.
    for model in (model_a, model_b):
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.3
    torch.manual_seed(7)
    plain, _ = train_step(model_a, opt_a, [whole], whole.n_tgt_tokens, cfg, cpu, None)
    torch.manual_seed(7)
    kl, _ = train_step(model_b, opt_b, [whole], whole.n_tgt_tokens, replace(cfg, rdrop_alpha=50.0),
                       cpu, None)
    assert kl[0] > plain[0] and kl[2] == plain[2] == whole.n_tgt_tokens
