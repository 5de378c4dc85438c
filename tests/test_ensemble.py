"""Ensembles: the mean of the members' log-probabilities at every step, decoded by the same
searches as one model; ``--checkpoint a,b`` loads one from checkpoints of a run or of runs
with the same vocabularies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nmt.config import ModelConfig
from nmt.decoding import beam_search, greedy_search
from nmt.errors import CheckpointError, ConfigError
from nmt.models.ensemble import Ensemble
from nmt.models.factory import build_model
from nmt.translate import Translator
from nmt.translate.translator import ensemble_members

VOCAB = 24


def tiny(kind: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "transformer":
        cfg = ModelConfig(type="transformer", d_model=16, heads=2, ff_size=32, enc_layers=1,
                          dec_layers=1, dropout=0.0)  # fmt: skip
    else:
        cfg = ModelConfig(type="gru", d_model=12, hidden_size=16, enc_layers=1, dec_layers=1,
                          dropout=0.0)  # fmt: skip
    return build_model(cfg, VOCAB, VOCAB, False).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    return src, src != 0


def test_a_step_scores_the_mean_of_the_members_log_probabilities() -> None:
    members = [tiny("transformer", 0), tiny("transformer", 1), tiny("gru", 2)]
    ensemble = Ensemble(members).eval()
    src, mask = batch()
    prev = torch.tensor([2, 2])  # <s>
    with torch.no_grad():
        got, state, attn = ensemble.decode_step(prev, ensemble.encode(src, mask, True))
        parts = []
        for m in members:
            logits, _, a = m.decode_step(prev, m.encode(src, mask, True))
            parts.append((F.log_softmax(logits, -1), a))
    torch.testing.assert_close(got, sum(lp for lp, _ in parts) / 3)
    torch.testing.assert_close(attn, sum(a for _, a in parts) / 3)
    assert len(state.members) == 3
    with pytest.raises(ValueError, match="at least two"):
        Ensemble(members[:1])


@pytest.mark.parametrize("kind", ["transformer", "gru"])
def test_a_model_twice_decodes_as_the_model(kind: str) -> None:
    model = tiny(kind, 3)
    twice = Ensemble([model, model]).eval()
    src, mask = batch()
    alone, both = greedy_search(model, src, mask), greedy_search(twice, src, mask)
    assert [h[0].tokens for h in alone] == [h[0].tokens for h in both]
    alone, both = beam_search(model, src, mask, beam_size=3), beam_search(twice, src, mask,
                                                                           beam_size=3)
    assert [[x.tokens for x in h] for h in alone] == [[x.tokens for x in h] for h in both]
    for a, b in zip(alone, both, strict=True):
        assert a[0].score == pytest.approx(b[0].score, abs=1e-4)


def test_two_different_members_change_the_search() -> None:
    src, mask = batch()
    a, b = tiny("transformer", 4), tiny("transformer", 5)
    pair = Ensemble([a, b]).eval()
    scores = [greedy_search(m, src, mask)[0][0].score for m in (a, b, pair)]
    assert len({round(s, 4) for s in scores}) == 3


def test_member_names() -> None:
    assert ensemble_members("best") == ["best"]
    assert ensemble_members(" best , minute-25") == ["best", "minute-25"]
    with pytest.raises(ConfigError, match="empty name"):
        ensemble_members("best,,latest")
    with pytest.raises(ConfigError, match="best named twice"):
        ensemble_members("best,best")


def perturbed_copy(run: Path, to: Path, seed: int) -> Path:
    """A copy of ``run`` whose checkpoints' weights are moved a little: another member."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    shutil.copytree(run, to)
    gen = torch.Generator().manual_seed(seed)
    for weights in to.glob("checkpoints/*/model.safetensors"):
        with safe_open(weights, "pt") as f:
            metadata = f.metadata()
        tensors = load_file(weights)
        save_file({k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point()
                   else v for k, v in tensors.items()}, weights, metadata)  # fmt: skip
    return to


def test_checkpoints_of_runs_with_the_same_vocabularies_load_as_an_ensemble(
        quickstart_run: Path, tmp_path: Path) -> None:  # fmt: skip
    sentences = ["我们走吧。", "他是谁？"]
    best = Translator.load(quickstart_run, device="cpu")
    # Another run's directory stands for its best checkpoint; a checkpoint directory for itself.
    same = Translator.load(quickstart_run, device="cpu", checkpoint=f"best,{quickstart_run}")
    assert isinstance(same.model, Ensemble) and len(same.model.members) == 2
    assert same.translate(sentences, strategy="greedy") == \
        best.translate(sentences, strategy="greedy")  # fmt: skip
    other = perturbed_copy(quickstart_run, tmp_path / "other", seed=0)
    step = next((other / "checkpoints").glob("step-*"))
    pair = Translator.load(quickstart_run, device="cpu", checkpoint=f"best,{step}")
    got = pair.translate(sentences, strategy="beam", return_details=True)
    alone = best.translate(sentences, strategy="beam", return_details=True)
    assert len(got) == 2 and all(t.translation for t in got)
    assert [t.score for t in got] != [t.score for t in alone]


def test_a_run_with_other_vocabularies_is_refused(quickstart_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(quickstart_run, other)
    vocab = other / "vocab" / "tgt.vocab"
    vocab.write_text(vocab.read_text(encoding="utf-8") + "extra\t1\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match="other vocabularies"):
        Translator.load(quickstart_run, device="cpu", checkpoint=f"best,{other}")


def test_the_command_line_decodes_an_ensemble_one_line_per_input(quickstart_run: Path,
                                                                 tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nmt.cli import app

    other = perturbed_copy(quickstart_run, tmp_path / "other", seed=1)
    result = CliRunner().invoke(app, ["translate", "--model", str(quickstart_run),
                                      "--checkpoint", f"best,{other}", "--strategy", "greedy"],
                                input="我们走吧。\n\n他是谁？\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3
