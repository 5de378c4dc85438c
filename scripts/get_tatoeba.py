#!/usr/bin/env python3
"""Download the Tatoeba Chinese-English pairs (Anki ``cmn-eng``) and split them for nmt.

    python scripts/get_tatoeba.py [--out data/tatoeba] [--dev 1000] [--test 1000] [--seed 1]

Writes ``train``/``dev``/``test`` as ``.tsv`` (``English<TAB>Chinese<TAB>attribution``, the
attribution that the CC-BY licence asks for) and as line-aligned ``.zh``/``.en`` files.

Exact duplicate pairs are dropped. Pairs that share an English or a Chinese sentence are kept
in the same split (connected components of a union-find over sentences), so no dev or test
sentence is ever seen in training: Tatoeba has many translations of one sentence, and a
random split would leak them.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

URL = "https://www.manythings.org/anki/cmn-eng.zip"
MEMBER = "cmn.txt"

Pair = tuple[str, str, str]  # English, Chinese, attribution


def parse_pairs(lines: Sequence[str]) -> list[Pair]:
    """Pairs from ``cmn.txt`` lines, in file order, without exact duplicates (English, Chinese).

    Lines with fewer than two TAB-separated columns or an empty side are skipped.
    """
    seen: set[tuple[str, str]] = set()
    out: list[Pair] = []
    for line in lines:
        cols = line.rstrip("\r").split("\t")
        if len(cols) < 2:
            continue
        en, zh = cols[0].strip(), cols[1].strip()
        attribution = cols[2].strip() if len(cols) > 2 else ""
        if not en or not zh or (en, zh) in seen:
            continue
        seen.add((en, zh))
        out.append((en, zh, attribution))
    return out


def _components(pairs: Sequence[Pair]) -> list[list[int]]:
    """Indices of ``pairs`` grouped so that pairs sharing a sentence are in one group."""
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[tuple[str, str], int] = {}
    for i, (en, zh, _) in enumerate(pairs):
        for key in (("en", en), ("zh", zh)):
            j = first_with.setdefault(key, i)
            if j != i:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(find(i), []).append(i)
    # Ordered by first member, so the result does not depend on hashing.
    return sorted(groups.values(), key=lambda g: g[0])


def split_pairs(
    pairs: Sequence[Pair], dev_size: int, test_size: int, seed: int
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Seeded train/dev/test split in which no sentence appears in two splits.

    Whole groups (see :func:`_components`) go to test until it has ``test_size`` pairs, then
    to dev, the rest to train; a group that would overshoot a held-out split is passed over,
    so held-out sets are at most the requested size. Each split keeps the input order.
    """
    if dev_size < 0 or test_size < 0:
        raise ValueError("dev and test sizes must be >= 0")
    groups = _components(pairs)
    random.Random(seed).shuffle(groups)
    test: list[int] = []
    dev: list[int] = []
    train: list[int] = []
    for group in groups:
        if len(test) + len(group) <= test_size:
            test += group
        elif len(dev) + len(group) <= dev_size:
            dev += group
        else:
            train += group

    def take(indices: list[int]) -> list[Pair]:
        return [pairs[i] for i in sorted(indices)]

    return take(train), take(dev), take(test)


def download(url: str = URL) -> list[str]:
    """The lines of ``cmn.txt`` from the Anki zip (the site refuses clients without a UA)."""
    request = urllib.request.Request(url, headers={"User-Agent": "nmt-get-tatoeba/1.0"})
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - fixed https URL
        data = response.read()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        text = archive.read(MEMBER).decode("utf-8-sig")
    return text.split("\n")  # "\n" only: sentences may contain other line separators


def write_split(out_dir: Path, name: str, pairs: Sequence[Pair]) -> None:
    """``NAME.tsv`` plus the aligned ``NAME.zh`` / ``NAME.en`` (UTF-8, ``\\n`` endings)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        f"{name}.tsv": "".join(f"{e}\t{z}\t{a}\n" for e, z, a in pairs),
        f"{name}.zh": "".join(f"{z}\n" for _, z, _ in pairs),
        f"{name}.en": "".join(f"{e}\n" for e, _, _ in pairs),
    }
    for file_name, text in files.items():
        (out_dir / file_name).write_bytes(text.encode("utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("data/tatoeba"), help="output directory")
    parser.add_argument("--dev", type=int, default=1000, help="dev pairs (at most)")
    parser.add_argument("--test", type=int, default=1000, help="test pairs (at most)")
    parser.add_argument("--seed", type=int, default=1, help="shuffling seed")
    parser.add_argument("--url", default=URL, help="zip to download")
    args = parser.parse_args(argv)
    try:
        lines = download(args.url)
    except (OSError, zipfile.BadZipFile, KeyError) as e:
        print(f"get_tatoeba: cannot download {args.url}: {e}", file=sys.stderr)
        return 1
    pairs = parse_pairs(lines)
    train, dev, test = split_pairs(pairs, args.dev, args.test, args.seed)
    for name, part in (("train", train), ("dev", dev), ("test", test)):
        write_split(args.out, name, part)
    print(f"{len(pairs)} pairs -> {args.out}/: train {len(train)}, dev {len(dev)}, "
          f"test {len(test)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
