"""Model types: one registration each, declaring what the rest of the code asks of a type.

``model.type`` in a config names an entry of :data:`MODEL_KINDS`. Building
(:func:`~nmt.models.factory.build_model`), FLOPs (:mod:`~nmt.models.flops`) and the longest
source the model can read (translate and validation truncate to it) all look the type up here,
so adding a model type is its module, one entry below and its ``Literal`` name in
``nmt.config.ModelConfig.type`` (the schema, which cannot import the models), plus its test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from nmt.config import ModelConfig
from nmt.models import flops
from nmt.models.init import init_gru, init_transformer
from nmt.models.interface import Seq2Seq
from nmt.models.rnn import RNNSeq2Seq
from nmt.models.transformer import Transformer


@dataclass(frozen=True)
class ModelKind:
    """What one model type provides.

    Attributes:
        assemble: ``(cfg, src_embed, tgt_embed, pad_id) -> model`` (output layer untied).
        initialize: the type's weight initialisation (embeddings are done by the factory).
        embeddings: the model's ``(source, target)`` embedding modules.
        forward_macs: ``(cfg, tgt_vocab_size, src_len, tgt_len)``: multiply-adds of one
            sentence's teacher-forced forward pass (see :mod:`nmt.models.flops`).
        position_limit: the longest sequence it reads, specials included; None: no limit.
    """

    assemble: Callable[[ModelConfig, nn.Embedding, nn.Embedding, int], Seq2Seq]
    initialize: Callable[[nn.Module], None]
    embeddings: Callable[[Seq2Seq], tuple[nn.Embedding, nn.Embedding]]
    forward_macs: Callable[[ModelConfig, int, int, int], float]
    position_limit: Callable[[ModelConfig], int | None]


def _gru(cfg: ModelConfig, src: nn.Embedding, tgt: nn.Embedding, pad_id: int) -> Seq2Seq:
    return RNNSeq2Seq(
        src, tgt, hidden_size=cfg.hidden_size, enc_layers=cfg.enc_layers,
        dec_layers=cfg.dec_layers, dropout=cfg.dropout, attention=cfg.attention,
        luong_score=cfg.luong_score, input_feeding=cfg.input_feeding, pad_id=pad_id,
    )


def _transformer(cfg: ModelConfig, src: nn.Embedding, tgt: nn.Embedding, pad_id: int) -> Seq2Seq:
    return Transformer(
        src, tgt, heads=cfg.heads, ff_size=cfg.ff_size, enc_layers=cfg.enc_layers,
        dec_layers=cfg.dec_layers, dropout=cfg.dropout, norm=cfg.norm,
        positions=cfg.positions, max_positions=cfg.max_positions, pad_id=pad_id,
        attention_dropout=cfg.attention_dropout, activation_dropout=cfg.activation_dropout,
        layer_dropout=cfg.layer_dropout,
    )


def _gru_embeddings(model: Seq2Seq) -> tuple[nn.Embedding, nn.Embedding]:
    assert isinstance(model, RNNSeq2Seq)
    return model.encoder.embed, model.tgt_embed


def _transformer_embeddings(model: Seq2Seq) -> tuple[nn.Embedding, nn.Embedding]:
    assert isinstance(model, Transformer)
    return model.src_embedder.embed, model.tgt_embedder.embed


MODEL_KINDS: dict[str, ModelKind] = {
    # A recurrent model reads any length: no position table.
    "gru": ModelKind(_gru, init_gru, _gru_embeddings, flops.gru_macs, lambda cfg: None),
    # The position table ends at model.max_positions.
    "transformer": ModelKind(_transformer, init_transformer, _transformer_embeddings,
                             flops.transformer_macs, lambda cfg: cfg.max_positions),
}


def model_kind(cfg: ModelConfig) -> ModelKind:
    """The registration of ``cfg.type``.

    Raises:
        ValueError: an unregistered type (config validation lets none through).
    """
    try:
        return MODEL_KINDS[cfg.type]
    except KeyError:
        raise ValueError(f"unknown model type {cfg.type!r}; known: {sorted(MODEL_KINDS)}") from None


def source_token_limit(cfg: ModelConfig, max_len: int) -> int:
    """The most source tokens a trained model is given: training saw none longer than
    ``data.max_len``, and the source also gets its ``</s>`` within the position limit."""
    positions = model_kind(cfg).position_limit(cfg)
    return max_len if positions is None else min(max_len, positions - 1)
