"""scripts/make_glossary.py: a glossary that nmt reads, drawn from the bundled sample corpus."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nmt.datautil.glossary import read_glossary

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import make_glossary  # noqa: E402

SAMPLE = REPO / "data" / "sample"


def test_pairs_aligned_names_and_nouns(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:  # fmt: skip
    code = make_glossary.main([str(SAMPLE / "test.tsv"), "--train", str(SAMPLE / "train.tsv"),
                               "--min-count", "2", "--min-split", "1"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    path = tmp_path / "g.tsv"
    path.write_text(out, encoding="utf-8")
    glossary = read_glossary(path)
    assert glossary.entries, "no pairs drawn"
    english = [tgt for _, tgt in glossary.entries]
    assert len({e.lower() for e in english}) == len(english)  # one source term per English word
    test_pairs = (SAMPLE / "test.tsv").read_text(encoding="utf-8").splitlines()
    for zh, en in glossary.entries:  # every pair occurs, aligned, in the split
        assert any(zh in line.split("\t")[1] and en in line.split("\t")[0] for line in test_pairs)
