"""warp_logits: temperature -> top-k -> top-p, as Hugging Face's warpers applied in turn."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nmt.config import DecodeConfig, decode_with
from nmt.decoding import warp_logits
from nmt.decoding.transforms import apply_temperature, check_warp_args, top_k_filter, top_p_filter
from nmt.errors import ConfigError

INF = math.inf


# ------------------------------------------------------------------ independent reference
# Written from Hugging Face's documented algorithm, one row at a time with plain Python floats,
# so the check runs without `transformers` and shares no code with the implementation.


def ref_top_k(row: list[float], k: int) -> list[float]:
    """Remove every value below the k-th largest (values tied with it stay)."""
    if k == 0 or k >= len(row):
        return list(row)
    kth = sorted(row, reverse=True)[k - 1]
    return [x if x >= kth else -INF for x in row]


def ref_top_p(row: list[float], p: float) -> list[float]:
    """Ascending sort; drop tokens whose cumulative probability is <= 1 - p; keep the top one."""
    if p >= 1.0:
        return list(row)
    top = max(row)
    weights = [math.exp(x - top) if x > -INF else 0.0 for x in row]
    total = sum(weights)
    order = sorted(range(len(row)), key=lambda i: row[i])  # ascending, stable
    out, cumulative = list(row), 0.0
    for rank, i in enumerate(order):
        cumulative += weights[i] / total
        if cumulative <= 1.0 - p and rank < len(row) - 1:
            out[i] = -INF
    return out


def reference(rows: list[list[float]], temperature: float, k: int, p: float) -> list[list[float]]:
    return [ref_top_p(ref_top_k([x / temperature for x in r], k), p) for r in rows]


# ------------------------------------------------------------------ strategies

# Few distinct values so that ties (at the top-k cut-off too) are common.
tie_values = st.sampled_from([-3.0, -1.5, -1.0, 0.0, 0.5, 1.0, 2.0, 4.0])
free_values = st.floats(-8.0, 8.0, allow_nan=False, width=32)
logit_rows = st.integers(1, 4).flatmap(
    lambda n: st.lists(
        st.lists(st.one_of(tie_values, free_values), min_size=n, max_size=n),
        min_size=1,
        max_size=4,
    )
)
temperatures = st.sampled_from([0.3, 0.7, 1.0, 1.5, 3.0])
top_ks = st.integers(0, 6)
top_ps = st.sampled_from([0.05, 0.3, 0.5, 0.8, 0.9, 0.95, 1.0])


def as_tensor(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def near_top_p_boundary(rows: list[list[float]], temperature: float, k: int, p: float) -> bool:
    """True when a cumulative probability sits within rounding of ``1 - p`` (order-sensitive)."""
    for row in reference(rows, temperature, k, 1.0):
        finite = sorted(x for x in row if x > -INF)
        weights = [math.exp(x - finite[-1]) for x in finite]
        cumulative = 0.0
        for w in weights:
            cumulative += w / sum(weights)
            if abs(cumulative - (1.0 - p)) < 1e-9:
                return True
    return False


# ------------------------------------------------------------------ equality with the reference


@settings(max_examples=300, deadline=None)
@given(logit_rows, temperatures, top_ks, top_ps)
def test_matches_reference(rows: list[list[float]], temperature: float, k: int, p: float) -> None:
    assume(not near_top_p_boundary(rows, temperature, k, p))
    got = warp_logits(as_tensor(rows), temperature=temperature, top_k=k, top_p=p)
    assert got.tolist() == reference(rows, temperature, k, p)  # both IEEE double: exact


@settings(max_examples=200, deadline=None)
@given(logit_rows, temperatures, top_ks, top_ps)
def test_matches_hugging_face(
    rows: list[list[float]], temperature: float, k: int, p: float
) -> None:
    lp = pytest.importorskip("transformers.generation.logits_process")
    logits = as_tensor(rows)
    expected = logits
    # As HF's generate builds them: a warper is added only when it is switched on.
    if temperature != 1.0:
        expected = lp.TemperatureLogitsWarper(temperature)(None, expected)
    if k != 0:
        expected = lp.TopKLogitsWarper(k)(None, expected)
    if p != 1.0:
        expected = lp.TopPLogitsWarper(p)(None, expected)
    got = warp_logits(logits, temperature=temperature, top_k=k, top_p=p)
    assert torch.equal(got, expected)


def test_matches_hugging_face_on_random_vocab_sized_logits() -> None:
    lp = pytest.importorskip("transformers.generation.logits_process")
    gen = torch.Generator().manual_seed(0)
    for temperature, k, p in [(0.7, 50, 0.9), (1.3, 0, 0.8), (1.0, 10, 1.0), (0.5, 3, 0.5)]:
        logits = torch.randn(8, 5000, generator=gen) * 3
        logits[0, :20] = logits[0, 0]  # a big tie, straddling the top-k cut-off
        chain = [lp.TemperatureLogitsWarper(temperature)]
        chain += [lp.TopKLogitsWarper(k)] if k else []
        chain += [lp.TopPLogitsWarper(p)] if p < 1 else []
        expected = logits
        for warper in chain:
            expected = warper(None, expected)
        assert torch.equal(warp_logits(logits, temperature, k, p), expected)


# ------------------------------------------------------------------ properties


@settings(max_examples=200, deadline=None)
@given(logit_rows, top_ks)
def test_top_k_keeps_k_plus_ties(rows: list[list[float]], k: int) -> None:
    got = top_k_filter(as_tensor(rows), k)
    for row, out in zip(rows, got.tolist(), strict=True):
        kept = [x for x in out if x > -INF]
        if k == 0 or k >= len(row):
            assert out == row
            continue
        kth = sorted(row, reverse=True)[k - 1]
        assert len(kept) == k + sorted(row, reverse=True)[k:].count(kth)
        assert min(kept) == kth


@settings(max_examples=200, deadline=None)
@given(logit_rows, top_ps)
def test_top_p_keeps_the_smallest_set_with_enough_mass(rows: list[list[float]], p: float) -> None:
    assume(not near_top_p_boundary(rows, 1.0, 0, p))
    got = top_p_filter(as_tensor(rows), p)
    for row, out in zip(rows, got.tolist(), strict=True):
        probs = torch.tensor(row, dtype=torch.float64).softmax(0).tolist()
        kept = sorted((q for q, x in zip(probs, out, strict=True) if x > -INF), reverse=True)
        assert kept, "at least one token is always kept"
        assert sum(kept) >= p - 1e-12 or len(kept) == len(row)
        # Minimal: the same number of the most probable tokens, less one, falls short of p.
        assert sum(sorted(probs, reverse=True)[: len(kept) - 1]) < p + 1e-12


@settings(max_examples=100, deadline=None)
@given(logit_rows, temperatures, top_ks, top_ps)
def test_input_not_mutated_and_one_token_kept(
    rows: list[list[float]], temperature: float, k: int, p: float
) -> None:
    logits = as_tensor(rows)
    before = logits.clone()
    got = warp_logits(logits, temperature, k, p)
    assert torch.equal(logits, before)
    assert got is not logits
    assert bool(got.isfinite().any(dim=-1).all())


@given(logit_rows)
def test_identity_when_off(rows: list[list[float]]) -> None:
    logits = as_tensor(rows)
    got = warp_logits(logits)
    assert torch.equal(got, logits) and got is not logits
    assert torch.equal(warp_logits(logits, 1.0, 0, 1.0), logits)


def test_order_is_temperature_then_top_k_then_top_p() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    got = warp_logits(logits, temperature=0.5, top_k=4, top_p=0.8)
    assert torch.equal(got, top_p_filter(top_k_filter(apply_temperature(logits, 0.5), 4), 0.8))
    # The order matters: the nucleus is taken from the sharpened distribution, not the raw one.
    assert got.isfinite().sum() == 1
    assert top_p_filter(logits, 0.8).isfinite().sum() == 3


def test_any_leading_shape() -> None:
    logits = torch.randn(2, 3, 10)
    got = warp_logits(logits, top_k=2)
    assert got.shape == logits.shape
    assert bool((got.isfinite().sum(-1) == 2).all())
    assert warp_logits(logits[0, 0], top_p=0.5).shape == (10,)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.0},
        {"temperature": -1.0},
        {"temperature": math.nan},
        {"top_k": -1},
        {"top_k": 1.5},
        {"top_k": True},
        {"top_p": 0.0},
        {"top_p": 1.1},
        {"top_p": -0.2},
        {"top_p": math.nan},
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        warp_logits(torch.zeros(1, 3), **kwargs)


@pytest.mark.parametrize(
    ("name", "value"),
    [("temperature", v) for v in (-1.0, 0.0, 1e-9, 1.0, 100.0, math.inf, math.nan)]
    + [("top_k", v) for v in (-1, 0, 1, 50)]
    + [("top_p", v) for v in (-0.2, 0.0, 1e-9, 0.5, 1.0, 1.1, math.nan)],
)
def test_warpers_accept_what_the_config_accepts(name: str, value: float) -> None:
    """The warpers guard their own arguments; decode.* holds users to the same ranges."""
    try:
        decode_with(DecodeConfig(), {name: value})
        config_ok = True
    except ConfigError:
        config_ok = False
    args = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, name: value}
    try:
        check_warp_args(**args)  # type: ignore[arg-type]
        warpers_ok = True
    except ValueError:
        warpers_ok = False
    assert warpers_ok == config_ok
