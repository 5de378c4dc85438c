"""The one place a :class:`~nmt.config.ModelConfig` becomes modules: assembly, tying, init."""

from __future__ import annotations

import torch
from torch import nn

from nmt.config import ModelConfig
from nmt.models.init import init_embedding
from nmt.models.interface import Seq2Seq
from nmt.models.registry import model_kind


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
        # After the model init, which may touch them.
        for embed in model_kind(cfg).embeddings(model):
            init_embedding(embed, pad_id)
    else:
        with torch.device("meta"):
            model = _assemble(cfg, src_vocab_size, tgt_vocab_size, shared_vocab, pad_id, False)
        _materialize(model)
    if cfg.tie_embeddings:
        generator = model.generator
        assert isinstance(generator, nn.Linear)
        generator.weight = model_kind(cfg).embeddings(model)[1].weight
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
    kind = model_kind(cfg)
    model = kind.assemble(cfg, src_embed, tgt_embed, pad_id)
    if initialize:
        kind.initialize(model)
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


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters; a tied matrix counts once."""
    params = {id(p): p for p in model.parameters() if p.requires_grad or not trainable_only}
    return sum(p.numel() for p in params.values())
