"""nmt.translate.streaming: sentences translated through one running greedy batch, joining at
any step, read exactly as Translator.translate's greedy translations; and when it applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmt.translate import Translator
from nmt.translate.streaming import StreamingGreedy

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


@pytest.fixture(scope="module")
def translator(quickstart_run: Path) -> Translator:
    return Translator.load(quickstart_run, device="cpu")


def test_streamed_translations_are_the_translators(translator: Translator) -> None:
    lines = [line.split("\t")[1] for line in
             (SAMPLE / "test.tsv").read_text(encoding="utf-8").splitlines()]
    lines = [*lines[:30], "", "   "]  # nothing to translate: answered at once
    greedy = translator.decode_config(strategy="greedy")
    expected = translator.translate(lines, greedy, return_details=True)
    session = translator.stream(greedy)
    assert isinstance(session, StreamingGreedy)
    got = dict(session.add(lines[:5], list(range(5))))
    step = 0
    while session.live or step < 12:
        if step < 12 and step % 2 == 0:  # a few sentences join every other step
            start = 5 + step // 2 * 5
            chunk = range(start, min(start + 5, len(lines)))
            got.update(session.add([lines[i] for i in chunk], list(chunk)))
        got.update(session.step())
        step += 1
    assert sorted(got) == list(range(len(lines)))
    for i, want in enumerate(expected):
        assert got[i].translation == want.translation, lines[i]
        assert got[i].tokens == want.tokens and got[i].src_tokens == want.src_tokens
        assert got[i].score == pytest.approx(want.score, abs=1e-4)
    assert got[30].translation == "" and got[31].translation == ""


def test_only_plain_greedy_search_streams(translator: Translator) -> None:
    assert translator.stream(translator.decode_config(strategy="greedy")) is not None
    for options in ({"strategy": "beam"}, {"strategy": "sample"},
                    {"strategy": "greedy", "replace_unk": True},
                    {"strategy": "greedy", "no_repeat_ngram_size": 2},
                    {"strategy": "greedy", "banned_words": ["tea"]}):
        assert translator.stream(translator.decode_config(options)) is None, options


def test_an_ensemble_does_not_stream(quickstart_run: Path) -> None:
    ensemble = Translator.load(quickstart_run, device="cpu", checkpoint="best,latest")
    assert ensemble.stream(ensemble.decode_config(strategy="greedy")) is None
