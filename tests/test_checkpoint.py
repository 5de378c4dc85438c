"""Checkpoints: exact round trip, atomic publication, faults, and no unpickling ever."""

from __future__ import annotations

import errno
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from nmt import checkpoint as ckpt
from nmt.checkpoint import store
from nmt.errors import CheckpointError


class Tied(nn.Module):
    def __init__(self, vocab: int = 11, dim: int = 6) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.hidden = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, vocab)
        self.out.weight = self.emb.weight  # tied, like decoder input/output embeddings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(self.emb(x))))


def _trained(seed: int = 0) -> tuple[Tied, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = Tied()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.98))
    for _ in range(3):
        opt.zero_grad()
        model(torch.tensor([[1, 2, 3]])).sum().backward()
        opt.step()
    return model, opt


def _save(run: Path, step: int, model: nn.Module, opt: torch.optim.Optimizer, **kw: object) -> Path:
    return ckpt.save_checkpoint(run, step, model, opt, {"epoch": 1, "note": "x"}, **kw)  # type: ignore[arg-type]


def test_round_trip_restores_weights_optimizer_and_state(tmp_path: Path) -> None:
    model, opt = _trained()
    rng = {"rng.torch": torch.get_rng_state()}
    path = ckpt.save_checkpoint(tmp_path, 3, model, opt, {"epoch": 1}, rng, keep_last=2)
    assert path.name == "step-000003"
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step-000003\n"
    data = ckpt.read_checkpoint(tmp_path)
    fresh = Tied()
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=5.0)
    ckpt.restore(data, fresh, fresh_opt)
    assert fresh.out.weight is fresh.emb.weight  # still tied after loading
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert fresh_opt.param_groups[0]["lr"] == 1e-2
    assert fresh_opt.param_groups[0]["betas"] == (0.9, 0.98)
    # The next optimizer step is identical: state (moments, step counts) came back exactly.
    for m, o in ((model, opt), (fresh, fresh_opt)):
        o.zero_grad()
        m(torch.tensor([[4, 5]])).sum().backward()
        o.step()
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters(), strict=True)
    )
    assert data.step == 3 and data.state == {"epoch": 1}
    assert torch.equal(data.train_tensors["rng.torch"], rng["rng.torch"])


