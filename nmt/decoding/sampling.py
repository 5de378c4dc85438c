"""Ancestral sampling with temperature, top-k and top-p, reproducible through a Generator."""

from __future__ import annotations

import torch
from torch import Tensor

from nmt.config import DecodeConfig
from nmt.decoding.greedy import Chooser, decode_token_by_token
from nmt.decoding.processors import Steering
from nmt.decoding.result import SearchResult
from nmt.decoding.transforms import check_warp_args, warp_logits
from nmt.models.interface import Seq2Seq

__all__ = ["draw", "sample_search", "sampling_chooser"]

_DEFAULTS = DecodeConfig()


def sampling_chooser(
    temperature: float, top_k: int, top_p: float, generator: torch.Generator | None
) -> Chooser:
    """A chooser that draws each row's token from the warped distribution.

    Raises:
        ValueError: a warper argument is out of range (see :func:`warp_logits`).
    """
    check_warp_args(temperature, top_k, top_p)

    def choose(log_probs: Tensor) -> Tensor:
        # Warping log-probabilities equals warping logits: each warper is shift-invariant.
        probs = warp_logits(log_probs, temperature, top_k, top_p).softmax(dim=-1)
        return draw(probs, generator)

    return choose


def draw(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One index per row of ``probs`` ``(rows, vocab)``, drawn in proportion to it.

    Inverse-CDF sampling: one uniform number per row and a binary search in the row's
    cumulative sum, about 20 times faster than ``torch.multinomial`` on a CPU for a vocabulary
    of thousands. A zero-probability entry is never drawn.

    Returns:
        ``(rows,)`` long indices.
    """
    cdf = probs.double().cumsum(dim=-1)  # float64: a sum over thousands of entries stays exact
    total = cdf[:, -1:]
    u = torch.rand(total.shape, dtype=torch.float64, device=probs.device, generator=generator)
    # Strictly below the total, so the search always lands on an entry with mass; with
    # right=True it skips entries whose mass is zero (their cdf equals the one before).
    target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target, right=True).squeeze(1)


def sample_search(
    model: Seq2Seq,
    src: Tensor,
    src_mask: Tensor,
    *,
    temperature: float = _DEFAULTS.temperature,
    top_k: int = _DEFAULTS.top_k,
    top_p: float = _DEFAULTS.top_p,
    generator: torch.Generator | None = None,
    max_len_a: float = _DEFAULTS.max_len_a,
    max_len_b: int = _DEFAULTS.max_len_b,
    max_len_cap: int | None = None,
    length_penalty: float = _DEFAULTS.length_penalty,
    need_attention: bool = False,
    use_cache: bool = True,
    steering: Steering | None = None,
) -> SearchResult:
    """Draw every token from the model's distribution after :func:`warp_logits`.

    The same ``generator`` state and the same batch give the same samples. Draws are taken row
    by row from one stream, so a sentence's sample depends on the other sentences in its batch
    and their order (unlike greedy and beam search).

    Args:
        temperature, top_k, top_p: as :func:`warp_logits` (applied in that order).
        generator: a ``torch.Generator`` on ``src``'s device, seeded by the caller
            (``torch.Generator(device).manual_seed(seed)``); None uses torch's global one.
        Everything else: as :func:`~nmt.decoding.greedy.greedy_search` (``steering`` runs
            before the warpers).

    Returns:
        One hypothesis per sentence; ``score`` is the log-probability of the sample under the
        model's unwarped distribution.
    """
    choose = sampling_chooser(temperature, top_k, top_p, generator)
    return decode_token_by_token(
        model,
        src,
        src_mask,
        choose,
        max_len_a=max_len_a,
        max_len_b=max_len_b,
        max_len_cap=max_len_cap,
        length_penalty=length_penalty,
        need_attention=need_attention,
        use_cache=use_cache,
        steering=steering,
    )
