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
"""

from nmt.translate.precision import PRECISIONS
from nmt.translate.result import NBestEntry, Translation
from nmt.translate.translator import Translator

__all__ = ["PRECISIONS", "NBestEntry", "Translation", "Translator"]
