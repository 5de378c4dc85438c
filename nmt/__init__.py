"""nmt: a Chinese<->English neural machine translation toolkit.

The public Python API is small: :class:`nmt.Translator` (added with the translate command),
:func:`nmt.config.load_config` and the typed errors in :mod:`nmt.errors`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "Translator"]


def __getattr__(name: str) -> Any:
    # Lazy: `import nmt` must stay cheap (the CLI imports torch only when a command needs it).
    if name == "Translator":
        from nmt.translate import Translator

        return Translator
    raise AttributeError(f"module 'nmt' has no attribute {name!r}")
