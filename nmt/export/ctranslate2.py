"""A Transformer run as a CTranslate2 model (``nmt export RUN_DIR --to ctranslate2 OUT_DIR``).

:class:`TransformerRunConverter` is a ``ctranslate2.converters.Converter``: its ``_load`` maps
every weight of :class:`nmt.models.transformer.Transformer` onto a ``TransformerSpec``, and
CTranslate2's ``convert`` validates, quantizes and writes it. The mapping, part by part:

* embeddings ``E[y] · sqrt(d_model)``: the spec's ``scale_embeddings`` (its default); source and
  target matrices as they are (one matrix when tied, which CTranslate2 stores once);
* positions: our table as explicit ``position_encodings`` (learned, or the sinusoidal table,
  whose sin/cos columns interleave where CTranslate2's built-in one puts all sines first and
  starts at position 1);
* attention: the fused self-attention QKV (rows q, k, v, each heads × head_dim) and the
  cross-attention Q and fused KV are CTranslate2's own layouts, so they are copied; queries
  are scaled by ``1/sqrt(head_dim)`` on both sides;
* layer norms: each sublayer's before it (pre-norm) or after the residual sum (post-norm), the
  stacks' final norms for pre-norm, ``eps`` from the modules; ReLU feed-forwards; every bias;
* the output projection (no bias), tied or not; the cross-attention returned for ``<unk>``
  replacement and plots is the last layer's averaged over heads (``alignment_heads=0``), as
  nmt's;
* the source gets ``</s>`` appended (``add_source_eos``), decoding starts from ``<s>``.

Beside the model it writes what nmt's text processing needs (see
:mod:`nmt.translate.ctranslate2_engine`, which reads it): the run's ``config.yaml`` and
``vocab/`` files, jieba user dictionaries copied in, and ``nmt_export.json``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
from ctranslate2.converters import Converter
from ctranslate2.specs import Activation, TransformerSpec
from torch import Tensor, nn

from nmt.checkpoint import checkpoint_for_decoding
from nmt.config import Config, dump_config, replace
from nmt.datautil.pipeline import VOCAB_DIR, TextProcessor, vocab_layout
from nmt.datautil.vocab import BOS_ID, EOS_ID, UNK_ID
from nmt.errors import ConfigError
from nmt.models.attention import CrossAttention, SelfAttention
from nmt.models.registry import model_kind, source_token_limit
from nmt.models.transformer import DecoderLayer, Embedder, EncoderLayer, FeedForward, Transformer
from nmt.translate import Translator
from nmt.translate.ctranslate2_engine import MANIFEST, ExportManifest
from nmt.translate.translator import ensemble_members

__all__ = ["QUANTIZATIONS", "ExportReport", "TransformerRunConverter", "export_ctranslate2"]

QUANTIZATIONS: tuple[str, ...] = tuple(ctranslate2.specs.model_spec.ACCEPTED_MODEL_TYPES)


def _array(t: Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _set_linear(spec: Any, linear: nn.Module) -> None:
    assert isinstance(linear, nn.Linear)
    spec.weight = _array(linear.weight)
    if linear.bias is not None:
        spec.bias = _array(linear.bias)


def _set_norm(spec: Any, norm: nn.Module) -> None:
    assert isinstance(norm, nn.LayerNorm)
    spec.gamma, spec.beta = _array(norm.weight), _array(norm.bias)


def _set_ffn(spec: Any, ff: FeedForward, norm: nn.Module) -> None:
    first, activation, second = ff
    if not isinstance(activation, nn.ReLU):  # the spec below declares ReLU
        raise ConfigError(f"cannot export a feed-forward activation {type(activation).__name__}")
    _set_norm(spec.layer_norm, norm)
    _set_linear(spec.linear_0, first)
    _set_linear(spec.linear_1, second)


def _set_self_attention(spec: Any, attn: SelfAttention, norm: nn.Module) -> None:
    _set_norm(spec.layer_norm, norm)
    _set_linear(spec.linear[0], attn.qkv)  # rows: q, k, v, as CTranslate2 fuses them
    _set_linear(spec.linear[1], attn.out)


def _set_cross_attention(spec: Any, attn: CrossAttention, norm: nn.Module) -> None:
    _set_norm(spec.layer_norm, norm)
    _set_linear(spec.linear[0], attn.q)
    _set_linear(spec.linear[1], attn.kv)  # rows: k, v
    _set_linear(spec.linear[2], attn.out)


def _set_inputs(spec: Any, embedder: Embedder) -> None:
    """Token embeddings and our position table (never CTranslate2's own sinusoids)."""
    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    embeddings.weight = _array(embedder.embed.weight)
    table = embedder.table if embedder.learned is None else embedder.learned.weight
    spec.position_encodings.encodings = _array(table)


def _layer_norm_eps(model: Transformer) -> float:
    eps = {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}
    if len(eps) != 1:  # CTranslate2 has one epsilon per model
        raise ConfigError(f"cannot export layer norms with different eps: {sorted(eps)}")
    return eps.pop()


def transformer_spec(model: Transformer, cfg: Config, processor: TextProcessor) -> Any:
    """The ``ctranslate2.specs.TransformerSpec`` of ``model`` (see the module docstring)."""
    m = cfg.model
    pre = m.norm == "pre"
    spec = TransformerSpec.from_config(
        (m.enc_layers, m.dec_layers), m.heads, pre_norm=pre, activation=Activation.RELU,
        alignment_layer=-1, alignment_heads=0,  # the last layer, averaged over its heads
    )
    encoder, decoder = spec.encoder, spec.decoder
    _set_inputs(encoder, model.src_embedder)
    _set_inputs(decoder, model.tgt_embedder)
    for layer_spec, layer in zip(encoder.layer, model.encoder_layers, strict=True):
        assert isinstance(layer, EncoderLayer)
        _set_self_attention(layer_spec.self_attention, layer.self_attn, layer.norm1)
        _set_ffn(layer_spec.ffn, layer.ff, layer.norm2)
    for layer_spec, layer in zip(decoder.layer, model.decoder_layers, strict=True):
        assert isinstance(layer, DecoderLayer)
        _set_self_attention(layer_spec.self_attention, layer.self_attn, layer.norm1)
        _set_cross_attention(layer_spec.attention, layer.cross_attn, layer.norm2)
        _set_ffn(layer_spec.ffn, layer.ff, layer.norm3)
    if pre:  # post-norm stacks end with their last sublayer's norm: no final one
        _set_norm(encoder.layer_norm, model.encoder_norm)
        _set_norm(decoder.layer_norm, model.decoder_norm)
    _set_linear(decoder.projection, model.generator)
    tgt = processor.tgt_vocab
    spec.config.layer_norm_epsilon = _layer_norm_eps(model)
    spec.config.add_source_eos = True  # as nmt's collate_src
    spec.config.unk_token = tgt.id_to_token(UNK_ID)
    spec.config.bos_token = spec.config.decoder_start_token = tgt.id_to_token(BOS_ID)
    spec.config.eos_token = tgt.id_to_token(EOS_ID)
    spec.register_source_vocabulary(processor.src_vocab.tokens)
    spec.register_target_vocabulary(tgt.tokens)
    return spec


class TransformerRunConverter(Converter):
    """CTranslate2's converter for a loaded nmt Transformer (``convert(output_dir, ...)``)."""

    def __init__(self, model: Transformer, config: Config, processor: TextProcessor) -> None:
        self.model, self.config, self.processor = model, config, processor

    def _load(self) -> Any:
        return transformer_spec(self.model, self.config, self.processor)


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_ctranslate2` wrote."""

    out_dir: Path
    checkpoint: Path
    quantization: str | None

    def format(self) -> str:
        weights = self.quantization or "float32"
        return (f"exported {self.checkpoint} to {self.out_dir} (CTranslate2, {weights} "
                f"weights; config.yaml and vocab/ beside it); translate with: nmt translate "
                f"--engine ctranslate2 --model {self.out_dir}")  # fmt: skip


def export_ctranslate2(
    run_dir: Path, cfg: Config, out_dir: Path, *, quantization: str | None = None,
    checkpoint: str | Path = "best", force: bool = False,
) -> ExportReport:
    """Convert the Transformer of ``run_dir`` (config ``cfg``) and write ``out_dir``.

    ``out_dir`` is built beside its final place and renamed into it, so an interrupted export
    leaves no half-written model there.

    Raises:
        ConfigError: an unknown quantization, or ``out_dir`` is there and not empty (without
            ``force``).
        CheckpointError: the run's checkpoint, vocabulary or weights are missing or broken.
    """
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ConfigError(f"--quantization: expected one of {', '.join(QUANTIZATIONS)}, "
                          f"got {quantization!r}")  # fmt: skip
    if out_dir.exists() and not force and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"{out_dir} exists; choose another directory or pass --force "
                          f"to replace it")  # fmt: skip
    if len(ensemble_members(checkpoint)) > 1:
        raise ConfigError(f"--checkpoint {checkpoint}: an ensemble cannot be exported; export "
                          "one checkpoint (or average them first: nmt average)")
    ckpt = checkpoint_for_decoding(run_dir, checkpoint)
    translator = Translator.load(run_dir, device="cpu", checkpoint=ckpt, precision="fp32")
    model = translator.model
    assert isinstance(model, Transformer)  # the caller refused every other model type
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.export-{os.getpid()}"
    try:
        TransformerRunConverter(model, cfg, translator.processor).convert(
            str(staging), quantization=quantization, force=True)
        exported_cfg = _copy_text_files(run_dir, cfg, staging)
        (staging / "config.yaml").write_text(dump_config(exported_cfg), encoding="utf-8")
        positions = model_kind(cfg.model).position_limit(cfg.model)
        assert positions is not None  # a Transformer's position table
        manifest = ExportManifest(
            run=str(run_dir.absolute()), checkpoint=str(ckpt.absolute()),
            quantization=quantization,
            max_source_tokens=source_token_limit(cfg.model, cfg.data.max_len),
            max_output_length=positions,
        )
        (staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(out_dir, ckpt, quantization)


def _copy_text_files(run_dir: Path, cfg: Config, out: Path) -> Config:
    """Copy the vocabularies, sentencepiece models and jieba user dictionaries into
    ``out/vocab/``; the config that finds them there (user dictionaries relative to ``out``,
    see :func:`nmt.translate.ctranslate2_engine.with_local_dictionaries`)."""
    layout = vocab_layout(run_dir, cfg.data)
    target = out / VOCAB_DIR
    target.mkdir()
    for path in {layout.src_vocab, layout.tgt_vocab, layout.src_spm, layout.tgt_spm}:
        if path is not None:
            shutil.copyfile(path, target / path.name)
    data = cfg.data
    tokenizers = {}
    for side, tok in (("src", data.src_tokenizer), ("tgt", data.tgt_tokenizer)):
        if tok.user_dict:
            name = f"{VOCAB_DIR}/{side}.user_dict.txt"
            shutil.copyfile(tok.user_dict, out / name)
            tok = replace(tok, user_dict=name)
        tokenizers[f"{side}_tokenizer"] = tok
    return replace(cfg, data=replace(data, **tokenizers))


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished ``staging`` directory to ``out_dir``, replacing what is there."""
    old = None
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        old = out_dir.parent / f".{out_dir.name}.replaced-{os.getpid()}"
        os.replace(out_dir, old)
    elif out_dir.exists():
        out_dir.rmdir()
    os.replace(staging, out_dir)
    if old is not None:
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
