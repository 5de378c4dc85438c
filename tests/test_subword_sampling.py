"""nmt.datautil.subword_sampling (train.sp_alpha): training batches re-segmented by sampling,
the text unchanged, reproducible from the seed, the direction tag and <unk> left alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nmt.config import Config, load_config
from nmt.datautil.batching import collate
from nmt.datautil.build import build_vocab
from nmt.datautil.directions import BothDirections
from nmt.datautil.pipeline import TextProcessor
from nmt.datautil.subword_sampling import SubwordSampler, known_segmentation
from nmt.datautil.vocab import UNK_ID
from nmt.errors import ConfigError
from nmt.runtime import derived_seed
from nmt.training.data import load_train

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def spm_config(run: Path, *extra: str) -> Config:
    return load_config(None, [
        f"run_dir={run}", f"data.train={SAMPLE / 'train.tsv'}", f"data.dev={SAMPLE / 'dev.tsv'}",
        "data.src_tokenizer.type=sentencepiece", "data.tgt_tokenizer.type=sentencepiece",
        "data.src_tokenizer.sp_vocab_size=700", "data.tgt_tokenizer.sp_vocab_size=500",
        *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def spm_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Config, TextProcessor]:  # fmt: skip
    kind = request.param
    cfg = spm_config(tmp_path_factory.mktemp(kind), f"data.src_tokenizer.sp_model_type={kind}",
                     f"data.tgt_tokenizer.sp_model_type={kind}")  # fmt: skip
    build_vocab(cfg)
    return cfg, TextProcessor.load(cfg.run_dir, cfg.data)


def texts(processor: TextProcessor, ids: np.ndarray, side: str) -> str:
    vocab = processor.src_vocab if side == "src" else processor.tgt_vocab
    tokenizer = processor.src_tokenizer if side == "src" else processor.tgt_tokenizer
    return tokenizer.detokenize(vocab.decode(ids.tolist()))


def test_sampled_pairs_keep_their_text_and_change_their_pieces(
        spm_run: tuple[Config, TextProcessor]) -> None:  # fmt: skip
    cfg, processor = spm_run
    corpus = load_train(cfg, processor)
    sampler = SubwordSampler(processor, alpha=0.3, max_len=cfg.data.max_len)
    changed = longer = 0
    for i in range(len(corpus)):
        src, tgt = sampler.pair(corpus.src(i), corpus.tgt(i))
        assert texts(processor, src, "src") == texts(processor, corpus.src(i), "src")
        assert texts(processor, tgt, "tgt") == texts(processor, corpus.tgt(i), "tgt")
        changed += src.tolist() != corpus.src(i).tolist()
        longer += len(tgt) > len(corpus.tgt(i))
    # (the Chinese side of this small model is mostly single characters: fewer alternatives)
    assert changed > len(corpus) // 10 and longer > len(corpus) // 4


def test_bpe_dropout_of_zero_is_the_cached_segmentation(
        spm_run: tuple[Config, TextProcessor]) -> None:  # fmt: skip
    cfg, processor = spm_run
    if cfg.data.src_tokenizer.sp_model_type != "bpe":
        pytest.skip("a unigram model samples even at alpha 0 (a flat distribution)")
    corpus = load_train(cfg, processor)
    sampler = SubwordSampler(processor, alpha=0.0, max_len=cfg.data.max_len)
    for i in range(len(corpus)):
        src, tgt = sampler.pair(corpus.src(i), corpus.tgt(i))
        assert src.tolist() == corpus.src(i).tolist() and tgt.tolist() == corpus.tgt(i).tolist()


def test_an_epoch_sample_is_a_function_of_its_seed(spm_run: tuple[Config, TextProcessor]) -> None:
    cfg, processor = spm_run
    corpus = load_train(cfg, processor)
    sampler = SubwordSampler(processor, alpha=0.3, max_len=cfg.data.max_len)
    a, b = (sampler.sample_corpus(corpus, derived_seed(1, 7)) for _ in range(2))
    c = sampler.sample_corpus(corpus, derived_seed(1, 8))
    assert len(a) == len(c) == len(corpus)
    assert np.array_equal(a.src_ids, b.src_ids) and np.array_equal(a.tgt_ids, b.tgt_ids)
    assert not np.array_equal(a.tgt_offsets, c.tgt_offsets)
    assert a.tgt_lengths().sum() > corpus.tgt_lengths().sum()  # sampled segmentations are longer
    for i in range(len(corpus)):
        assert texts(processor, a.tgt(i), "tgt") == texts(processor, corpus.tgt(i), "tgt")


def test_training_packs_batches_by_the_sampled_lengths(tmp_path: Path) -> None:
    from nmt.training.session import TrainingSession

    # Packed by the cached lengths, a sampled batch came out up to twice the budget wide.
    budget = 300
    cfg = spm_config(tmp_path, "train.sp_alpha=0.3", f"train.batch_tokens={budget}",
                     "model.d_model=32", "model.enc_layers=1", "model.dec_layers=1",
                     "model.heads=2", "model.ff_size=64")  # fmt: skip
    build_vocab(cfg)
    session = TrainingSession(cfg)
    cached = session.corpus
    for epoch in (0, 1):
        data = session._epoch_data(epoch)
        assert data.corpus is not cached and len(data.corpus) == len(cached)
        for indices in data.batches:
            batch = collate(data.corpus, indices)
            width = max(batch.src.size(1), batch.tgt_out.size(1))
            assert len(indices) == 1 or len(indices) * width <= budget
        assert sorted(i for b in data.batches for i in b) == list(range(len(cached)))
    assert not np.array_equal(session._epoch_data(0).corpus.tgt_ids,
                              session._epoch_data(1).corpus.tgt_ids)  # fmt: skip


def test_an_epoch_is_drawn_once_and_read_back_by_another_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    # sentencepiece draws differently in every process, even from one seed: a resumed run (or
    # another rank) must read the epoch that was drawn, not draw it again.
    cfg = spm_config(tmp_path, "train.sp_alpha=0.3")
    build_vocab(cfg)
    script = (
        "import hashlib, sys\n"
        "from nmt.config import load_config\n"
        "from nmt.training.session import TrainingSession\n"
        "if __name__ == '__main__':\n"
        "    corpus = TrainingSession(load_config(sys.argv[1]))._epoch_data(0).corpus\n"
        "    print(hashlib.sha256(corpus.src_ids.tobytes() + corpus.tgt_ids.tobytes()"
        ").hexdigest())\n"
    )
    config = tmp_path / "config.yaml"
    digests = [subprocess.run([sys.executable, "-c", script, str(config)], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
               for _ in range(2)]  # fmt: skip
    assert len(list((tmp_path / "cache").glob("sampled-*.npz"))) == 1
    assert digests[0] and digests[0] == digests[1]


def test_unknown_pieces_too_long_samples_and_the_tag_are_kept(
        spm_run: tuple[Config, TextProcessor]) -> None:  # fmt: skip
    cfg, processor = spm_run
    corpus = load_train(cfg, processor)
    src = corpus.src(0)
    with_unk = np.concatenate([src, np.array([UNK_ID], dtype=src.dtype)])
    sampler = SubwordSampler(processor, alpha=0.5, max_len=cfg.data.max_len)
    assert sampler.pair(with_unk, corpus.tgt(0))[0].tolist() == with_unk.tolist()
    short = SubwordSampler(processor, alpha=0.5, max_len=len(src))
    for _ in range(20):  # a sample longer than max_len falls back to the cached ids
        assert len(short.pair(src, corpus.tgt(0))[0]) <= len(src)


def test_both_directions_sample_each_language_with_its_own_model(tmp_path: Path) -> None:
    cfg = spm_config(tmp_path, "data.directions=both", "data.joint_vocab=true",
                     "data.src_tokenizer.sp_vocab_size=900", "data.tgt_tokenizer.sp_vocab_size=900")
    build_vocab(cfg)
    processor = TextProcessor.load(cfg.run_dir, cfg.data)
    vocab = processor.src_vocab
    forward, backward = (vocab.token_to_id(t) for t in ("<2en>", "<2zh>"))
    corpus = BothDirections(load_train(cfg, processor), forward, backward)
    sampler = SubwordSampler(processor, alpha=0.3, max_len=cfg.data.max_len)
    half = len(corpus) // 2
    for i in (0, 1, half, half + 1):
        src, tgt = sampler.pair(corpus.src(i), corpus.tgt(i))
        assert src[0] == corpus.src(i)[0] in (forward, backward)
        text = processor.src_tokenizer.detokenize(vocab.decode(src[1:].tolist()))
        assert text == processor.src_tokenizer.detokenize(vocab.decode(corpus.src(i)[1:].tolist()))
        assert texts(processor, tgt, "tgt") == texts(processor, corpus.tgt(i), "tgt")


def test_sp_alpha_needs_a_sentencepiece_side_and_a_probability(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.sp_alpha.*neither side"):
        load_config(None, ["train.sp_alpha=0.1"])  # jieba and moses by default
    with pytest.raises(ConfigError, match=r"train.sp_alpha.*\[0, 1\)"):
        spm_config(tmp_path, "train.sp_alpha=1.0")
    assert spm_config(tmp_path, "train.sp_alpha=0.1").train.sp_alpha == 0.1


def test_the_sampler_is_on_only_with_an_alpha(spm_run: tuple[Config, TextProcessor]) -> None:
    _, processor = spm_run
    assert SubwordSampler.for_run(processor, 0.0, 60) is None
    assert isinstance(SubwordSampler.for_run(processor, 0.1, 60), SubwordSampler)


def test_unknown_sampled_pieces_fall_back_to_the_cached_ones_between_shared_cuts() -> None:
    from nmt.datautil.vocab import Vocabulary

    vocab = Vocabulary(["▁明年", "▁去", "▁", "去", "巴黎", "巴", "黎", "。"])
    cached = ["▁明年", "▁去", "巴黎", "。"]
    # "明" and "年" are unknown: the span up to the next shared cut (after "▁明年") is cached;
    # "▁" "去" and "巴" "黎" are known samples and stay.
    sampled = ["▁", "明", "年", "▁", "去", "巴", "黎", "。"]
    assert known_segmentation(cached, sampled, vocab) == ["▁明年", "▁", "去", "巴", "黎", "。"]
    assert known_segmentation(cached, ["▁明年", "▁去", "巴黎"], vocab) is None  # not one string
    # cuts that cross: the chunk runs to the first cut both share
    crossing = ["▁明", "年▁去", "巴黎", "。"]
    assert known_segmentation(cached, crossing, vocab) == ["▁明年", "▁去", "巴黎", "。"]


def test_training_samples_its_batches_and_resumes_exactly(tmp_path: Path) -> None:
    from nmt.training.trainer import train

    tiny = ["model.d_model=32", "model.enc_layers=1", "model.dec_layers=1", "model.heads=2",
            "model.ff_size=64", "train.batch_tokens=400", "train.warmup_steps=4",
            "train.log_every=1", "train.valid_every=100", "train.threads=1"]  # fmt: skip

    def run(name: str, steps: int, alpha: float, resume: bool = False) -> dict[int, float]:
        cfg = spm_config(tmp_path / name, *tiny, f"train.max_steps={steps}",
                         f"train.sp_alpha={alpha}")  # fmt: skip
        if not resume:
            build_vocab(cfg)
        train(cfg, resume=resume)
        lines = (tmp_path / name / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines]
        return {r["step"]: r["loss"] for r in records if r["event"] == "train"}

    whole = run("whole", 6, 0.2)
    run("resumed", 3, 0.2)
    resumed = run("resumed", 6, 0.2, resume=True)
    assert sorted(resumed) == list(range(1, 7))
    assert all(abs(resumed[s] - whole[s]) <= 1e-6 * abs(whole[s]) for s in whole)
    plain = run("plain", 6, 0.0)
    assert any(abs(plain[s] - whole[s]) > 1e-4 for s in whole)  # the batches were sampled
