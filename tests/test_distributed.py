"""Data-parallel training: two CPU processes with gloo, started by torchrun as a user would.

The 2-process runs use tiny models on the bundled sample corpus, one thread per process and a
rendezvous on the loopback interface. What they must show: both ranks end with identical
parameters, one set of checkpoints and metrics is written, a stop by signal resumes to exactly
the uninterrupted run, and the loss curve equals a single-process run with the same global
batch (K processes x A accumulated batches = one process with K*A). They are marked slow
(about 55 CPU-seconds in all, most of it starting Python and torch in 11 processes).
"""

from __future__ import annotations

import json
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
from torch import nn
from typer.testing import CliRunner

from nmt import checkpoint as ckpt
from nmt.cli import app
from nmt.config import Config, dump_config, load_config
from nmt.datautil.build import build_vocab
from nmt.errors import ConfigError
from nmt.training import launch as launch_mod
from nmt.training.distributed import DIGEST_DIR_ENV, Dist, DistEnv, device_for, rank_seed
from nmt.training.launch import launch, torchrun_command
from nmt.training.signals import StopSignals
from nmt.training.state import capture_rng, pack_rank_rng, unpack_rank_rng
from nmt.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
STEPS = 30  # about 6 epochs of the sample corpus at this batch size

TINY = [
    f"data.train={SAMPLE / 'train.tsv'}", f"data.dev={SAMPLE / 'dev.tsv'}", "data.test=null",
    "data.src_tokenizer.type=char",
    "model.d_model=32", "model.enc_layers=1", "model.dec_layers=1", "model.heads=2",
    "model.ff_size=64", "model.dropout=0.2",
    "train.batch_tokens=400", "train.warmup_steps=10", "train.lr=3e-3", "train.log_every=1",
    "train.valid_every=10", "train.valid_bleu_sentences=8", "train.max_epochs=50",
    "train.threads=1", "decode.max_len_b=4",
]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}
    env.pop("WORLD_SIZE", None)
    if sys.platform == "linux":
        env["GLOO_SOCKET_IFNAME"] = "lo"  # never leave this machine
    return env


def _torchrun(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = torchrun_command(2, args)
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(**env), cwd=ROOT,
                          timeout=180)  # fmt: skip


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("vocab_run")
    build_vocab(load_config(None, [*TINY, f"run_dir={run}"]))
    return run / "vocab"


def _config(run: Path, vocab_dir: Path, *extra: str) -> Path:
    """Write ``run``'s config file (the shared vocabulary copied in); return its path."""
    if not (run / "vocab").exists():
        shutil.copytree(vocab_dir, run / "vocab")
    path = run.parent / f"{run.name}.yaml"
    path.write_text(dump_config(load_config(None, [*TINY, f"run_dir={run}", *extra])), "utf-8")
    return path


def _losses(run: Path) -> dict[int, float]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text("utf-8").splitlines()]
    steps = [r["step"] for r in records if r["event"] == "train"]
    assert len(steps) == len(set(steps)), "a step was logged twice: more than one rank logs"
    return {r["step"]: r["loss"] for r in records if r["event"] == "train"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, vocab_dir: Path) -> dict[str, Any]:
    """An uninterrupted 2-process run with dropout and gradient accumulation (``no_sync``)."""
    run = tmp_path_factory.mktemp("ddp") / "reference"
    cfg = _config(run, vocab_dir, "train.accum_steps=2", f"train.max_steps={STEPS}")
    digests = run.parent / "digests"
    digests.mkdir()
    proc = _torchrun("--config", str(cfg), **{DIGEST_DIR_ENV: str(digests)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"run": run, "digests": digests, "proc": proc}


# --------------------------------------------------------------------------- 2 processes


@pytest.mark.slow
def test_both_ranks_end_identical_and_only_rank_0_writes(reference: dict[str, Any]) -> None:
    digests = sorted(reference["digests"].iterdir())
    assert [p.name for p in digests] == ["rank0.sha256", "rank1.sha256"]
    assert digests[0].read_text() == digests[1].read_text()
    run = reference["run"]
    names = {p.name for p in (run / "checkpoints").iterdir()}
    assert {"best", "latest", "step-000020", "step-000030"} <= names <= {
        "best", "latest", "step-000010", "step-000020", "step-000030"}, names  # fmt: skip
    assert ckpt.read_checkpoint(run).state["train"]["world_size"] == 2
    assert sorted(_losses(run)) == list(range(1, STEPS + 1))
    # Every rank ran the same command; only rank 0 reports.
    assert reference["proc"].stdout.count(f"training max_steps at step {STEPS}") == 1
    # Rank 0 built the token cache; rank 1 mapped the same shards (no copy of its own).
    assert [p.name.split("-")[0] for p in sorted((run / "cache").iterdir())] == ["dev", "train"]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text("utf-8").splitlines()]
    assert all(r["tokens_per_s"] > 0 for r in records if r["event"] == "train")


