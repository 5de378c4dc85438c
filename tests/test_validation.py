"""Validation decodes the dev set as translate does, and scores it against raw references."""

from __future__ import annotations

from pathlib import Path

import sacrebleu
import torch
from test_translate import build_run

from nmt.config import replace
from nmt.training.data import load_dev
from nmt.training.validation import bleu_tokenize, validate
from nmt.translate import Translator


def _dev_file(path: Path) -> Path:
    rows = [
        # Normalization would turn the reference into "Tom, hi!" (NFKC, spaces): scores
        # are against the text as the corpus has it.
        ("Ｔｏｍ ,  hi！", "汤姆，你好！"),
        ("I like tea.", "我喜欢茶。"),
        # Far longer than the model's 64 positions: cut as translate cuts it, not a crash.
        ("A long one.", "我" * 300),
    ]
    path.write_text("".join(f"{en}\t{zh}\tCC-BY\n" for en, zh in rows), encoding="utf-8")
    return path


def test_validation_truncates_like_translate_and_scores_raw_references(tmp_path: Path) -> None:
    run = build_run(tmp_path / "runs", "transformer")
    translator = Translator.load(run, device="cpu", precision="fp32")
    dev_path = _dev_file(tmp_path / "dev.tsv")
    cfg = translator.config
    cfg = replace(cfg, data=replace(cfg.data, dev=str(dev_path)))
    dev = load_dev(cfg, translator.processor)
    assert dev is not None
    assert dev.references == ["Ｔｏｍ ,  hi！", "I like tea.", "A long one."]
    assert len(dev.corpus.src(2)) > cfg.model.max_positions  # the source itself is not cut

    result = validate(translator.model, dev, translator.processor, cfg, torch.device("cpu"), None)

    sources = [line.split("\t")[1] for line in dev_path.read_text("utf-8").splitlines()]
    hyps = translator.translate(sources, strategy="greedy")
    expected = sacrebleu.corpus_bleu(hyps, [dev.references],
                                     tokenize=bleu_tokenize(cfg.data.tgt_lang)).score
    assert result.sentences == 3
    assert result.bleu == expected