def test_keep_last_and_best_survive_pruning(tmp_path: Path) -> None:
    model, opt = _trained()
    _save(tmp_path, 1, model, opt, keep_last=2, best=True)
    for step in (2, 3, 4):
        _save(tmp_path, step, model, opt, keep_last=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best", "latest", "step-000001", "step-000003", "step-000004"]
    assert ckpt.find_checkpoint(tmp_path, "best") == tmp_path / "checkpoints" / "step-000001"
    # Re-saving the same step (e.g. right after a resume) replaces it cleanly.
    _save(tmp_path, 4, model, opt, keep_last=2)
    assert ckpt.read_checkpoint(tmp_path).step == 4


def test_disk_full_mid_save_keeps_previous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt = _trained()
    _save(tmp_path, 1, model, opt)
    real = store._write_bytes
    calls = []

    def full_disk(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:
            real(path, data[: len(data) // 2])  # half a file, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    monkeypatch.setattr(store, "_write_bytes", full_disk)
    with pytest.raises(CheckpointError) as info:
        _save(tmp_path, 2, model, opt)
    msg = str(info.value)
    assert "\n" not in msg and "No space left" in msg and "step-000001" in msg and "intact" in msg
    assert ckpt.read_checkpoint(tmp_path).step == 1
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-000001"]


def test_non_finite_weights_never_reach_disk(tmp_path: Path) -> None:
    model, opt = _trained()
    with torch.no_grad():
        model.hidden.bias[0] = float("nan")
    with pytest.raises(CheckpointError, match="hidden.bias"):
        _save(tmp_path, 1, model, opt)
    assert ckpt.find_checkpoint(tmp_path) is None


class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def test_malicious_pickles_are_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"model": _Payload(marker)})
    pt = tmp_path / "model.pt"
    pt.write_bytes(evil)
    with pytest.raises(CheckpointError, match="refused"):
        ckpt.read_checkpoint(pt)
    # The same bytes planted inside a real checkpoint directory.
    model, opt = _trained()
    path = _save(tmp_path / "run", 1, model, opt)
    for name in ("model.safetensors", "optim.safetensors"):
        original = (path / name).read_bytes()
        (path / name).write_bytes(evil)
        with pytest.raises(CheckpointError, match="not a safetensors file"):
            ckpt.read_checkpoint(tmp_path / "run")
        (path / name).write_bytes(original)
    torch.save({"x": _Payload(marker)}, path / "model.safetensors")  # a zip-format torch file
    with pytest.raises(CheckpointError):
        ckpt.read_checkpoint(path)
    assert not marker.exists()


def test_old_torch_is_refused() -> None:
    with pytest.raises(CheckpointError, match=r"torch >= 2\.10"):
        store._require_torch("2.9.1+cpu")
    store._require_torch("2.10.0")


_WRITER = textwrap.dedent(
    """
    import sys, torch
    from torch import nn
    from nmt import checkpoint as ckpt
    run = sys.argv[1]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))
    opt = torch.optim.Adam(model.parameters())
    step = 0
    found = ckpt.find_checkpoint(run)
    if found is not None:
        data = ckpt.read_checkpoint(run)
        ckpt.restore(data, model, opt)
        step = data.step
    while True:
        step += 1
        opt.zero_grad()
        model(torch.randn(4, 256)).sum().backward()
        opt.step()
        ckpt.save_checkpoint(run, step, model, opt, {"step": step}, keep_last=2, best=step % 3 == 0)
        print(step, flush=True)
    """
)


def test_sigkill_during_writes_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    rnd = random.Random(0)
    last = 0
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one new checkpoint is complete
        time.sleep(rnd.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = ckpt.read_checkpoint(tmp_path)
        model = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))
        ckpt.restore(data, model, torch.optim.Adam(model.parameters()))
        assert data.step > last
        last = data.step


# --------------------------------------------------------------------------- hostile inputs


def test_nan_weights_are_refused_at_load_naming_the_tensor(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from nmt.checkpoint.tensors import tensors_to_bytes

    model, opt = _trained()
    path = _save(tmp_path, 1, model, opt)
    tensors = load_file(path / "model.safetensors")
    tensors["hidden.weight"][0, 0] = float("inf")  # written by another tool: never saved by us
    (path / "model.safetensors").write_bytes(tensors_to_bytes(tensors, {"step": "1"}))
    with pytest.raises(CheckpointError) as info:
        ckpt.read_model_weights(path)
    msg = str(info.value)
    assert "hidden.weight" in msg and "NaN/inf" in msg and "\n" not in msg
    with pytest.raises(CheckpointError, match="hidden.weight"):
        ckpt.read_checkpoint(tmp_path)


@pytest.mark.parametrize("depth", [5_000, 33])
def test_deeply_nested_state_is_refused_in_one_line(tmp_path: Path, depth: int) -> None:
    model, opt = _trained()
    path = _save(tmp_path, 1, model, opt)
    nested = "[" * depth + "]" * depth
    (path / "state.json").write_text(
        '{"format": "nmt-checkpoint-v1", "step": 1, "optimizer": {}, "state": ' + nested + "}"
    )
    with pytest.raises(CheckpointError, match="nested deeper than 32 levels"):
        ckpt.read_checkpoint(tmp_path)


def test_brackets_inside_strings_do_not_count_as_depth(tmp_path: Path) -> None:
    model, opt = _trained()
    path = ckpt.save_checkpoint(tmp_path, 1, model, opt, {"note": "[" * 100 + '\\"{'})
    assert ckpt.read_checkpoint(path).state["note"] == "[" * 100 + '\\"{'


def test_oversized_or_malformed_state_is_refused(tmp_path: Path) -> None:
    from nmt.checkpoint import read

    model, opt = _trained()
    path = _save(tmp_path, 1, model, opt)
    state = path / "state.json"
    with state.open("wb") as f:
        f.truncate(read.MAX_STATE_BYTES + 1)
    with pytest.raises(CheckpointError, match="larger than 16 MiB"):
        ckpt.read_checkpoint(path)
    state.write_text('{"format": "nmt-checkpoint-v1", "step": "1", "state": {}, "optimizer": {}}')
    with pytest.raises(CheckpointError, match="step: expected a count"):
        ckpt.read_checkpoint(path)


@pytest.mark.parametrize(
    "content", ["../../etc\n", "step-000001/../../x", "\xff\xfe", "step-000009"]
)
def test_invalid_best_pointer_is_reported_and_latest_used(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    model, opt = _trained()
    _save(tmp_path, 1, model, opt)
    (tmp_path / "checkpoints" / "best").write_text(content, encoding="latin-1")
    with caplog.at_level("INFO"):
        found = ckpt.checkpoint_for_decoding(tmp_path, "best")
    assert found.name == "step-000001"
    text = caplog.text
    assert "invalid pointer" in text and "best" in text
    assert "best pointer is invalid" in text and "using the latest, step-000001" in text
    assert "no best checkpoint yet" not in text


def test_invalid_latest_pointer_falls_back_to_newest_complete(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, opt = _trained()
    _save(tmp_path, 1, model, opt)
    _save(tmp_path, 2, model, opt)
    (tmp_path / "checkpoints" / "latest").write_text("../../etc\n")
    with caplog.at_level("WARNING"):
        assert ckpt.find_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-000002"
    assert "invalid pointer" in caplog.text and "step-000002" in caplog.text
