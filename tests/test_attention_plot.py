"""nmt.attention_plot's fonts: Chinese labels render as glyphs, not boxes, on a machine with no
CJK font of its own (the viz extra's Noto Sans SC), and an installed CJK font is preferred."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from nmt import attention_plot

matplotlib = pytest.importorskip("matplotlib", reason="the viz extra (matplotlib) is not installed")

SIMPLIFIED_AND_TRADITIONAL = "汉字漢字"  # 汉 simplified, 漢 traditional


@pytest.fixture(autouse=True)
def fresh_font_lookup() -> Iterator[None]:
    # cjk_font() looks fonts up once per process; each test starts from a fresh lookup.
    attention_plot.cjk_font.cache_clear()
    attention_plot._warn_no_cjk_font.cache_clear()
    yield
    attention_plot.cjk_font.cache_clear()
    attention_plot._warn_no_cjk_font.cache_clear()


def missing_glyph_warnings(family: list[str], path: Path) -> list[str]:
    """Render the test text in ``family`` to a PNG; matplotlib's missing-glyph warnings."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1), dpi=50)
    FigureCanvasAgg(fig)
    fig.text(0.1, 0.4, f"Ab {SIMPLIFIED_AND_TRADITIONAL}", family=family)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(path, format="png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_chinese_text_renders_without_missing_glyphs(tmp_path: Path) -> None:
    family = attention_plot.font_family([SIMPLIFIED_AND_TRADITIONAL])
    assert family[0] == "DejaVu Sans" and len(family) == 2, (
        "no CJK font: pip install 'nmt[viz]' brings one"
    )
    assert missing_glyph_warnings(family, tmp_path / "cjk.png") == []
    # The check can fail: matplotlib's default font alone has none of these glyphs.
    assert len(missing_glyph_warnings(["DejaVu Sans"], tmp_path / "latin.png")) == 4


def test_the_viz_font_is_registered_when_no_cjk_font_is_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from matplotlib.ft2font import FT2Font

    files = attention_plot.bundled_cjk_font_files()
    assert files, "the viz extra's font package (zhplot) is missing: pip install 'nmt[viz]'"
    face = FT2Font(str(files[0]))
    assert all(face.get_char_index(ord(c)) for c in SIMPLIFIED_AND_TRADITIONAL)

    rc_family = list(matplotlib.rcParams["font.family"])
    monkeypatch.setattr(attention_plot, "_installed_cjk_font", lambda: None)  # a bare machine
    assert attention_plot.cjk_font() == "Noto Sans SC"
    family = attention_plot.font_family([SIMPLIFIED_AND_TRADITIONAL])
    assert family == ["DejaVu Sans", "Noto Sans SC"]
    assert missing_glyph_warnings(family, tmp_path / "bundled.png") == []
    # Found without importing zhplot, whose import changes matplotlib's default font.
    assert list(matplotlib.rcParams["font.family"]) == rc_family


def test_an_installed_cjk_font_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attention_plot, "_installed_cjk_font", lambda: "WenQuanYi Zen Hei")
    monkeypatch.setattr(attention_plot, "bundled_cjk_font_files", lambda: pytest.fail("looked"))
    assert attention_plot.cjk_font() == "WenQuanYi Zen Hei"


def test_latin_only_labels_need_no_cjk_font(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attention_plot, "cjk_font", lambda: pytest.fail("looked up"))
    assert attention_plot.font_family(["I like tea", ""]) == ["DejaVu Sans"]


def test_attention_plot_of_a_chinese_sentence_finds_a_font(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="nmt.attention_plot"):
        path = attention_plot.plot_attention(
            ["I", "like", "tea", "</s>"], ["我", "喜欢", "茶", "。"],
            [[0.9, 0.05, 0.03, 0.02], [0.1, 0.8, 0.05, 0.05], [0.0, 0.1, 0.85, 0.05],
             [0.0, 0.0, 0.1, 0.9]],
            tmp_path / "0001.png", title="我喜欢茶。",
        )  # fmt: skip
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert "no CJK font" not in caplog.text
