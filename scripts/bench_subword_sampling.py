"""What ``train.sp_alpha`` costs a training step, side by side with the cached segmentation.

    python scripts/bench_subword_sampling.py RUN_DIR [--rounds 4] [--batches 12]

RUN_DIR: a run with a sentencepiece side and ``train.sp_alpha`` set (its vocabulary and token
cache are copied to a temporary run; nothing in RUN_DIR is written). Prints:

- the time to re-segment the whole corpus for one epoch (``SubwordSampler.sample_corpus``);
- batches per epoch, padding and pieces per side, cached against sampled;
- the widest batch (rows x positions) against ``train.batch_tokens`` when the sampled pairs
  are packed by the cached lengths (the packing before #19's fix) and by their own;
- seconds per training step on the first ``--batches`` batches of epoch 0, cached and sampled
  in turn in each round (the first round warms up and is dropped), and their medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from nmt.config import load_config
from nmt.datautil.batching import PairSource, collate
from nmt.runtime import derived_seed
from nmt.training.session import TrainingSession
from nmt.training.trainer import train_step


def widest(corpus: PairSource, batches: Sequence[list[int]]) -> int:
    """The largest rows x max(source, target) positions among ``batches`` (the packing cost)."""
    costs = []
    for indices in batches:
        batch = collate(corpus, indices)
        costs.append(len(indices) * max(batch.src.size(1), batch.tgt_out.size(1)))
    return max(costs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", type=Path, help="a run directory with train.sp_alpha > 0")
    p.add_argument("--rounds", type=int, default=4, help="rounds (the first is dropped)")
    p.add_argument("--batches", type=int, default=12, help="training steps per variant a round")
    args = p.parse_args(argv)
    cfg = load_config(args.run / "config.yaml")
    if cfg.train.sp_alpha <= 0:
        print(f"{args.run}: train.sp_alpha is 0; nothing to compare", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for part in ("vocab", "cache"):
            shutil.copytree(args.run / part, work / part)
        session = TrainingSession(dataclasses.replace(cfg, run_dir=str(work)))
        assert session.subwords is not None
        started = time.perf_counter()
        session.subwords.sample_corpus(session.corpus, derived_seed(cfg.seed, 0))
        print(f"re-segmenting {len(session.corpus)} pairs: "
              f"{time.perf_counter() - started:.2f} s an epoch")  # fmt: skip
        cached = session.sampler.epoch_batches(0)
        sampled = session._epoch_data(0)
        print(f"batches per epoch: cached {len(cached)}, sampled {len(sampled.batches)}; "
              f"padding {100 * session.sampler.padding_fraction(cached):.1f}% cached, "
              f"{100 * sampled.sampler.padding_fraction(sampled.batches):.1f}% sampled")
        for side in ("src", "tgt"):
            ratio = (getattr(sampled.corpus, f"{side}_lengths")().sum()
                     / getattr(session.corpus, f"{side}_lengths")().sum())  # fmt: skip
            print(f"{side} pieces, sampled / cached: {ratio:.2f}")
        budget = cfg.train.batch_tokens
        print(f"widest batch / batch_tokens ({budget}): sampled pairs packed by cached lengths "
              f"{widest(sampled.corpus, cached) / budget:.2f}, by sampled lengths "
              f"{widest(sampled.corpus, sampled.batches) / budget:.2f}")
        variants = {"cached": (session.corpus, list(cached)[: args.batches]),
                    "sampled": (sampled.corpus, list(sampled.batches)[: args.batches])}
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            for name, (corpus, batches) in variants.items():
                started = time.perf_counter()
                for indices in batches:
                    batch = collate(corpus, indices)
                    sums, _ = train_step(session.model, session.optimizer, [batch],
                                         batch.n_tgt_tokens, cfg.train, session.device,
                                         session.dtype, session.scaler)  # fmt: skip
                float(sums[0])  # wait for the last step
                seconds[name].append((time.perf_counter() - started) / len(batches))
                print(f"round {round_} {name}: {seconds[name][-1]:.3f} s a step", flush=True)
        medians = {name: statistics.median(s[1:] or s) for name, s in seconds.items()}
        print(f"median s a step: cached {medians['cached']:.3f}, sampled "
              f"{medians['sampled']:.3f} (ratio {medians['sampled'] / medians['cached']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
