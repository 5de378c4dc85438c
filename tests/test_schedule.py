"""LR schedules: pure functions of the step; plateau state survives a state_dict round trip."""

from __future__ import annotations

import json
import math

import pytest

from nmt.config import TrainConfig
from nmt.training.schedule import LRSchedule, constant_lr, noam_lr


def test_noam_peaks_at_warmup_end_and_decays_as_inverse_sqrt() -> None:
    assert noam_lr(100, 1e-3, 100) == pytest.approx(1e-3)
    assert noam_lr(50, 1e-3, 100) == pytest.approx(5e-4)
    assert noam_lr(400, 1e-3, 100) == pytest.approx(5e-4)
    assert max(noam_lr(s, 1e-3, 100) for s in range(1, 1000)) == pytest.approx(1e-3)
    assert noam_lr(1, 1e-3, 0) == pytest.approx(1e-3)


def test_constant_with_and_without_warmup() -> None:
    assert constant_lr(1, 1e-3, 0) == 1e-3
    assert constant_lr(5, 1e-3, 10) == pytest.approx(5e-4)
    assert constant_lr(50, 1e-3, 10) == 1e-3


def test_plateau_reduces_after_patience_and_state_round_trips() -> None:
    cfg = TrainConfig(
        schedule="plateau",
        lr=1.0,
        warmup_steps=0,
        plateau_factor=0.5,
        plateau_patience=1,
        min_lr=0.2,
    )
    s = LRSchedule(cfg)
    for loss in (3.0, 2.0, 2.5):  # improvement, improvement, one bad
        s.observe(loss)
    assert s.lr(10) == 1.0
    saved = json.loads(json.dumps(s.state_dict()))
    s.observe(2.6)  # second bad in a row > patience -> halve
    assert s.lr(10) == 0.5
    resumed = LRSchedule(cfg)
    resumed.load_state_dict(saved)
    resumed.observe(2.6)
    assert resumed.lr(10) == 0.5
    for _ in range(6):
        s.observe(9.0)
    assert s.lr(10) == 0.2  # floored at min_lr
    s.observe(math.nan)  # a NaN dev loss is ignored
    assert s.lr(10) == 0.2
    assert LRSchedule(cfg).state_dict()["best"] is None  # JSON-safe before any validation


def test_linear_decay_warms_up_then_falls_to_the_floor_at_decay_steps_and_stays() -> None:
    cfg = TrainConfig(schedule="linear", lr=1e-3, warmup_steps=100, decay_steps=1100, min_lr=1e-5)
    s = LRSchedule(cfg)
    assert s.lr(50) == pytest.approx(5e-4)
    assert s.lr(100) == pytest.approx(1e-3)
    assert s.lr(600) == pytest.approx(1e-5 + (1e-3 - 1e-5) / 2)  # halfway down
    assert s.lr(1100) == pytest.approx(1e-5)
    assert s.lr(5000) == pytest.approx(1e-5)
    rates = [s.lr(k) for k in range(100, 1200)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))


def test_cosine_decay_is_halfway_at_mid_decay_and_falls_to_the_floor() -> None:
    cfg = TrainConfig(schedule="cosine", lr=1e-3, warmup_steps=0, decay_steps=1000, min_lr=0.0)
    s = LRSchedule(cfg)
    assert s.lr(1) == pytest.approx(1e-3, rel=1e-4)
    assert s.lr(500) == pytest.approx(5e-4)
    assert s.lr(250) > 1e-3 * 0.75  # a cosine stays high longer than a straight line
    assert s.lr(1000) == pytest.approx(0.0, abs=1e-12)


def test_decay_steps_default_to_max_steps() -> None:
    by_max = LRSchedule(TrainConfig(schedule="linear", lr=1.0, warmup_steps=0, max_steps=200,
                                    min_lr=0.0))
    assert by_max.lr(100) == pytest.approx(0.5)


def test_decay_schedules_need_a_decay_horizon_beyond_warmup() -> None:
    from nmt.config import load_config
    from nmt.errors import ConfigError

    with pytest.raises(ConfigError, match="train.decay_steps"):
        load_config(None, ["train.schedule=linear", "train.warmup_steps=100"])
    with pytest.raises(ConfigError, match="train.decay_steps"):
        load_config(None, ["train.schedule=cosine", "train.warmup_steps=100",
                           "train.decay_steps=50"])
    cfg = load_config(None, ["train.schedule=cosine", "train.warmup_steps=100",
                             "train.decay_steps=500"])
    assert cfg.train.decay_steps == 500