@pytest.mark.slow
def test_sigterm_saves_once_and_resume_repeats_the_uninterrupted_run(
    reference: dict[str, Any], vocab_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "stopped"
    cfg = _config(run, vocab_dir, "train.accum_steps=2", "train.max_steps=100000")
    # The shortcut: nmt train --nproc 2 starts torchrun and forwards the signal to it.
    proc = subprocess.Popen([sys.executable, "-m", "nmt", "train", "--nproc", "2", "--config",
                             str(cfg)], env=_env(), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 143, err[-3000:]
    assert err.count(f"nmt train --resume {run}") == 1  # one message: rank 0's
    stopped = ckpt.read_checkpoint(run).step
    assert 3 <= stopped < STEPS
    resumed = _torchrun("--resume", str(run), "--max-steps", str(STEPS))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = _losses(reference["run"]), _losses(run)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step, loss in expected.items():  # every rank resumed its own dropout stream
        assert abs(got[step] - loss) <= 1e-6 * abs(loss), f"step {step}: {got[step]} != {loss}"


@pytest.mark.slow
def test_loss_curve_matches_one_process_with_the_same_global_batch(
    vocab_dir: Path, tmp_path: Path
) -> None:
    # Same global batch: 2 ranks x 1 batch = 1 process x 2 accumulated batches; the epoch's
    # batch count is even here, so the sharded and the accumulated steps hold the same batches.
    # No dropout: the ranks' dropout streams cannot equal one process's stream.
    # Tolerance: only the float order of the gradient reduction differs. With 2 ranks the
    # all-reduce adds the same two addends and the world-size factor is a power of two, so
    # the curves agree bit for bit on CPU; rel 1e-5 leaves room for other reduction orders
    # while still catching a wrong normalisation (which shows at the first step, at >1e-3).
    common = ("model.dropout=0.0", "train.max_steps=20")
    ddp = _torchrun("--config", str(_config(tmp_path / "ddp", vocab_dir, *common)))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = load_config(_config(tmp_path / "one", vocab_dir, *common, "train.accum_steps=2"))
    assert train(single).step == 20
    expected, got = _losses(tmp_path / "one"), _losses(tmp_path / "ddp")
    assert sorted(got) == sorted(expected) == list(range(1, 21))
    for step, loss in expected.items():
        assert abs(got[step] - loss) <= 1e-5 * abs(loss), f"step {step}: {got[step]} != {loss}"


# --------------------------------------------------------------------------- one process


def test_torchrun_environment_is_read_and_checked() -> None:
    assert DistEnv.from_env({}) == DistEnv(0, 0, 1)
    assert DistEnv.from_env({"WORLD_SIZE": "1", "RANK": "0"}) == DistEnv(0, 0, 1)
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}
    assert DistEnv.from_env(env) == DistEnv(3, 1, 4)
    with pytest.raises(ConfigError, match="WORLD_SIZE='two'"):
        DistEnv.from_env({"WORLD_SIZE": "two"})
    with pytest.raises(ConfigError, match="RANK=4 is outside WORLD_SIZE=4"):
        DistEnv.from_env({**env, "RANK": "4"})
    with pytest.raises(ConfigError, match="RANK is not set"):
        DistEnv.from_env({"WORLD_SIZE": "2"})


def test_one_process_never_touches_torch_distributed() -> None:
    d, model = Dist(), nn.Linear(2, 2)
    assert d.world == 1 and d.is_main and d.device is None
    assert d.agree_stop(15, True) == (15, True) and d.sum_tokens(7) == 7
    assert d.on_main(lambda: "x") == "x" and d.main_first(lambda: 3) == 3
    assert d.gather_to_main("s") == ["s"] and d.wrap(model) is model
    assert not torch.distributed.is_initialized()


def test_devices_that_processes_cannot_share_are_refused() -> None:
    env = DistEnv(1, 1, 2)
    assert device_for("cpu", env) == torch.device("cpu")
    for name in ("cuda:0", "mps"):
        with pytest.raises(ConfigError, match="cannot be shared"):
            device_for(name, env)


def test_rank_rng_states_round_trip_and_rank_seeds_differ() -> None:
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append(capture_rng())
    tensors, info = pack_rank_rng(states)
    assert "rank1.rng.torch" in tensors and set(info["ranks"]) == {"1"}
    for rank in (0, 1):
        got = unpack_rank_rng(tensors, info, rank)
        assert got is not None
        assert torch.equal(got[0]["rng.torch"], states[rank][0]["rng.torch"])
    assert unpack_rank_rng(tensors, info, 2) is None
    assert len({rank_seed(1, 0), rank_seed(1, 1), rank_seed(2, 0)}) == 3


def test_a_signal_repeated_within_the_window_is_one_request() -> None:
    with StopSignals(repeat_window_s=60.0) as signals:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # torchrun forwarding the same Ctrl-C
    assert signals.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt), StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)


def test_nproc_forwards_the_other_options_to_torchrun(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def fake_launch(nproc: int, args: list[str]) -> int:
        seen.update(nproc=nproc, args=args)
        return 143

    monkeypatch.setattr(launch_mod, "launch", fake_launch)
    args = ["--config", "c.yaml", "--seed", "5", "--set", "train.lr=1e-3", "--set", "seed=2"]
    result = CliRunner().invoke(app, ["train", "--nproc", "3", *args])
    assert result.exit_code == 143, result.output
    assert seen == {"nproc": 3, "args": args}
    cmd = torchrun_command(3, ["--config", "c.yaml"])
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3",
                       "-m", "nmt", "train", "--config", "c.yaml"]  # fmt: skip


def test_nproc_is_refused_under_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="drop --nproc"):
        launch(2, [])


def test_dist_timeout_is_a_validated_option() -> None:
    cfg: Config = load_config(None, ["train.dist_timeout_minutes=5"])
    assert cfg.train.dist_timeout_minutes == 5.0
    with pytest.raises(ConfigError, match="train.dist_timeout_minutes"):
        load_config(None, ["train.dist_timeout_minutes=0"])
