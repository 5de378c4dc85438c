"""Attention heatmaps like the alignment figures of Bahdanau et al. (2015, figure 3).

Source tokens run along the top (labels rotated), target tokens down the side, one grayscale
cell per (target, source) pair: white where the decoder looked. matplotlib is an optional
dependency (``pip install 'nmt[viz]'``) and is imported only when a plot is drawn, through its
object-oriented API with the Agg canvas, so no global backend or pyplot state is touched.

Chinese labels need a font with CJK glyphs. An installed one (Noto Sans CJK, WenQuanYi, ...) is
used when there is one; otherwise the Noto Sans SC that the ``viz`` extra installs (inside the
``zhplot`` package) is registered with matplotlib's font manager. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmt.errors import ConfigError, DataError

__all__ = ["CJK_FONT_NAMES", "bundled_cjk_font_files", "cjk_font", "font_family", "plot_attention"]

log = logging.getLogger(__name__)

# Families that cover Chinese, most common first; matched as substrings of installed names.
CJK_FONT_NAMES = (
    "Noto Sans CJK SC", "Noto Sans CJK", "Noto Serif CJK", "Source Han Sans", "Source Han Serif",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC",
    "Heiti SC", "STHeiti", "Hiragino Sans GB", "AR PL UMing", "AR PL UKai", "Droid Sans Fallback",
    "Noto Sans SC", "Noto Sans TC",
)
_CJK_FILE = re.compile(
    r"(?i)cjk|sourcehan|wqy|simhei|msyh|yahei|pingfang|heiti|hiragino|uming|ukai|droidsansfallback"
    r"|notos(ans|erif)(sc|tc)"
)
# The viz extra's font package: zhplot ships Noto Sans SC (OFL; all of GB2312 and Big5, so
# Traditional characters too) as a 10 MB TrueType file. It is never imported: importing it
# switches matplotlib's global default font.
BUNDLED_FONT_PACKAGE = "zhplot"
_CJK = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]")


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "attention plots need matplotlib: pip install 'nmt[viz]' (or pip install matplotlib)"
        ) from None
    return matplotlib


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of a font with Chinese glyphs, or None (looked up once).

    An installed font comes first; else the viz extra's bundled font (:data:`BUNDLED_FONT_PACKAGE`).
    """
    found = _installed_cjk_font()
    return found if found is not None else _bundled_cjk_font()


def _bundled_cjk_font() -> str | None:
    """Register the viz extra's font with matplotlib; its family name, or None without it."""
    from matplotlib import font_manager

    for path in bundled_cjk_font_files():
        try:
            font_manager.fontManager.addfont(path)
            return str(font_manager.FontProperties(fname=path).get_name())
        except (OSError, RuntimeError, ValueError):
            continue
    return None


def bundled_cjk_font_files() -> list[Path]:
    """The font files of the viz extra's font package; none when it is not installed.

    Found through the package's import spec, which locates it without running its code.
    """
    spec = importlib.util.find_spec(BUNDLED_FONT_PACKAGE)
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    return sorted(p for folder in folders for p in Path(folder, "fonts").glob("*.[ot]t[fc]"))


def _installed_cjk_font() -> str | None:
    from matplotlib import font_manager

    found = _known_cjk_family({f.name for f in font_manager.fontManager.ttflist})
    if found is None:
        # matplotlib caches its font list; a font installed since then is only on disk.
        for path in font_manager.findSystemFonts():
            if _CJK_FILE.search(Path(path).name):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        found = _known_cjk_family({f.name for f in font_manager.fontManager.ttflist})
    return found


def _known_cjk_family(installed: set[str]) -> str | None:
    for wanted in CJK_FONT_NAMES:
        for name in sorted(installed):
            if wanted.lower() in name.lower():
                return name
    return None


@functools.lru_cache(maxsize=1)
def _warn_no_cjk_font() -> None:
    # Cached: one warning per process, not one per plot.
    log.warning(
        "no CJK font found; Chinese labels in attention plots will show as boxes "
        "(pip install 'nmt[viz]' brings one, or e.g. apt-get install fonts-noto-cjk)"
    )


def plot_attention(
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    weights: Any,
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Write a PNG heatmap of ``weights`` to ``path`` and return the path.

    Args:
        src_tokens: x-axis labels, ``len == src_len``.
        tgt_tokens: y-axis labels, ``len == tgt_len``.
        weights: ``(tgt_len, src_len)`` array-like (a tensor, numpy array or nested lists)
            of attention weights in [0, 1].
        title: an optional caption under the plot (e.g. the translation).

    Raises:
        ConfigError: matplotlib is not installed.
        DataError: the PNG cannot be written.
        ValueError: the weights' shape does not match the labels.
    """
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = _as_matrix(weights)
    if matrix.size == 0:  # e.g. an empty output: np.asarray cannot know the other dimension
        matrix = matrix.reshape(len(tgt_tokens), len(src_tokens))
    if matrix.shape != (len(tgt_tokens), len(src_tokens)):
        raise ValueError(
            f"attention of shape {matrix.shape} does not match {len(tgt_tokens)} target "
            f"and {len(src_tokens)} source tokens"
        )
    family = font_family(list(src_tokens) + list(tgt_tokens) + [title or ""])
    width = 1.8 + 0.38 * max(len(src_tokens), 4)
    height = 1.6 + 0.32 * max(len(tgt_tokens), 4)
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="gray", vmin=0.0, vmax=1.0, aspect="equal",
                      interpolation="nearest")
    ax.xaxis.tick_top()  # source across the top, read left to right, as in the paper
    ax.set_xticks(range(len(src_tokens)), list(src_tokens), rotation=90, family=family)
    ax.set_yticks(range(len(tgt_tokens)), list(tgt_tokens), family=family)
    ax.tick_params(length=0)
    ax.set_xlabel("source", family=family)
    ax.set_ylabel("target", family=family)
    if title:
        fig.supxlabel(title, fontsize=9, family=family)
    fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(), _quiet_font_weight_fallback():
            # One warning of ours (above) replaces matplotlib's one per missing glyph.
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
            fig.savefig(out, format="png")
    except OSError as e:
        raise DataError(f"{out}: cannot write the attention plot: {e.strerror or e}") from None
    return out


@contextlib.contextmanager
def _quiet_font_weight_fallback() -> Iterator[None]:
    """Hide matplotlib's log line for CJK fonts without a 'normal' weight (e.g. WenQuanYi)."""
    logger = logging.getLogger("matplotlib.font_manager")
    noise = _WeightFallbackFilter()
    logger.addFilter(noise)
    try:
        yield
    finally:
        logger.removeFilter(noise)


class _WeightFallbackFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to find font weight" not in record.getMessage()


def _as_matrix(weights: Any) -> np.ndarray:
    if hasattr(weights, "detach"):  # a torch tensor, possibly bf16 or on a GPU
        weights = weights.detach().float().cpu().numpy()
    return np.asarray(weights, dtype=np.float64)


def font_family(texts: Sequence[str]) -> list[str]:
    """A font list for matplotlib's per-glyph fallback: DejaVu Sans, then a CJK font.

    Latin letters and digits keep matplotlib's default font; a glyph DejaVu Sans lacks is taken
    from the next family (matplotlib >= 3.6). Warns once when ``texts`` hold CJK and no CJK font
    is available.
    """
    family = ["DejaVu Sans"]
    if any(_CJK.search(t) for t in texts):
        found = cjk_font()
        if found is None:
            _warn_no_cjk_font()
        else:
            family.append(found)
    return family
