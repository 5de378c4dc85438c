"""The Translator: run directory -> normalize, tokenize -> decode -> detokenize.

``nmt translate`` (arguments, files, stdin, the prompt), ``nmt evaluate --model`` and the Python
API all go through :meth:`Translator.translate`, so they never disagree::

    from nmt import Translator

    translator = Translator.load("runs/quickstart", device="cpu")
    translator.translate(["我喜欢茶。", ""], strategy="greedy")   # -> ["I like tea.", ""]

Input policy: exactly one output per input, in input order. A sentence with no tokens after
normalization (empty, whitespace or control characters only) gives ``""`` without reaching the
model. A sentence longer than the model takes is truncated to its first tokens, with a warning
naming the line; it is never dropped. Sentences are decoded longest first in batches of
similar length and put back in input order.

A model exported with ``nmt export --to ctranslate2`` is translated by
:class:`~nmt.translate.ctranslate2_engine.CTranslate2Translator` through the same text path
(``Translator.load(OUT_DIR, engine="ctranslate2")``). ``Translator`` and ``PRECISIONS`` are
imported on first use, so that engine never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nmt.translate.result import NBestEntry, Translation

if TYPE_CHECKING:
    from nmt.translate.precision import PRECISIONS
    from nmt.translate.translator import Translator

__all__ = ["PRECISIONS", "NBestEntry", "Translation", "Translator"]


def __getattr__(name: str) -> Any:
    # Lazy: the torch engine's modules import torch (1.3-1.9 s on a 2-core CPU).
    if name == "Translator":
        from nmt.translate.translator import Translator

        return Translator
    if name == "PRECISIONS":
        from nmt.translate.precision import PRECISIONS

        return PRECISIONS
    raise AttributeError(f"module 'nmt.translate' has no attribute {name!r}")
