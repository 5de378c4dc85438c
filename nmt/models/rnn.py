"""Attentional GRU encoder-decoder (Bahdanau et al. 2015; Luong et al. 2015).

    src ids -> embeddings -> bidirectional GRU (packed, so padding never enters a state)
            -> memory (batch, src_len, 2·hidden) and final states -> bridge -> s_0
    step t:  Bahdanau: c_t = attn(s_{t-1}, memory); s_t = GRU([E y_{t-1}; c_t], s_{t-1})
             Luong:    s_t = GRU([E y_{t-1}; h̃_{t-1}], s_{t-1}); c_t = attn(s_t, memory)
             h̃_t = tanh(W_c [s_t; c_t]);  logits = W_out dropout(h̃_t)

``h̃_t`` (the "attentional vector", Luong §3.1) has the embedding size, so the output layer can
share the target embedding matrix. Input feeding (feeding ``h̃_{t-1}`` into the next step, Luong
§3.3) applies to Luong attention only: Bahdanau's decoder already feeds ``c_t`` into the GRU.

The training pass never applies the output layer inside the step loop: the loop collects the
decoder states, and one large matmul turns all of them into logits at the end. Luong attention
without input feeding needs no loop at all (the GRU runs over the whole target at once).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.models.attention import LuongScore, build_attention
from nmt.models.interface import Seq2Seq, expanded_rows


@dataclass(frozen=True)
class RNNState:
    """Decoder state of :class:`RNNSeq2Seq`; all tensors but ``hidden`` are batch-first."""

    memory: Tensor  # (batch, src_len, 2·hidden) encoder outputs, the attention values
    keys: Tensor  # (batch, src_len, attn) memory projected once for scoring
    src_mask: Tensor  # (batch, src_len) bool, True at real tokens
    hidden: Tensor  # (dec_layers, batch, hidden): nn.GRU's layout, selected along dim 1
    feed: Tensor | None  # (batch, d_model) h̃_{t-1} for input feeding, else None
    need_attention: bool = False

    def select(self, index: Tensor, same_source: bool = False) -> RNNState:
        """Rows ``index`` (``(new_batch,)`` long) of every tensor, for beam search.

        With ``same_source`` (see :meth:`nmt.models.interface.DecoderState.select`) the
        source-side tensors are kept as they are, not copied.
        """
        new = replace(
            self,
            hidden=self.hidden.index_select(1, index),
            feed=None if self.feed is None else self.feed.index_select(0, index),
        )
        if same_source:
            return new
        return replace(
            new,
            memory=self.memory.index_select(0, index),
            keys=self.keys.index_select(0, index),
            src_mask=self.src_mask.index_select(0, index),
        )

    def expand(self, beam: int) -> RNNState:
        """Each row repeated ``beam`` times in a row (see ``DecoderState.expand``)."""
        return self.select(expanded_rows(self.src_mask.size(0), beam, self.src_mask.device))


class RNNEncoder(nn.Module):
    """Embeddings and a bidirectional multi-layer GRU over packed sequences."""

    def __init__(
        self, embed: nn.Embedding, hidden_size: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.embed = embed
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(
            embed.embedding_dim, hidden_size, layers, batch_first=True, bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )

    def forward(self, src: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode ``(batch, src_len)`` ids; every row needs at least one real token.

        Returns:
            memory ``(batch, src_len, 2·hidden)`` (zero at padding) and the top layer's final
            forward and backward states concatenated, ``(batch, 2·hidden)``.
        """
        x = self.dropout(self.embed(src))
        # pack_padded_sequence wants lengths on the CPU: one small transfer per batch, at encode.
        lengths = src_mask.sum(1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed)  # h_n: (layers·2, batch, hidden), real tokens only
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        return memory, torch.cat([h_n[-2], h_n[-1]], dim=-1)


