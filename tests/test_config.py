"""nmt.config: validation messages, overrides, and configs/*.yaml kept in sync with defaults."""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT

from nmt.config import Config, DecodeConfig, check_decode, decode_with, load_config
from nmt.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  trian: x.tsv\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: data.trian: unknown key (did you mean data.train?)"


def test_duplicate_key_names_the_dotted_path(tmp_path: Path) -> None:
    path = write(tmp_path, "seed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"seed: duplicate key at line 2 \(first at line 1\)"):
        load_config(path)
    path = write(tmp_path, "train:\n  lr: 0.1\n  warmup_steps: 3\n  lr: 0.2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: train.lr: duplicate key at line 4 (first at line 2)"
    # The same key in different mappings is no duplicate.
    ok = "data:\n  src_tokenizer: {type: char}\n  tgt_tokenizer: {type: char}\nmodel: {type: gru}\n"
    assert load_config(write(tmp_path, ok)).model.type == "gru"


def test_wrong_type_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  min_freq: often\n")
    with pytest.raises(ConfigError, match=rf"^{path}: data\.min_freq: expected int, got 'often'$"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"data\.src_tokenizer\.type: expected 'jieba'"):
        load_config(write(tmp_path, "data:\n  src_tokenizer:\n    type: bpe\n"))


def test_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    # PyYAML reads 1e-3 as the string "1e-3".
    assert load_config(write(tmp_path, "train:\n  lr: 1e-3\n")).train.lr == pytest.approx(1e-3)


def test_impossible_value(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  d_model: 100\n  heads: 3\n")
    with pytest.raises(ConfigError, match="model.d_model: 100 is not divisible by model.heads=3"):
        load_config(path)


def test_max_positions_must_cover_max_len(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  max_len: 50\nmodel:\n  max_positions: 10\n")
    with pytest.raises(ConfigError, match=rf"^{path}: model\.max_positions: 10 is too small for "
                       r"data\.max_len=50: .* >= data\.max_len \+ 2 = 52$"):
        load_config(path)
    assert load_config(path, ["data.max_len=8"]).model.max_positions == 10
    assert load_config(path, ["model.type=gru"]).model.type == "gru"  # no position table


@pytest.mark.parametrize(("override", "key", "value"), [
    ("train.lr=.inf", "train.lr", "inf"), ("train.lr=nan", "train.lr", "nan"),
    ("decode.length_penalty=-.inf", "decode.length_penalty", "-inf"),
    ("train.betas=[0.9, .nan]", "train.betas", "nan"),
    ("model.dropout=NaN", "model.dropout", "nan"),
])  # fmt: skip
def test_floats_must_be_finite(override: str, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert str(info.value) == f"--set {override}: {key}: must be a finite number, got {value}"


def test_errors_name_the_set_that_caused_them(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  heads: 4\ntrain:\n  lr: -1.0\n")
    with pytest.raises(ConfigError, match=rf"^{path}: train\.lr: must be > 0$"):
        load_config(path, ["model.heads=2"])  # the bad value is the file's
    with pytest.raises(ConfigError, match=r"^--set train\.lr=0: train\.lr: must be > 0$"):
        load_config(path, ["train.lr=0", "model.heads=2"])
    # A check across keys blames the --set of either key; the key at fault is named first.
    with pytest.raises(ConfigError, match=r"^--set model\.heads=3: model\.d_model: 256 is not "):
        load_config(path, ["train.lr=0.1", "model.heads=3"])
    with pytest.raises(ConfigError, match=r"^--set model=\{heads: 3\}: model\.d_model: "):
        load_config(path, ["train.lr=0.1", "model={heads: 3}"])  # a whole section set
    with pytest.raises(ConfigError, match=r"^--set data\.nope=1: data\.nope: unknown key"):
        load_config(path, ["data.nope=1"])


def test_set_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  lr: 0.1\n")
    cfg = load_config(path, ["train.lr=3e-4", "data.src_tokenizer.type=char", "data.dev=null"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.data.src_tokenizer.type == "char" and cfg.data.dev is None
    with pytest.raises(ConfigError, match=r"data\.nope: unknown key"):
        load_config(path, ["data.nope=1"])


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(write(tmp_path, "data: [unclosed\n"))
    with pytest.raises(ConfigError, match="invalid YAML: unacceptable character"):
        load_config(write(tmp_path, "seed: 1\x07\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= _keys(value, f"{prefix}{key}.")
    return out


def test_reference_yaml_lists_every_default() -> None:
    path = REPO_ROOT / "configs" / "reference.yaml"
    assert load_config(path) == Config()
    listed = _keys(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert listed == _keys(dataclasses.asdict(Config()))


def test_reference_yaml_comments_every_key() -> None:
    for number, line in enumerate((REPO_ROOT / "configs" / "reference.yaml").read_text(
            encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.endswith(":"):
            assert " # " in line, f"reference.yaml:{number} has no comment: {line}"


def test_quickstart_loads() -> None:
    cfg = load_config(REPO_ROOT / "configs" / "quickstart.yaml")
    assert cfg.data.src_tokenizer.type == "jieba" and cfg.data.tgt_tokenizer.type == "moses"
    assert cfg.run_dir == "runs/quickstart" and cfg.data.train == "data/sample/train.tsv"


def test_snapshot_minutes_is_a_list_of_positive_minutes(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  snapshot_minutes: [25, 7.5, '1e1']\n")
    assert load_config(path).train.snapshot_minutes == (25.0, 7.5, 10.0)
    assert load_config(None).train.snapshot_minutes == ()
    assert load_config(None, ["train.snapshot_minutes=[]"]).train.snapshot_minutes == ()
    with pytest.raises(ConfigError, match=r"train\.snapshot_minutes: every entry must be > 0"):
        load_config(None, ["train.snapshot_minutes=[10, 0]"])
    with pytest.raises(ConfigError, match=r"train\.snapshot_minutes: expected a list of float, "
                       r"got 25"):
        load_config(None, ["train.snapshot_minutes=25"])
    with pytest.raises(ConfigError, match=r"train\.snapshot_minutes: expected float, got 'ten'"):
        load_config(None, ["train.snapshot_minutes=[ten]"])
    with pytest.raises(ConfigError, match=r"train\.snapshot_minutes: must be a finite number"):
        load_config(None, ["train.snapshot_minutes=[.inf]"])


# Numeric keys that take any number of their type, each with the reason; every other numeric
# key must refuse an absurd value with a ConfigError naming it.
ANY_NUMBER = {
    "decode.max_len_b": "may be negative: the output limit a * |src| + b never drops below 1",
}


def _absurd(tp: Any) -> Any:
    """A value of annotation ``tp`` that no numeric rule should accept; None if ``tp`` is not
    numeric (an int, a float, or a list of them)."""
    if tp is int:
        return -(10**9)
    if tp is float:
        return -1e9
    if typing.get_origin(tp) is tuple:
        items = [_absurd(a) for a in typing.get_args(tp) if a is not Ellipsis]
        return items if items and None not in items else None
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        numeric = [a for a in typing.get_args(tp) if a is not type(None)]
        return _absurd(numeric[0]) if len(numeric) == 1 else None
    return None


def _numeric_keys(cls: type, prefix: str = "") -> dict[str, Any]:
    """Every numeric key of the schema under ``cls`` with its absurd value (as YAML)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out |= _numeric_keys(typing.cast(type, tp), f"{prefix}{f.name}.")
        elif (value := _absurd(tp)) is not None:
            out[prefix + f.name] = value
    return out


NUMERIC_KEYS = _numeric_keys(Config)


def test_the_schema_walk_finds_every_numeric_key() -> None:
    assert len(NUMERIC_KEYS) > 40
    for key in ("seed", "train.betas", "train.snapshot_minutes", "decode.length_penalty",
                "data.src_tokenizer.sp_vocab_size", "data.filters.max_ratio"):
        assert key in NUMERIC_KEYS
    assert "data.train" not in NUMERIC_KEYS and "train.device" not in NUMERIC_KEYS
    assert set(ANY_NUMBER) <= set(NUMERIC_KEYS)


@pytest.mark.parametrize("key", sorted(set(NUMERIC_KEYS) - set(ANY_NUMBER)))
def test_every_numeric_key_has_a_rule(key: str) -> None:
    override = f"{key}={json.dumps(NUMERIC_KEYS[key])}"  # JSON is YAML
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert str(info.value).startswith(f"--set {override}: {key}: "), str(info.value)


@pytest.mark.parametrize("key", sorted(ANY_NUMBER))
def test_keys_without_a_rule_take_any_number(key: str) -> None:
    load_config(None, [f"{key}={NUMERIC_KEYS[key]}"])


@pytest.mark.parametrize(("override", "message"), [
    ("train.log_every=0", "train.log_every: must be >= 1"),  # was a ZeroDivisionError
    ("decode.max_len_a=-1", "decode.max_len_a: must be >= 0"),
    ("decode.length_penalty=-1", "decode.length_penalty: must be >= 0"),
    ("train.max_epochs=0", "train.max_epochs: must be >= 1"),
    ("train.betas=[0.9, 1.0]", "train.betas: each must be in [0, 1)"),
    ("train.plateau_factor=1", "train.plateau_factor: must be in (0, 1)"),
    ("seed=4294967296", "seed: must be in [0, 2**32)"),  # sentencepiece's seed is 32-bit
    ("data.tgt_tokenizer.sp_vocab_size=2", "data.tgt_tokenizer.sp_vocab_size: must be >= 3"),
])  # fmt: skip
def test_values_that_used_to_fail_later(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^--set {re.escape(override)}: {re.escape(message)}"):
        load_config(None, [override])


def test_boundaries_are_accepted() -> None:
    cfg = load_config(None, [
        "seed=0", "train.log_every=1", "decode.max_len_a=0", "decode.length_penalty=0",
        "decode.max_len_b=-5", "train.betas=[0, 0.999]", "train.time_limit_minutes=0",
        "data.src_tokenizer.sp_vocab_size=3", "seed=4294967295",
    ])  # fmt: skip
    assert cfg.seed == 2**32 - 1 and cfg.decode.max_len_b == -5


def test_min_lr_above_lr_only_matters_on_a_plateau() -> None:
    assert load_config(None, ["train.min_lr=1"]).train.min_lr == 1.0  # noam ignores it
    with pytest.raises(ConfigError, match=r"^--set train\.min_lr=1: train\.min_lr: 1\.0 is above "
                       r"train\.lr=0\.0005: lowering the rate on a plateau would raise it$"):
        load_config(None, ["train.min_lr=1", "train.schedule=plateau"])


def test_decode_with_applies_the_decode_rules() -> None:
    base = DecodeConfig()
    updated = decode_with(base, {"length_penalty": "0.5", "beam_size": None})
    assert updated == dataclasses.replace(base, length_penalty=0.5)
    for options, message in [
        ({"length_penalty": -1.0}, "decode.length_penalty: must be >= 0 (0 = raw log-probability)"),
        ({"max_len_a": -1}, "decode.max_len_a: must be >= 0"),
        ({"length_penalty": float("nan")},
         "decode.length_penalty: must be a finite number, got nan"),
        ({"length_penalty": True}, "decode.length_penalty: expected float, got True"),
        ({"n_best": 6}, "decode.n_best: must be between 1 and decode.beam_size=5"),
        ({"beem_size": 2}, "decode.beem_size: unknown key (did you mean decode.beam_size?)"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as info:
            decode_with(base, options)
        assert str(info.value) == message
    with pytest.raises(ConfigError, match=r"^decode\.top_p: must be in \(0, 1\]"):
        check_decode(dataclasses.replace(base, top_p=0.0))
    check_decode(base)
