"""Checkpoint averaging: the mean of known checkpoints, tied weights, loading, the command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from test_translate import build_run
from torch import nn
from typer.testing import CliRunner

from nmt.checkpoint import MODEL_FILE, list_checkpoints, save_checkpoint
from nmt.checkpoint.average import average_after_training, average_checkpoints
from nmt.checkpoint.tensors import read_tensors
from nmt.cli import app
from nmt.errors import CheckpointError, ConfigError
from nmt.translate import Translator


class Tied(nn.Module):
    """An embedding tied to an output projection, plus an integer buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(3, 2)
        self.out = nn.Linear(2, 3, bias=True)
        self.out.weight = self.embed.weight
        self.register_buffer("count", torch.tensor([7], dtype=torch.int64))


def save(run: Path, step: int, value: float) -> None:
    model = Tied()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    save_checkpoint(run, step, model, None, {}, keep_last=10)


def test_average_is_the_mean_and_keeps_ties(tmp_path: Path) -> None:
    for step, value in ((10, 1.0), (20, 2.0), (30, 6.0)):
        save(tmp_path, step, value)
    result = average_checkpoints(tmp_path, last=2)
    assert [p.name for p in result.sources] == ["step-000020", "step-000030"]
    assert result.path == tmp_path / "checkpoints" / "averaged" and result.step == 30
    tensors, meta = read_tensors(result.path / MODEL_FILE)
    assert torch.equal(tensors["embed.weight"], torch.full((3, 2), 4.0))
    assert torch.equal(tensors["out.bias"], torch.full((3,), 4.0))
    assert tensors["out.weight"] is tensors["embed.weight"]  # stored once, tied again
    assert "out.weight" in meta["aliases"] or "embed.weight" in meta["aliases"]
    assert tensors["count"].tolist() == [7]
    # The averaged directory is not a training checkpoint: never listed, never pruned.
    assert result.path not in list_checkpoints(tmp_path / "checkpoints")

    named = average_checkpoints(tmp_path, names=["step-000010", "step-000030"], output="ends")
    assert torch.equal(read_tensors(named.path / MODEL_FILE)[0]["out.bias"], torch.full((3,), 3.5))


def test_identical_checkpoints_average_to_themselves(tmp_path: Path) -> None:
    model = Tied()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, None, {}, keep_last=10)
    averaged = read_tensors(average_checkpoints(tmp_path, last=3).path / MODEL_FILE)[0]
    for name, tensor in model.state_dict().items():
        assert torch.equal(averaged[name], tensor), name


def test_refusals(tmp_path: Path) -> None:
    save(tmp_path, 10, 1.0)
    with pytest.raises(CheckpointError, match="keep_last >= 3"):
        average_checkpoints(tmp_path, last=3)
    with pytest.raises(ConfigError, match="not a usable checkpoint name"):
        average_checkpoints(tmp_path, last=1, output="latest")
    with pytest.raises(ConfigError, match="one of the two"):
        average_checkpoints(tmp_path, last=1, names=["step-000010"])
    with pytest.raises(CheckpointError, match="no such"):
        average_checkpoints(tmp_path, names=["step-000099"])
    other = nn.Linear(2, 2)
    save_checkpoint(tmp_path, 20, other, None, {}, keep_last=10)
    with pytest.raises(CheckpointError, match="different tensors"):
        average_checkpoints(tmp_path, last=2)
    assert average_after_training(tmp_path, 0) is None


def test_averaged_checkpoint_loads_in_translator(tmp_path: Path) -> None:
    base = build_run(tmp_path.parent / "translate-runs", "transformer")
    run = Path(shutil.copytree(base, tmp_path / "run"))
    model = Translator.load(run, device="cpu").model
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    save_checkpoint(run, 2, model, None, {}, keep_last=5)

    result = CliRunner().invoke(app, ["average", str(run), "--last", "2"])
    assert result.exit_code == 0, result.output
    assert "averaged 2 checkpoints" in result.stdout
    averaged = Translator.load(run, device="cpu", checkpoint="averaged")
    first = Translator.load(run, device="cpu", checkpoint="step-000001")
    expected = dict(first.model.named_parameters())
    for name, a in averaged.model.named_parameters():
        assert torch.allclose(a, 0.75 * expected[name], atol=1e-6), name
    assert averaged.translate(["我喜欢茶。"], strategy="greedy")[0] is not None

    missing = CliRunner().invoke(app, ["average", str(run), "--last", "9"])
    assert missing.exit_code == 4 and "keep_last >= 9" in missing.output


def test_average_last_needs_enough_kept_checkpoints() -> None:
    from nmt.config import config_from_dict

    with pytest.raises(ConfigError, match="keep_last >= 5"):
        config_from_dict({"train": {"average_last": 5, "keep_last": 2}})
    assert config_from_dict({"train": {"average_last": 5, "keep_last": 5}}).train.average_last == 5


def test_nmt_train_averages_at_the_end(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[1] / "data" / "sample"
    sets = [f"run_dir={tmp_path / 'run'}", f"data.train={sample / 'train.tsv'}",
            f"data.dev={sample / 'dev.tsv'}", "model.d_model=16", "model.enc_layers=1",
            "model.dec_layers=1", "model.heads=2", "model.ff_size=32", "train.batch_tokens=600",
            "train.valid_bleu_sentences=2", "train.valid_every=1", "decode.max_len_b=2",
            "train.keep_last=3", "train.average_last=3",
            "data.src_tokenizer.type=char"]  # fmt: skip
    args = ["train", "--max-steps", "2", "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, *(x for s in sets for x in ("--set", s))])
    assert result.exit_code == 0, result.output
    averaged = tmp_path / "run" / "checkpoints" / "averaged"
    assert f"averaged {averaged}" in result.stdout  # two checkpoints saved: both averaged
    assert len(read_tensors(averaged / MODEL_FILE)[0]) > 0
