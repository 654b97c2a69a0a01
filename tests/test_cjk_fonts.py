"""Finding a Chinese font matplotlib's stale font list does not know (installed after its cache)."""

from __future__ import annotations

import shutil

import pytest
from matplotlib import font_manager

from cnnviz_widgets import i18n


@pytest.fixture
def no_cjk_in_matplotlib(monkeypatch):
    """Matplotlib's list as a cache made before any CJK font was installed."""
    families = {*i18n.CJK_FAMILIES, i18n.SHIPPED_FAMILY}
    stale = [f for f in font_manager.fontManager.ttflist if f.name not in families]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    i18n._register_system_cjk_fonts.cache_clear()
    yield
    i18n._register_system_cjk_fonts.cache_clear()


def test_a_cjk_font_on_disk_is_registered(no_cjk_in_matplotlib, monkeypatch, tmp_path):
    # The system's font folders hold a CJK font (a copy of the shipped one, under a Noto name)
    # and a Latin one; only the CJK file is added, and its family is chosen.
    cjk = tmp_path / "NotoSansSC-Regular.otf"
    latin = tmp_path / "SomeLatin-Regular.otf"
    shutil.copy(i18n.SHIPPED_FONT, cjk)
    shutil.copy(i18n.SHIPPED_FONT, latin)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [str(cjk), str(latin)])
    monkeypatch.setattr(i18n, "CJK_FAMILIES", (i18n.SHIPPED_FAMILY,))
    assert i18n.cjk_font_family() == i18n.SHIPPED_FAMILY
    added = [f.fname for f in font_manager.fontManager.ttflist if f.name == i18n.SHIPPED_FAMILY]
    assert added == [str(cjk)]
    assert i18n.cjk_font_file() == (cjk, 0)


def test_without_any_cjk_font_the_shipped_subset_is_used(no_cjk_in_matplotlib, monkeypatch):
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [])
    assert i18n.cjk_font_family() is None
    assert i18n.cjk_font_file() == (i18n.SHIPPED_FONT, 0)
