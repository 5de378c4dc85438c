"""Logits processors: what steers a search, step by step, before it chooses.

Every search (greedy, sampling, beam) runs the same list of processors on each step's
log-probabilities before it picks tokens. A processor has Hugging Face's shape: it sees the
prefix (the tokens each hypothesis has output so far), the step and the scores, and returns new
scores; ``-inf`` forbids a token. When its option is off it is not in the list at all, so a
search with every option off computes exactly what it did before processors existed.

Unlike Hugging Face, where the batch never changes, searches here drop finished sentences and
hold several beams per sentence, so a processor also learns which input sentence each row
belongs to (:attr:`Step.sentence`): per-sentence processors (a forced prefix) need it.

Adding one: a class with ``__call__(step, log_probs) -> log_probs``, its option in
:class:`nmt.config.DecodeConfig` with a rule there, and an entry in :data:`PROCESSORS` that
builds it from the config (or returns None when the option is off). See docs/CONTRACTS.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from nmt.config import DecodeConfig
from nmt.datautil.vocab import EOS_ID

__all__ = [
    "PROCESSORS",
    "BannedSequences",
    "ForcedPrefix",
    "LogitsProcessor",
    "MinLength",
    "NoRepeatNGram",
    "RepetitionPenalty",
    "Steering",
    "Step",
    "build_processors",
    "run_processors",
]

_NEG_INF = -math.inf


@dataclass(frozen=True)
class Step:
    """What a processor sees of a search step besides the scores.

    Attributes:
        prefix: ``(rows, t)`` long, the tokens each row has output so far (no ``<s>``).
        t: the index of the token being chosen (0 for the first output token).
        sentence: ``(rows,)`` long, the input sentence (row of the batch given to the search)
            each row belongs to.
    """

    prefix: Tensor
    t: int
    sentence: Tensor


class LogitsProcessor(Protocol):
    """``(step, log_probs (rows, vocab) float32) -> (rows, vocab)``.

    May write into ``log_probs`` (the search's own tensor) and return it. Must leave at least
    one finite entry per row that had one, or the search treats the row as dead.
    """

    def __call__(self, step: Step, log_probs: Tensor) -> Tensor: ...


def run_processors(processors: Sequence[LogitsProcessor], step: Step, log_probs: Tensor
                   ) -> Tensor:  # fmt: skip
    """Apply ``processors`` in order."""
    for processor in processors:
        log_probs = processor(step, log_probs)
    return log_probs


# --------------------------------------------------------------------------- processors


@dataclass(frozen=True)
class NoRepeatNGram:
    """Never output an n-gram a hypothesis already contains (HF ``NoRepeatNGramLogitsProcessor``).

    At step t the banned tokens are those that, appended to the prefix, would complete an
    n-gram seen earlier in it: every token that followed an earlier occurrence of the prefix's
    last ``n - 1`` tokens. Vectorised over rows: the prefix's n-grams are one ``unfold``.
    """

    n: int

    def __call__(self, step: Step, log_probs: Tensor) -> Tensor:
        n, prefix = self.n, step.prefix
        if prefix.size(1) < n:  # (HF counts <s> in its length, and bans from the same step)
            return log_probs
        grams = prefix.unfold(1, n, 1)  # (rows, windows, n)
        tail = prefix[:, prefix.size(1) - (n - 1):].unsqueeze(1)  # (rows, 1, n-1); n=1: empty
        seen = (grams[:, :, :-1] == tail).all(dim=2)  # (rows, windows): the window's head
        # Count, per token, the windows it would complete (a token may end several): no host
        # sync, and n = 1 (an empty head, always seen) bans every token already output.
        hits = torch.zeros_like(log_probs, dtype=torch.int32)
        hits.scatter_add_(1, grams[:, :, -1], seen.int())
        return log_probs.masked_fill_(hits > 0, _NEG_INF)


@dataclass(frozen=True)
class RepetitionPenalty:
    """Scale the score of every token already in the prefix (HF
    ``RepetitionPenaltyLogitsProcessor``, Keskar et al. 2019): a negative score is multiplied
    by ``penalty``, a positive one divided by it. Log-probabilities are never positive, so here
    a repeated token's log-probability is multiplied by ``penalty`` (> 1 discourages)."""

    penalty: float

    def __call__(self, step: Step, log_probs: Tensor) -> Tensor:
        if step.prefix.size(1) == 0:
            return log_probs
        seen = log_probs.gather(1, step.prefix)
        scaled = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return log_probs.scatter_(1, step.prefix, scaled)


@dataclass(frozen=True)
class MinLength:
    """No ``</s>`` before ``length`` output tokens (HF ``MinNewTokensLengthLogitsProcessor``).

    A hypothesis can still be cut shorter by the length limit (``max_len_a``, ``max_len_b``).
    """

    length: int

    def __call__(self, step: Step, log_probs: Tensor) -> Tensor:
        if step.t < self.length:
            log_probs[:, EOS_ID] = _NEG_INF
        return log_probs


@dataclass(frozen=True)
class BannedSequences:
    """Never output these token sequences (HF ``NoBadWordsLogitsProcessor``): a one-token
    sequence is always banned; a longer one's last token is banned after its first tokens."""

    sequences: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if any(not s for s in self.sequences):
            raise ValueError("a banned sequence needs at least one token")

    def __call__(self, step: Step, log_probs: Tensor) -> Tensor:
        prefix = step.prefix
        for seq in self.sequences:
            *head, last = seq
            if not head:
                log_probs[:, last] = _NEG_INF
            elif prefix.size(1) >= len(head):
                tail = prefix[:, prefix.size(1) - len(head):]
                match = (tail == tail.new_tensor(head)).all(dim=1)
                log_probs[:, last] = log_probs[:, last].masked_fill(match, _NEG_INF)
        return log_probs


class ForcedPrefix:
    """Start each sentence's output with given tokens; the model continues from there.

    While ``t`` is within a row's prefix every other token is ``-inf``, and the forced one
    keeps the model's log-probability (other processors do not apply to it: the prefix is the
    user's), so a hypothesis' score is the model's probability of the whole output.
    :class:`Steering` runs it around the other processors.
    """

    def __init__(self, prefixes: Sequence[Sequence[int]], device: torch.device) -> None:
        self.width = max((len(p) for p in prefixes), default=0)
        self.lengths = torch.tensor([len(p) for p in prefixes], dtype=torch.long, device=device)
        tokens = [list(p) + [0] * (self.width - len(p)) for p in prefixes]
        self.tokens = torch.tensor(tokens, dtype=torch.long, device=device).view(
            len(prefixes), self.width)

    def targets(self, step: Step, log_probs: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        """Which rows are forced at this step ``(rows,)`` bool, their tokens ``(rows, 1)`` and
        the model's log-probabilities of them ``(rows, 1)``; None past every prefix."""
        if step.t >= self.width:
            return None
        forcing = self.lengths.index_select(0, step.sentence) > step.t
        tokens = self.tokens[:, step.t].index_select(0, step.sentence).unsqueeze(1)
        return forcing, tokens, log_probs.gather(1, tokens)

    @staticmethod
    def force(log_probs: Tensor, targets: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        forcing, tokens, kept = targets
        only = torch.full_like(log_probs, _NEG_INF).scatter_(1, tokens, kept)
        return torch.where(forcing.unsqueeze(1), only, log_probs)

    def __call__(self, step: Step, log_probs: Tensor) -> Tensor:
        targets = self.targets(step, log_probs)
        return log_probs if targets is None else self.force(log_probs, targets)


class Steering:
    """The processors of one search over one batch, and the batch's forced prefixes.

    Args:
        processors: from :func:`build_processors`, run in order.
        prefixes: per sentence of the batch, the target ids its output must start with
            (``[]`` for none), or None.
    """

    def __init__(self, processors: Sequence[LogitsProcessor] = (),
                 prefixes: Sequence[Sequence[int]] | None = None,
                 device: torch.device | None = None) -> None:  # fmt: skip
        self.processors = tuple(processors)
        self.prefix = None
        if prefixes is not None and any(prefixes):
            self.prefix = ForcedPrefix(prefixes, device or torch.device("cpu"))

    @property
    def active(self) -> bool:
        """Whether anything would change a step's scores (else the search skips the call)."""
        return bool(self.processors) or self.prefix is not None

    def limits(self, limits: Tensor) -> Tensor:
        """Length limits ``(batch,)`` raised to leave room for each forced prefix and ``</s>``."""
        if self.prefix is None:
            return limits
        return torch.maximum(limits, self.prefix.lengths.to(limits.device) + 1)

    def __call__(self, step: Step, log_probs: Tensor) -> Tensor:
        targets = None if self.prefix is None else self.prefix.targets(step, log_probs)
        log_probs = run_processors(self.processors, step, log_probs)
        return log_probs if targets is None else ForcedPrefix.force(log_probs, targets)


# --------------------------------------------------------------------------- registry

Encode = Callable[[str], list[int]]
"""Target text -> target ids (the run's tokenizer and vocabulary), for word options."""

ProcessorBuilder = Callable[[DecodeConfig, Encode], LogitsProcessor | None]


def _banned(cfg: DecodeConfig, encode: Encode) -> LogitsProcessor | None:
    sequences = tuple(tuple(ids) for ids in map(encode, cfg.banned_words) if ids)
    return BannedSequences(sequences) if sequences else None


# In the order they run. Each entry builds its processor from the decode config, or returns
# None when its option is off (then the search does not run it at all).
PROCESSORS: dict[str, ProcessorBuilder] = {
    "banned_words": _banned,
    "no_repeat_ngram_size": lambda cfg, encode: (
        NoRepeatNGram(cfg.no_repeat_ngram_size) if cfg.no_repeat_ngram_size else None),
    "repetition_penalty": lambda cfg, encode: (
        RepetitionPenalty(cfg.repetition_penalty) if cfg.repetition_penalty != 1.0 else None),
    "min_length": lambda cfg, encode: MinLength(cfg.min_length) if cfg.min_length else None,
}


def build_processors(cfg: DecodeConfig, encode: Encode) -> list[LogitsProcessor]:
    """The processors ``cfg`` switches on, in :data:`PROCESSORS` order (``[]``: all off)."""
    built = (build(cfg, encode) for build in PROCESSORS.values())
    return [p for p in built if p is not None]
