"""Weight initialisation of each model type (the factory applies them; see ``registry``)."""

from __future__ import annotations

import torch
from torch import nn

from nmt.models.attention import CrossAttention, SelfAttention


def init_transformer(model: nn.Module) -> None:
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


def init_gru(model: nn.Module) -> None:
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


def init_embedding(embed: nn.Embedding, pad_id: int) -> None:
    """N(0, 1/d): scaled by sqrt(d) (Transformer) the rows have unit variance, and tied logits
    start near unit scale. The padding row is zero (and gets no gradient from the lookup)."""
    nn.init.normal_(embed.weight, std=embed.embedding_dim**-0.5)
    with torch.no_grad():
        embed.weight[pad_id].zero_()