class RNNSeq2Seq(Seq2Seq[RNNState]):
    """Bidirectional GRU encoder and attentional GRU decoder.

    Args:
        src_embed, tgt_embed: embeddings of size ``d_model`` (the same module when shared).
        hidden_size: GRU size of each encoder direction and of the decoder.
        attention: ``bahdanau`` or ``luong`` (with ``luong_score``).
        input_feeding: Luong only, see the module docstring.
    """

    def __init__(
        self,
        src_embed: nn.Embedding,
        tgt_embed: nn.Embedding,
        hidden_size: int,
        enc_layers: int,
        dec_layers: int,
        dropout: float,
        attention: Literal["bahdanau", "luong"],
        luong_score: LuongScore = "general",
        input_feeding: bool = True,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        d_model, memory_size = tgt_embed.embedding_dim, 2 * hidden_size
        self.bahdanau = attention == "bahdanau"
        self.input_feeding = input_feeding and not self.bahdanau
        self.dec_layers, self.hidden_size = dec_layers, hidden_size

        self.encoder = RNNEncoder(src_embed, hidden_size, enc_layers, dropout)
        self.bridge = nn.Linear(memory_size, dec_layers * hidden_size)  # -> s_0 of every layer
        self.tgt_embed = tgt_embed
        self.dropout = nn.Dropout(dropout)
        extra = memory_size if self.bahdanau else d_model if self.input_feeding else 0
        self.rnn = nn.GRU(
            d_model + extra, hidden_size, dec_layers, batch_first=True,
            dropout=dropout if dec_layers > 1 else 0.0,
        )
        self.attention = build_attention(attention, luong_score, hidden_size, memory_size)
        self.readout = nn.Linear(hidden_size + memory_size, d_model)  # W_c: [s_t; c_t] -> h̃_t
        self.generator = nn.Linear(d_model, tgt_embed.num_embeddings, bias=False)

    # ----------------------------------------------------------------- encoder and one step

    def encode(
        self, src: Tensor, src_mask: Tensor, need_attention: bool = False, use_cache: bool = True
    ) -> RNNState:
        """Encode once; ``use_cache`` is meaningless for a GRU and ignored."""
        memory, final = self.encoder(src, src_mask)
        s0 = torch.tanh(self.bridge(final))  # (batch, layers·hidden)
        hidden = s0.view(-1, self.dec_layers, self.hidden_size).transpose(0, 1).contiguous()
        feed = memory.new_zeros(src.size(0), self.tgt_embed.embedding_dim)
        return RNNState(
            memory=memory,
            keys=self.attention.project_keys(memory),
            src_mask=src_mask,
            hidden=hidden,
            feed=feed if self.input_feeding else None,
            need_attention=need_attention,
        )

    def _step(self, emb: Tensor, state: RNNState) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One GRU step from the embedded previous token ``emb`` ``(batch, d_model)``.

        Returns the top layer's new state ``s_t`` ``(batch, hidden)``, the context ``c_t``
        ``(batch, 2·hidden)``, the attention weights ``(batch, src_len)`` and the new hidden
        ``(layers, batch, hidden)``.
        """
        attend = self.attention
        if self.bahdanau:  # the query is the state before the step
            context, weights = attend(state.hidden[-1], state.keys, state.memory, state.src_mask)
            x = torch.cat([emb, context], dim=-1)
        else:
            x = emb if state.feed is None else torch.cat([emb, state.feed], dim=-1)
        out, hidden = self.rnn(x.unsqueeze(1), state.hidden)
        top = out.squeeze(1)
        if not self.bahdanau:  # the query is the state after the step
            context, weights = attend(top, state.keys, state.memory, state.src_mask)
        return top, context, weights, hidden

    def _attentional(self, top: Tensor, context: Tensor) -> Tensor:
        """``h̃ = dropout(tanh(W_c [s; c]))`` for ``(..., hidden)`` and ``(..., 2·hidden)``."""
        return self.dropout(torch.tanh(self.readout(torch.cat([top, context], dim=-1))))

    def decode_step(
        self, prev_tokens: Tensor, state: RNNState
    ) -> tuple[Tensor, RNNState, Tensor | None]:
        """``(batch,)`` previous tokens -> logits ``(batch, vocab)``, new state, weights."""
        emb = self.dropout(self.tgt_embed(prev_tokens))
        top, context, weights, hidden = self._step(emb, state)
        h = self._attentional(top, context)
        new_state = replace(state, hidden=hidden, feed=h if self.input_feeding else None)
        return self.generator(h), new_state, weights if state.need_attention else None

    # ----------------------------------------------------------------- training pass

    def forward(
        self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0
    ) -> Tensor:
        """``(batch, tgt_len)`` shifted targets -> logits ``(batch, tgt_len, vocab)``.

        With ``teacher_forcing < 1`` each sentence, at each step, is fed its gold previous token
        with that probability and the model's own argmax otherwise (scheduled sampling, Bengio
        et al. 2015); the coins come from torch's global RNG, so the seed controls them.
        """
        state = self.encode(src, src_mask)
        if teacher_forcing < 1.0:
            return self._forward_sampled(tgt_in, state, teacher_forcing)
        emb = self.dropout(self.tgt_embed(tgt_in))  # (batch, tgt_len, d_model)
        if not self.bahdanau and not self.input_feeding:  # no step depends on attention
            tops, _ = self.rnn(emb, state.hidden)  # (batch, tgt_len, hidden)
            contexts, _ = self.attention(tops, state.keys, state.memory, state.src_mask)
            return self.generator(self._attentional(tops, contexts))
        outputs: list[Tensor] = []
        contexts_: list[Tensor] = []
        for t in range(tgt_in.size(1)):
            top, context, _, hidden = self._step(emb[:, t], state)
            if self.input_feeding:  # h̃_t is needed by the next step
                h = self._attentional(top, context)
                state = replace(state, hidden=hidden, feed=h)
                outputs.append(h)
            else:  # Bahdanau: h̃ is only needed for the logits; compute it for all t at once
                state = replace(state, hidden=hidden)
                outputs.append(top)
                contexts_.append(context)
        if self.input_feeding:
            return self.generator(torch.stack(outputs, dim=1))
        tops, contexts = torch.stack(outputs, dim=1), torch.stack(contexts_, dim=1)
        return self.generator(self._attentional(tops, contexts))

    def _forward_sampled(self, tgt_in: Tensor, state: RNNState, teacher_forcing: float) -> Tensor:
        """Step loop that sometimes feeds back the model's own argmax."""
        logits: list[Tensor] = []
        prev = tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            step_logits, state, _ = self.decode_step(prev, state)
            logits.append(step_logits)
            if t + 1 < tgt_in.size(1):
                gold = torch.rand(prev.shape, device=prev.device) < teacher_forcing
                prev = torch.where(gold, tgt_in[:, t + 1], step_logits.argmax(-1))
        return torch.stack(logits, dim=1)
