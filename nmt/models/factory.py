"""The one place a :class:`~nmt.config.ModelConfig` becomes modules: assembly, tying, init."""

from __future__ import annotations

import torch
from torch import nn

from nmt.config import ModelConfig
from nmt.models.attention import CrossAttention, SelfAttention
from nmt.models.interface import Seq2Seq
from nmt.models.rnn import RNNSeq2Seq
from nmt.models.transformer import Transformer


def build_model(
    cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, shared_vocab: bool,
    pad_id: int = 0, initialize: bool = True,
) -> Seq2Seq:
    """Build and initialise the model ``cfg`` describes.

    Embeddings: the target embedding and the output layer share one matrix when
    ``cfg.tie_embeddings`` (Press & Wolf 2017); with a joint vocabulary (``shared_vocab``) the
    source embedding is that same matrix too (all three tied).

    ``initialize=False`` leaves the weights uninitialised (on the CPU), for a caller that loads
    every one of them from a checkpoint next: the modules are built on the meta device, where
    their inits cost nothing, and then get empty CPU storage (the build of the zh->en recipe's
    model took 0.03 instead of 0.08-0.10 s here). Not ``Module.to_empty``: its meta
    ``empty_like`` imports sympy.
    """
    if shared_vocab and src_vocab_size != tgt_vocab_size:
        raise ValueError(
            f"shared_vocab needs one vocabulary, got sizes {src_vocab_size} and {tgt_vocab_size}"
        )
    if initialize:
        model = _assemble(cfg, src_vocab_size, tgt_vocab_size, shared_vocab, pad_id, True)
        for embed in _embeddings(model):  # after the model init, which may touch them
            _init_embedding(embed, pad_id)
    else:
        with torch.device("meta"):
            model = _assemble(cfg, src_vocab_size, tgt_vocab_size, shared_vocab, pad_id, False)
        _materialize(model)
    if cfg.tie_embeddings:
        generator = model.generator
        assert isinstance(generator, nn.Linear)
        generator.weight = _embeddings(model)[1].weight
    return model


def _assemble(
    cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, shared_vocab: bool, pad_id: int,
    initialize: bool,
) -> Seq2Seq:
    """The modules (output layer untied), with our initialisation when ``initialize``.

    Without, the caller builds on the meta device, where the modules' own inits are free.
    """

    def embedding(size: int) -> nn.Embedding:
        # Uninitialised: hand nn.Embedding its weight, or its own init would call normal_,
        # whose meta version imports torch._dynamo (1.2 s).
        weight = None if initialize else torch.empty(size, cfg.d_model)
        return nn.Embedding(size, cfg.d_model, padding_idx=pad_id, _weight=weight)

    tgt_embed = embedding(tgt_vocab_size)
    tie_src = shared_vocab and cfg.tie_embeddings
    src_embed = tgt_embed if tie_src else embedding(src_vocab_size)
    model: Seq2Seq
    if cfg.type == "gru":
        model = RNNSeq2Seq(
            src_embed, tgt_embed, hidden_size=cfg.hidden_size, enc_layers=cfg.enc_layers,
            dec_layers=cfg.dec_layers, dropout=cfg.dropout, attention=cfg.attention,
            luong_score=cfg.luong_score, input_feeding=cfg.input_feeding, pad_id=pad_id,
        )
        if initialize:
            _init_gru(model)
    elif cfg.type == "transformer":
        model = Transformer(
            src_embed, tgt_embed, heads=cfg.heads, ff_size=cfg.ff_size, enc_layers=cfg.enc_layers,
            dec_layers=cfg.dec_layers, dropout=cfg.dropout, norm=cfg.norm,
            positions=cfg.positions, max_positions=cfg.max_positions, pad_id=pad_id,
        )
        if initialize:
            _init_transformer(model)
    else:  # pragma: no cover - config validation rejects other types
        raise ValueError(f"unknown model type {cfg.type!r}")
    return model


def _materialize(model: nn.Module) -> None:
    """Replace every meta parameter by an uninitialised CPU one; shared ones stay shared."""
    new: dict[int, nn.Parameter] = {}
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if id(param) not in new:
                storage = torch.empty(param.shape, dtype=param.dtype, device="cpu")
                new[id(param)] = nn.Parameter(storage, requires_grad=param.requires_grad)
            setattr(module, name, new[id(param)])
    # Buffers (the position table) are computed on the CPU even on the meta device.
    meta = [name for name, buffer in model.named_buffers() if buffer.is_meta]
    if meta:  # pragma: no cover - a new module with a meta buffer would need handling here
        raise RuntimeError(f"buffers left on the meta device: {meta}")


def _embeddings(model: Seq2Seq) -> tuple[nn.Embedding, nn.Embedding]:
    """The source and target embeddings (the same module when they are tied)."""
    if isinstance(model, Transformer):
        return model.src_embedder.embed, model.tgt_embedder.embed
    assert isinstance(model, RNNSeq2Seq)
    return model.encoder.embed, model.tgt_embed


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters; a tied matrix counts once."""
    params = {id(p): p for p in model.parameters() if p.requires_grad or not trainable_only}
    return sum(p.numel() for p in params.values())


def _init_transformer(model: nn.Module) -> None:
    """Xavier-uniform weights (Glorot & Bengio 2010), zero biases, unit LayerNorms.

    Fused projections (QKV, KV) are initialised per ``d_model x d_model`` block, so they start
    exactly like separate Q, K and V matrices would.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):  # learned positions
            nn.init.normal_(module.weight, std=module.embedding_dim**-0.5)
    for module in model.modules():  # after the loop above, which saw the fused matrices whole
        if isinstance(module, SelfAttention):
            _init_blocks(module.qkv)
        elif isinstance(module, CrossAttention):
            _init_blocks(module.kv)


def _init_blocks(fused: nn.Linear) -> None:
    """Xavier init of each ``in x in`` block of a fused projection, e.g. Q, K and V of QKV."""
    for block in fused.weight.split(fused.in_features, dim=0):
        nn.init.xavier_uniform_(block)


def _init_gru(model: nn.Module) -> None:
    """Xavier for input-side matrices, orthogonal recurrent matrices, zero biases.

    The recurrent matrix of each gate is orthogonal on its own (Saxe et al. 2014), which keeps
    the hidden state's scale through many steps at the start of training.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.GRU):
            for name, param in module.named_parameters():
                for gate in param.chunk(3, dim=0):  # reset, update, new
                    if name.startswith("weight_hh"):
                        nn.init.orthogonal_(gate)
                    elif name.startswith("weight_ih"):
                        nn.init.xavier_uniform_(gate)
                    else:
                        nn.init.zeros_(gate)


def _init_embedding(embed: nn.Embedding, pad_id: int) -> None:
    """N(0, 1/d): scaled by sqrt(d) (Transformer) the rows have unit variance, and tied logits
    start near unit scale. The padding row is zero (and gets no gradient from the lookup)."""
    nn.init.normal_(embed.weight, std=embed.embedding_dim**-0.5)
    with torch.no_grad():
        embed.weight[pad_id].zero_()
