"""Simplified and Traditional Chinese: which script a vocabulary is written in, and conversion.

A model trained on Simplified text reads ``這個問題很難。`` as mostly ``<unk>``: the characters
it knows are ``这``/``个``/``问题``/``难``. ``data.zh_script`` therefore converts Chinese source
text, after normalization and before tokenizing, to the script the model was trained on
(:class:`nmt.datautil.pipeline.TextProcessor` applies it for ``translate``, ``evaluate`` and
validation). ``auto`` finds that script in the source vocabulary's counts; the training corpus
itself is never converted here (``data.traditional_to_simplified`` does that), so vocabularies
are built exactly as before.

For a Chinese target, :func:`convert_zh_output` writes the model's output in another script or
regional standard (``hans``, ``hant``, ``tw``, ``hk``), choosing the OpenCC conversion from the
script the output is written in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Literal, get_args

from opencc import OpenCC

from nmt.config import DataConfig
from nmt.datautil.vocab import SPECIALS, Vocabulary
from nmt.errors import ConfigError

Script = Literal["hans", "hant"]  # what a vocabulary is written in
OutputScript = Literal["hans", "hant", "tw", "hk"]  # what --zh-script writes
_OUTPUT_SCRIPTS: dict[str, OutputScript] = {name: name for name in get_args(OutputScript)}

# The OpenCC config that turns text written in one script into another. From Simplified text
# the s2* configs apply; from Traditional text the t2* ones, which leave characters valid in
# Traditional alone (s2t would turn a Traditional 台 or 干 into 臺/幹). None: already there.
_OUTPUT_CONFIG: dict[tuple[Script, OutputScript], str | None] = {
    ("hans", "hans"): "t2s",  # a Simplified vocabulary still holds a few Traditional words
    ("hans", "hant"): "s2t",
    ("hans", "tw"): "s2tw",
    ("hans", "hk"): "s2hk",
    ("hant", "hans"): "t2s",
    ("hant", "hant"): None,
    ("hant", "tw"): "t2tw",
    ("hant", "hk"): "t2hk",
}
_TO_SCRIPT = {"hans": "t2s", "hant": "s2t"}  # source text, of either script, to one script

# CJK unified ideographs (the basic block, extension A, compatibility forms and the
# supplementary planes): the only characters OpenCC's t2s/s2t change.
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


@cache
def converter(config: str) -> OpenCC:
    """The OpenCC converter of a config name (``t2s``, ``s2tw``, ...), created once: loading
    its dictionaries takes tens of milliseconds."""
    return OpenCC(config)


def vocab_script(vocab: Vocabulary) -> Script | None:
    """The script a vocabulary's Chinese is written in; None when it holds no character that
    one script writes differently (an English vocabulary, or only shared characters).

    Each distinct Han character is weighted by the training counts of the tokens holding it;
    the characters OpenCC ``t2s`` changes are Traditional-only, those ``s2t`` changes
    Simplified-only, and the heavier side wins (a tie is Simplified). Both conversions run
    once over all distinct characters, one per line so no two of them form an OpenCC phrase.
    """
    weights: dict[str, int] = {}
    for token in vocab.tokens[len(SPECIALS):]:
        weight = max(vocab.count(token), 1)  # a vocabulary built without counts: 1 each
        for char in _HAN.findall(token):
            weights[char] = weights.get(char, 0) + weight
    if not weights:
        return None
    chars = list(weights)
    joined = "\n".join(chars)
    as_simplified = converter("t2s").convert(joined).split("\n")
    as_traditional = converter("s2t").convert(joined).split("\n")
    traditional = simplified = 0
    for char, to_s, to_t in zip(chars, as_simplified, as_traditional, strict=True):
        if to_s != char:
            traditional += weights[char]
        if to_t != char:
            simplified += weights[char]
    if traditional == simplified == 0:
        return None
    return "hant" if traditional > simplified else "hans"


def source_converter(data_cfg: DataConfig, src_vocab: Vocabulary) -> Callable[[str], str] | None:
    """What ``data.zh_script`` does to normalized Chinese source text; None = nothing.

    ``auto`` converts to :func:`vocab_script` of ``src_vocab``; ``hans``/``hant`` always to
    that script; ``keep`` leaves the text alone, as does a non-Chinese source.
    """
    setting = data_cfg.zh_script
    if data_cfg.src_lang != "zh" or setting == "keep":
        return None
    script = vocab_script(src_vocab) if setting == "auto" else setting
    if script is None:
        return None
    if script == "hans" and data_cfg.traditional_to_simplified:
        return None  # the normalizer already converted it with t2s
    return converter(_TO_SCRIPT[script]).convert


def check_output_script(script: str, tgt_lang: str) -> OutputScript:
    """``script`` as an :data:`OutputScript`, for a Chinese target only.

    Raises:
        ConfigError: an unknown script, or a target that is not Chinese.
    """
    checked = _OUTPUT_SCRIPTS.get(script)
    if checked is None:
        raise ConfigError(f"--zh-script: expected one of {', '.join(_OUTPUT_SCRIPTS)}, "
                          f"got {script!r}")
    if tgt_lang != "zh":
        raise ConfigError(f"--zh-script converts Chinese output; this model's target "
                          f"language is {tgt_lang}")
    return checked


def convert_zh_output(text: str, script: OutputScript, written_in: Script = "hans") -> str:
    """Chinese ``text`` (written in ``written_in``) in ``script``: ``hans`` Simplified,
    ``hant`` Traditional (OpenCC standard), ``tw`` Taiwan, ``hk`` Hong Kong characters."""
    config = _OUTPUT_CONFIG[written_in, script]
    return text if config is None else converter(config).convert(text)
