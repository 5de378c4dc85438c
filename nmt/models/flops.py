"""Model FLOPs counted from the architecture, for throughput and MFU figures.

Only matrix products are counted (2 FLOPs per multiply-add), as in model-FLOPs-utilisation
reports (Chowdhery et al. 2022, appendix B): linear layers, the attention products and the output
layer. Element-wise work (norms, activations, softmax, the GRU gates' sums) is left out: it is
a few percent of the total and not what a matmul peak measures. The counts are per sentence and
exact for its real lengths, so padding never counts as useful work. The backward pass costs
twice the forward (one product for the input gradient, one for the weight gradient), so a
training step is ``3 x`` :func:`forward_flops`.

Transformer, with ``d = d_model``, ``f = ff_size``, ``V`` the target vocabulary, a source of
``S`` tokens (its ``</s>`` included) and ``T`` decoder positions (``<s> y1 .. yn``):

- encoder layer, per source token: QKV ``3d²`` + output ``d²`` + feed-forward ``2df``
  multiply-adds (MACs); attention ``QKᵀ`` and ``AV``: ``2·S·d`` MACs per token;
- decoder layer, per target position: self-attention QKV and output ``4d²`` and ``2·T·d``
  (dense: the masked causal half is counted, as FLOP counters of the fused kernels do),
  cross-attention query and output ``2d²`` and ``2·S·d``, feed-forward ``2df``; and per source
  token the cross-attention keys/values ``2d²`` (projected once per sentence);
- output layer: ``d·V`` per target position.

For the recipe's model (d 256, f 1024, 3+3 layers, V ≈ 4.5k, S ≈ T ≈ 10) that is about 5.5
MFLOPs per source token and 7.9 per target position forward, i.e. ~40 MFLOPs per target token
for a training step.

GRU with Bahdanau or Luong attention (``h`` = hidden size, ``e`` = embedding size, ``a`` =
attention size = ``h``): a GRU layer costs ``3h·(input + h)`` MACs per token and direction; the
encoder projects its ``2h`` memory once per source token for scoring; each decoder step scores
``S`` positions, sums the ``2h`` memory, runs the GRU and the ``(h + 2h) -> e`` readout, then the
output layer ``e·V``.
"""

from __future__ import annotations

from collections.abc import Sequence

from nmt.config import ModelConfig

__all__ = ["forward_flops", "gru_macs", "training_flops", "transformer_macs"]


def forward_flops(
    cfg: ModelConfig, tgt_vocab_size: int, src_lengths: Sequence[int], tgt_lengths: Sequence[int]
) -> float:
    """Matmul FLOPs of one teacher-forced forward pass over a batch.

    Args:
        cfg: the model's settings.
        tgt_vocab_size: rows of the output layer.
        src_lengths: real source tokens per sentence, ``</s>`` included.
        tgt_lengths: real decoder positions per sentence (``<s>`` plus the target tokens).
    """
    if len(src_lengths) != len(tgt_lengths):
        raise ValueError(f"{len(src_lengths)} source but {len(tgt_lengths)} target lengths")
    from nmt.models.registry import model_kind  # the registry imports this module

    per_sentence = model_kind(cfg).forward_macs
    return 2.0 * sum(
        per_sentence(cfg, tgt_vocab_size, s, t)
        for s, t in zip(src_lengths, tgt_lengths, strict=True)
    )


def training_flops(
    cfg: ModelConfig, tgt_vocab_size: int, src_lengths: Sequence[int], tgt_lengths: Sequence[int]
) -> float:
    """Forward plus backward: three times :func:`forward_flops`."""
    return 3.0 * forward_flops(cfg, tgt_vocab_size, src_lengths, tgt_lengths)


def transformer_macs(cfg: ModelConfig, vocab: int, s: int, t: int) -> float:
    d, f = cfg.d_model, cfg.ff_size
    encoder = cfg.enc_layers * s * (4 * d * d + 2 * d * f + 2 * s * d)
    decoder = cfg.dec_layers * (
        t * (4 * d * d + 2 * t * d)  # self-attention
        + t * (2 * d * d + 2 * s * d) + s * 2 * d * d  # cross-attention, memory K/V once
        + t * 2 * d * f  # feed-forward
    )
    return float(encoder + decoder + t * d * vocab)


def gru_macs(cfg: ModelConfig, vocab: int, s: int, t: int) -> float:
    h, e = cfg.hidden_size, cfg.d_model
    mem, a = 2 * h, h  # bidirectional memory; scoring MLP / Luong space of size h

    def gru(inp: int) -> int:
        return 3 * h * (inp + h)

    encoder = sum(2 * s * gru(e if i == 0 else mem) for i in range(cfg.enc_layers))
    bridge = mem * cfg.dec_layers * h
    bahdanau = cfg.attention == "bahdanau"
    concat = not bahdanau and cfg.luong_score == "concat"
    dot_same = cfg.luong_score == "dot" and mem == h
    keys = 0 if (not bahdanau and dot_same) else s * mem * a
    # Additive scores: a query projection, then v·tanh(q + k) at every position; dot and
    # general: one product with the projected keys.
    score = h * a + s * a if bahdanau or concat else s * h
    extra = mem if bahdanau else e if cfg.input_feeding else 0
    step = (
        score + s * mem  # attention scores and the context
        + gru(e + extra) + (cfg.dec_layers - 1) * gru(h)
        + (h + mem) * e  # readout to the attentional vector
        + e * vocab  # output layer
    )
    return float(encoder + bridge + keys + t * step)
