"""build_model: every config variant builds and runs; tying shares one Parameter object."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import torch

from nmt.config import ModelConfig
from nmt.models.factory import build_model, count_parameters
from nmt.models.rnn import RNNSeq2Seq
from nmt.models.transformer import Transformer


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and far faster when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL = dict(d_model=16, hidden_size=16, heads=2, ff_size=32, enc_layers=1, dec_layers=1)


def embeddings(model) -> tuple[torch.nn.Embedding, torch.nn.Embedding]:
    if isinstance(model, Transformer):
        return model.src_embedder.embed, model.tgt_embedder.embed
    assert isinstance(model, RNNSeq2Seq)
    return model.encoder.embed, model.tgt_embed


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_tie_embeddings_shares_the_target_embedding_with_the_output_layer(kind: str) -> None:
    model = build_model(ModelConfig(type=kind, **SMALL), 30, 40, shared_vocab=False)
    src, tgt = embeddings(model)
    assert model.generator.weight is tgt.weight
    assert src.weight is not tgt.weight and src.num_embeddings == 30


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_a_joint_vocabulary_ties_all_three(kind: str) -> None:
    model = build_model(ModelConfig(type=kind, **SMALL), 40, 40, shared_vocab=True)
    src, tgt = embeddings(model)
    assert src.weight is tgt.weight is model.generator.weight
    untied = build_model(ModelConfig(type=kind, **SMALL), 40, 40, shared_vocab=False)
    assert count_parameters(untied) - count_parameters(model) == 40 * 16  # counted once


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_untied_models_have_three_matrices(kind: str) -> None:
    cfg = ModelConfig(type=kind, tie_embeddings=False, **SMALL)
    model = build_model(cfg, 40, 40, shared_vocab=True)
    src, tgt = embeddings(model)
    assert len({id(src.weight), id(tgt.weight), id(model.generator.weight)}) == 3


def test_a_joint_vocabulary_needs_equal_sizes() -> None:
    with pytest.raises(ValueError, match="shared_vocab"):
        build_model(ModelConfig(**SMALL), 30, 40, shared_vocab=True)


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_the_padding_row_starts_at_zero(kind: str) -> None:
    model = build_model(ModelConfig(type=kind, **SMALL), 30, 40, shared_vocab=False, pad_id=0)
    for embed in embeddings(model):
        assert torch.all(embed.weight[0] == 0) and embed.padding_idx == 0
        assert embed.weight[1:].std() > 0


def test_count_parameters_matches_a_hand_count() -> None:
    cfg = ModelConfig(type="transformer", tie_embeddings=False, **SMALL)
    model = build_model(cfg, 30, 40, shared_vocab=False)
    d, ff = 16, 32
    attention = 4 * (d * d + d)
    encoder = attention + (d * ff + ff + ff * d + d) + 2 * 2 * d
    decoder = 2 * attention + (d * ff + ff + ff * d + d) + 3 * 2 * d
    expected = 30 * d + 40 * d + 40 * d + encoder + decoder + 2 * 2 * d  # + final norms
    assert count_parameters(model) == expected


GRU_VARIANTS = [
    dict(attention=a, luong_score=s, input_feeding=f, enc_layers=e, dec_layers=dl)
    for a, s, f, e, dl in itertools.product(
        ["bahdanau", "luong"], ["dot", "general", "concat"], [True, False], [1, 2], [1, 2]
    )
    if a == "luong" or s == "general"
]
TRANSFORMER_VARIANTS = [
    dict(norm=n, positions=p, tie_embeddings=t)
    for n, p, t in itertools.product(["pre", "post"], ["sinusoidal", "learned"], [True, False])
]


@pytest.mark.parametrize(
    "settings",
    [dict(type="gru", **v) for v in GRU_VARIANTS]
    + [dict(type="transformer", **v) for v in TRANSFORMER_VARIANTS],
)
def test_every_variant_builds_trains_and_steps(settings: dict) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(**{**SMALL, **settings, "dropout": 0.1})
    model = build_model(cfg, 30, 40, shared_vocab=False)
    src = torch.tensor([[5, 6, 7], [8, 9, 0]])
    mask = src != 0
    tgt_in = torch.tensor([[2, 5, 6, 7], [2, 8, 0, 0]])
    logits = model(src, mask, tgt_in)
    assert logits.shape == (2, 4, 40) and torch.isfinite(logits).all()
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    step_logits, _, weights = model.decode_step(src[:, 0], model.encode(src, mask, True))
    assert step_logits.shape == (2, 40) and weights is not None and weights.shape == (2, 3)


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_uninitialised_build_loads_to_the_same_model(kind: str) -> None:
    """Built on the meta device: after loading, the same model (ties and positions too)."""
    torch.manual_seed(0)
    trained = build_model(ModelConfig(type=kind, **SMALL), 30, 40, shared_vocab=False).eval()
    bare = build_model(ModelConfig(type=kind, **SMALL), 30, 40, False, initialize=False).eval()
    assert all(t.device.type == "cpu" for t in [*bare.parameters(), *bare.buffers()])
    assert bare.generator.weight is embeddings(bare)[1].weight  # still tied
    assert embeddings(bare)[0].weight is not embeddings(bare)[1].weight
    bare.load_state_dict(trained.state_dict(), strict=True)
    src = torch.randint(4, 30, (3, 5))
    tgt = torch.randint(4, 40, (3, 4))
    mask = torch.ones(3, 5, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(bare(src, mask, tgt), trained(src, mask, tgt))


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_uninitialised_build_keeps_a_joint_vocabulary_tied(kind: str) -> None:
    bare = build_model(ModelConfig(type=kind, **SMALL), 40, 40, True, initialize=False)
    src, tgt = embeddings(bare)
    assert src.weight is tgt.weight is bare.generator.weight


def test_uninitialised_build_computes_the_position_table() -> None:
    cfg = ModelConfig(type="transformer", **SMALL)
    built, bare = build_model(cfg, 30, 40, False), build_model(cfg, 30, 40, False, False)
    assert isinstance(built, Transformer) and isinstance(bare, Transformer)
    assert torch.equal(bare.tgt_embedder.table, built.tgt_embedder.table)
    assert torch.equal(bare.src_embedder.table, built.src_embedder.table)


def test_uninitialised_build_imports_nothing_heavy() -> None:
    """Some meta-device ops import torch._dynamo (1.2 s) or sympy (0.7 s): start-up time."""
    code = (
        "import sys\n"
        "from nmt.config import ModelConfig\n"
        "from nmt.models.factory import build_model\n"
        "for kind in ('transformer', 'gru'):\n"
        "    build_model(ModelConfig(type=kind), 60, 50, False, initialize=False)\n"
        "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
