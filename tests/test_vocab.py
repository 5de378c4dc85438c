"""nmt.datautil.vocab: specials, order, min_freq/max_size, files, encode/decode, determinism."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nmt.datautil.vocab import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK,
    UNK_ID,
    Vocabulary,
)
from nmt.errors import DataError

COUNTS = Counter({"the": 5, "cat": 3, "dog": 3, "a": 3, "sat": 1, "猫": 2})


def test_specials_come_first() -> None:
    vocab = Vocabulary.build(COUNTS)
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert vocab.tokens[:4] == ["<pad>", "<unk>", "<s>", "</s>"] == list(SPECIALS)


def test_order_is_count_desc_then_token() -> None:
    assert Vocabulary.build(COUNTS).tokens[4:] == ["the", "a", "cat", "dog", "猫", "sat"]


def test_min_freq_and_max_size() -> None:
    assert Vocabulary.build(COUNTS, min_freq=3).tokens[4:] == ["the", "a", "cat", "dog"]
    assert Vocabulary.build(COUNTS, max_size=2).tokens[4:] == ["the", "a"]
    assert len(Vocabulary.build(COUNTS, min_freq=2, max_size=100)) == 4 + 5
    assert len(Vocabulary.build({}, min_freq=1)) == 4


def test_specials_in_counts_are_not_duplicated() -> None:
    vocab = Vocabulary.build({"<unk>": 9, "<s>": 4, "x": 1})
    assert vocab.tokens == [*SPECIALS, "x"]


def test_encode_decode() -> None:
    vocab = Vocabulary.build(COUNTS)
    ids = vocab.encode(["the", "cat", "zebra"], add_bos=True, add_eos=True)
    assert ids == [BOS_ID, vocab.token_to_id("the"), vocab.token_to_id("cat"), UNK_ID, EOS_ID]
    assert vocab.decode(ids) == ["the", "cat", UNK]  # <unk> kept, <s>/</s> stripped
    assert vocab.decode([*ids, PAD_ID, PAD_ID], strip_special=False)[-3:] == [
        "</s>", "<pad>", "<pad>"]
    # decoding stops at the first </s>
    assert vocab.decode([vocab.token_to_id("a"), EOS_ID, vocab.token_to_id("dog")]) == ["a"]
    with pytest.raises(ValueError, match="out of range"):
        vocab.decode([len(vocab)])


@given(st.lists(st.sampled_from(sorted(COUNTS)), max_size=20))
def test_round_trip_known_tokens(tokens: list[str]) -> None:
    vocab = Vocabulary.build(COUNTS)
    assert vocab.decode(vocab.encode(tokens, add_bos=True, add_eos=True)) == tokens


@given(st.lists(st.text(min_size=1, max_size=4), max_size=15))
def test_round_trip_any_tokens(tokens: list[str]) -> None:
    vocab = Vocabulary.build(Counter(tokens))
    decoded = vocab.decode(vocab.encode(tokens))
    # Everything comes back except tokens that are specials themselves.
    expected = [t for t in tokens if t not in ("<pad>", "<s>")]
    if "</s>" in expected:
        expected = expected[: expected.index("</s>")]
    assert decoded == expected


def test_save_load_round_trip(tmp_path: Path) -> None:
    vocab = Vocabulary.build(COUNTS)
    vocab.save(tmp_path / "v.vocab")
    text = (tmp_path / "v.vocab").read_text(encoding="utf-8")
    assert text.splitlines()[:6] == ["<pad>\t0", "<unk>\t0", "<s>\t0", "</s>\t0", "the\t5", "a\t3"]
    assert text.endswith("\n") and "\r" not in text
    loaded = Vocabulary.load(tmp_path / "v.vocab")
    assert loaded == vocab and loaded.count("cat") == 3


def test_save_rejects_unsavable_tokens(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be saved"):
        Vocabulary(["a\tb"]).save(tmp_path / "v")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<pad>\t0\n<unk>\t0\n<s>\t0\n</s>\t0\nnocount\n", r"v:5: expected 'token<TAB>count'"),
        ("<pad>\t0\n<unk>\t0\n<s>\t0\n</s>\t0\nx\tmany\n", r"v:5: expected"),
        ("a\t1\n", "must start with the specials"),
        ("<pad>\t0\n<unk>\t0\n<s>\t0\n</s>\t0\nx\t1\nx\t1\n", "duplicate token"),
    ],
)
def test_load_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "v").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        Vocabulary.load(tmp_path / "v")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        Vocabulary.load(tmp_path / "missing.vocab")


_BUILD_FROM_SET = """
import sys
from collections import Counter
from nmt.datautil.vocab import Vocabulary
words = {f"w{i}" for i in range(300)} | {"猫", "狗", "tea", "茶"}
counts = Counter()
for w in words:  # set order depends on PYTHONHASHSEED
    counts[w] += 1 + len(w) % 3
Vocabulary.build(counts, max_size=200).save(sys.argv[1])
"""


def test_file_is_identical_across_hash_seeds(tmp_path: Path) -> None:
    outputs = []
    for seed in ("0", "1", "12345"):
        out = tmp_path / f"v{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", _BUILD_FROM_SET, str(out)], env=env, check=True)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
