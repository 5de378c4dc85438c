"""Draw a glossary (``Chinese term<TAB>English term``) from an aligned corpus split.

Word pairs are aligned by co-occurrence over the training corpus and the split together: a
Chinese jieba noun, name, place or time word (two or more Han characters, part-of-speech tag
n*, t) and an English word (three or more letters, not
a stop word) that occur in the same sentence pairs often enough, measured by the Dice
coefficient, are a pair. Names (汤姆 / Tom) and concrete nouns come out on top. The glossary
keeps the pairs that occur in the split (at least ``--min-split`` times), most frequent first.

    python scripts/make_glossary.py ../shared/data/cmn-eng/test.tsv \
        --train ../shared/data/cmn-eng/train.tsv --size 80 > runs/glossary.tsv

The glossary is derived from the corpus: generate it where you need it, do not commit it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

STOP = set("""the and you are was were has have had not but for with this that what who
whom which when where why how all any can could would should will shall may might must
his her him she they them their there here its our your yours mine been being does did
doing done into from than then too very just only also about over under again more most
some such own same other each few both nor out off once don't didn't isn't aren't wasn't
tom's""".split())  # noqa: SIM905 (a word list reads better as text)
_HAN = re.compile(r"^[\u4e00-\u9fff]{2,}$")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")


def pairs(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            out.append((parts[1], parts[0]))  # (Chinese, English)
    return out


def words(zh: str, en: str, cut: object) -> tuple[set[str], set[str]]:
    zh_words = {w.word for w in cut(zh)  # type: ignore[operator]
                if _HAN.match(w.word) and w.flag[:1] in ("n", "t")}  # fmt: skip
    en_words = {w for w in _WORD.findall(en) if len(w) >= 3 and w.lower() not in STOP}
    return zh_words, en_words


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("split", type=Path, help="TSV split the glossary is for (English<TAB>Chinese)")
    ap.add_argument("--train", type=Path, action="append", default=[],
                    help="more TSV files to count co-occurrences in (repeatable)")
    ap.add_argument("--size", type=int, default=80, help="pairs to keep (default 80)")
    ap.add_argument("--min-count", type=int, default=4, help="co-occurrences over all files")
    ap.add_argument("--min-dice", type=float, default=0.5, help="Dice coefficient")
    ap.add_argument("--min-split", type=int, default=2, help="occurrences in the split")
    args = ap.parse_args(argv)

    import jieba
    import jieba.posseg

    jieba.setLogLevel(60)
    cut = jieba.posseg.lcut
    split = pairs(args.split)
    corpus = split + [p for path in args.train for p in pairs(path)]
    zh_count: Counter[str] = Counter()
    en_count: Counter[str] = Counter()
    both: Counter[tuple[str, str]] = Counter()
    for zh, en in corpus:
        zh_words, en_words = words(zh, en, cut)
        zh_count.update(zh_words)
        en_count.update(en_words)
        both.update((z, e) for z in zh_words for e in en_words)
    best: dict[str, tuple[float, str]] = {}
    for (z, e), n in both.items():
        if n < args.min_count:
            continue
        dice = 2 * n / (zh_count[z] + en_count[e])
        if dice >= args.min_dice and dice > best.get(z, (0.0, ""))[0]:
            best[z] = (dice, e)
    in_split: Counter[tuple[str, str]] = Counter()
    for zh, en in split:
        zh_words, en_words = words(zh, en, cut)
        for z in zh_words:
            if z in best and best[z][1] in en_words:
                in_split[(z, best[z][1])] += 1
    used_en: set[str] = set()
    chosen = []
    for (z, e), n in in_split.most_common():
        if n < args.min_split or e.lower() in used_en:
            continue
        used_en.add(e.lower())
        chosen.append((z, e))
        if len(chosen) == args.size:
            break
    for z, e in chosen:
        print(f"{z}\t{e}")
    print(f"{len(chosen)} pairs from {len(corpus)} sentence pairs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
