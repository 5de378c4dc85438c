"""Text normalization: the first step of the one pre-processing path (see ``pipeline.py``).

The same sentence typed on different keyboards differs in width (``，`` vs ``,``), in invisible
characters and in spacing; left alone, each variant becomes its own vocabulary entry. Every
step here is idempotent, so normalizing already-normalized text changes nothing:

1. control and invisible format characters are removed (line/paragraph separators and tabs
   become spaces);
2. Unicode NFKC (full-width Latin letters and digits become ASCII, ``…`` becomes ``...``);
3. whitespace runs collapse to one space, ends are stripped;
4. punctuation is made consistent per language: the Chinese side uses full-width
   ``，。！？：；（）`` next to Chinese text (NFKC made them half-width) and drops spaces next
   to Chinese characters;
   the English side uses ASCII punctuation and straight quotes;
5. optionally Traditional -> Simplified Chinese (OpenCC ``t2s``) and lowercasing.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from nmt.config import DataConfig, Lang

# C0/C1 controls except the whitespace ones, and invisible format (Cf) characters.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u061c\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_SPACES = re.compile(r"\s+")  # str patterns: also \x85, \u2028, \u2029, \x1c-\x1f, \u3000

# Ideographs, kana, Hangul, CJK symbols/punctuation and the full-width forms block.
_CJK_CLASS = (
    "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003134f"
)
_CJK = re.compile(f"[{_CJK_CLASS}]")
_SPACE_NEAR_CJK = re.compile(f" (?=[{_CJK_CLASS}])|(?<=[{_CJK_CLASS}]) ")

_ZH_FULL = {",": "，", ".": "。", "!": "！", "?": "？", ":": "：", ";": "；", "(": "（", ")": "）"}
_TERMINAL = ".!?"
_EN_HALF = str.maketrans(
    {
        "。": ".", "、": ",", "“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'",
        "「": '"', "」": '"', "『": '"', "』": '"', "《": '"', "》": '"', "〈": '"', "〉": '"',
        "【": "[", "】": "]", "〔": "(", "〕": ")", "～": "~",
    }
)


def is_cjk(char: str) -> bool:
    """True for Chinese/Japanese/Korean characters and full-width punctuation."""
    return _CJK.match(char) is not None


def _neighbour(chars: list[str], i: int, step: int) -> str | None:
    j = i + step
    while 0 <= j < len(chars) and chars[j] == " ":
        j += step
    return chars[j] if 0 <= j < len(chars) else None


def _after_abbreviation(chars: list[str], i: int) -> bool:
    """True when the Latin word before ``chars[i]`` already has a dot (``U.S.``, ``a.m.``)."""
    j = i - 1
    while j >= 0 and chars[j] != " " and not is_cjk(chars[j]):
        if chars[j] == ".":
            return True
        j -= 1
    return False


def _zh_punctuation(text: str) -> str:
    """Half-width punctuation next to Chinese text becomes full-width.

    A ``.`` converts only after a Chinese character or at the very end of the line, and never
    inside ``3.5``, ``U.S.`` or ``...``; the others convert when either neighbour is Chinese;
    ``!?.`` at the end of a line that contains Chinese convert too (``你是Tom?`` -> ``你是Tom？``).
    """
    if not _CJK.search(text):
        return text
    chars = list(text)
    # A conversion can make a neighbour's conversion possible (``x,.`` at the end of a line),
    # never impossible, so repeating until nothing changes reaches the same result from any
    # partly converted input: that makes normalization idempotent.
    while _convert_once(chars):
        pass
    return "".join(chars)


def _convert_once(chars: list[str]) -> bool:
    changed = False
    last = len(chars) - 1
    for i, c in enumerate(chars):
        full = _ZH_FULL.get(c)
        if full is None:
            continue
        prev, nxt = _neighbour(chars, i, -1), _neighbour(chars, i, 1)
        prev_cjk = prev is not None and is_cjk(prev)
        terminal = c in _TERMINAL and nxt is None
        if c == ".":
            in_run = prev == "." or nxt == "."
            convert = not in_run and (prev_cjk or (terminal and i == last))
            if convert and not prev_cjk and _after_abbreviation(chars, i):
                convert = False
        else:
            convert = prev_cjk or (nxt is not None and is_cjk(nxt)) or terminal
        if convert:
            chars[i] = full
            changed = True
    return changed


class Normalizer:
    """Callable that normalizes one language's sentences (see the module docstring).

    Args:
        lang: ``"zh"`` or ``"en"``; decides the punctuation style.
        traditional_to_simplified: Chinese only: convert with OpenCC ``t2s``.
        lowercase: lowercase everything (the tokenizer option of the same name).
        keep_spaces: Chinese only: keep spaces next to Chinese characters (for pre-tokenized
            text read with the ``space`` tokenizer, where they separate the words).
    """

    def __init__(
        self,
        lang: Lang,
        *,
        traditional_to_simplified: bool = False,
        lowercase: bool = False,
        keep_spaces: bool = False,
    ) -> None:
        self.lang = lang
        self.lowercase = lowercase
        self.keep_spaces = keep_spaces
        self._t2s = None
        if traditional_to_simplified and lang == "zh":
            from opencc import OpenCC  # lazy: only runs that ask for it pay the import

            self._t2s = OpenCC("t2s")

    def __call__(self, text: str) -> str:
        text = _INVISIBLE.sub("", text)
        text = unicodedata.normalize("NFKC", text)
        if self.lowercase:  # before punctuation; NFKC again because lower() can denormalize
            text = unicodedata.normalize("NFKC", text.lower())
        text = _SPACES.sub(" ", text).strip()
        if self._t2s is not None:
            text = self._t2s.convert(text)
        if self.lang == "zh":
            text = _zh_punctuation(text)
            if not self.keep_spaces:
                text = _SPACE_NEAR_CJK.sub("", text)
        else:
            text = text.translate(_EN_HALF)
        return text


def normalizer_for(data_cfg: DataConfig, side: Literal["src", "tgt"]) -> Normalizer:
    """The normalizer for one side of a config's corpus."""
    # Imported here: the tokenizers import this module (is_cjk), and the registry says which
    # of them read spaces as word boundaries.
    from nmt.datautil.tokenize import tokenizer_kind

    lang = data_cfg.src_lang if side == "src" else data_cfg.tgt_lang
    tok_cfg = data_cfg.src_tokenizer if side == "src" else data_cfg.tgt_tokenizer
    return Normalizer(
        lang,
        traditional_to_simplified=data_cfg.traditional_to_simplified,
        lowercase=tok_cfg.lowercase,
        keep_spaces=tokenizer_kind(tok_cfg.type).keeps_spaces,
    )
