"""Languages: English by default and byte-identical; Chinese through the gettext catalog.

Covers ``set_language`` / ``CNNVIZ_LANG``, the catalog's completeness and its compiled ``.mo``,
translated widget labels, captions and errors, and Chinese matplotlib titles drawn with real
glyphs (no "missing glyph" warning).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from cnnviz_widgets import i18n
from cnnviz_widgets.errors import CnnVizError, check_choice, check_index, check_int

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import compile_catalogs  # noqa: E402

PO = ROOT / "cnnviz_widgets" / "locale" / "zh" / "LC_MESSAGES" / "cnnviz_widgets.po"
GLOSSARY = "特征图 通道 卷积核 池化 热力图"


@pytest.fixture(autouse=True)
def english_after():
    yield
    i18n.set_language("en")


def test_english_is_the_default_and_returns_the_source_text():
    assert i18n.get_language() in ("en", "zh")  # whatever the shell said; tests pin it below
    i18n.set_language("en")
    message = "{where} · channel {channel} · values {lo:.3g} to {hi:.3g}"
    assert i18n.gettext_(message) is message


def test_set_language_switches_and_names_are_normalised():
    assert i18n.set_language("zh_CN") == "zh"
    assert i18n.gettext_("Channel") == "通道"
    assert i18n.set_language("en-US") == "en"
    assert i18n.gettext_("Channel") == "Channel"
    with i18n.use_language("zh-Hans"):
        assert i18n.gettext_("show all layers") == "显示全部层"
    assert i18n.get_language() == "en"


def test_unknown_language_is_refused_with_the_choices():
    with pytest.raises(CnnVizError) as caught:
        i18n.set_language("klingon")
    assert str(caught.value) == "Unknown language 'klingon'. Choose one of 'en', 'zh'."


def test_environment_variable_chooses_the_language_in_a_fresh_process():
    code = (
        "import cnnviz_widgets as cv\n"
        "from cnnviz_widgets.errors import check_int\n"
        "print(cv.get_language())\n"
        "try:\n    check_int(2.5, 'size')\nexcept Exception as e:\n    print(e)\n"
    )
    env = {**os.environ, "CNNVIZ_LANG": "zh_CN.UTF-8", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.splitlines() == ["zh", "size 必须是整数；收到的是 float 类型的 2.5。"]
    env["CNNVIZ_LANG"] = "no-such-language"  # a bad shell variable never breaks the import
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.splitlines()[0] == "en"


def test_error_messages_are_byte_identical_in_english_and_translated_in_chinese():
    with pytest.raises(CnnVizError) as caught:
        check_index(70, 64, "channel", "layer 'features'")
    assert str(caught.value) == "channel 70 is out of range: layer 'features' has 64 channels (0–63)."
    with pytest.raises(CnnVizError) as caught:
        check_choice("virdis", ["viridis", "magma"], "colormap")
    assert str(caught.value) == (
        "Unknown colormap 'virdis'. Did you mean 'viridis'? Choose one of 'viridis', 'magma'."
    )
    i18n.set_language("zh")
    with pytest.raises(CnnVizError) as caught:
        check_index(70, 64, "通道", "层 'features'", things="通道")
    assert str(caught.value) == "通道 70 超出范围：层 'features'共有 64 个通道（0–63）。"
    with pytest.raises(CnnVizError) as caught:
        check_int("3", "steps")
    assert str(caught.value) == "steps 必须是整数；收到的是 str 类型的 '3'。"


def test_every_message_in_the_code_has_a_chinese_translation():
    assert compile_catalogs.missing(PO) == []


def test_the_shipped_mo_is_compiled_from_the_po(tmp_path):
    fresh = tmp_path / "fresh.mo"
    compile_catalogs.write_mo(compile_catalogs.read_po(PO), fresh)
    assert fresh.read_bytes() == PO.with_suffix(".mo").read_bytes()


def test_translations_keep_every_format_field():
    import string

    fields = lambda text: sorted(f for _, f, _, _ in string.Formatter().parse(text) if f)  # noqa: E731
    for msgid, msgstr in compile_catalogs.read_po(PO).items():
        if msgid:
            assert fields(msgid) == fields(msgstr), msgid


# ------------------------------------------------------------------------------ widgets
def test_activation_explorer_labels_captions_and_tooltips_in_chinese(tiny_functional, rgb16):
    from cnnviz_widgets import ActivationCache, ActivationExplorer

    i18n.set_language("zh")
    ex = ActivationExplorer(tiny_functional, rgb16, cache=ActivationCache())
    assert ex.layer_dropdown.description == "层"
    assert ex.channel_slider.description == "通道"
    assert ex.cmap_dropdown.description == "配色"
    assert [label for label, _ in ex.mode_buttons.options] == ["通道", "网格", "求和"]
    assert [ex.tabs.get_title(i) for i in range(3)] == ["视图", "细节", "模型概要"]
    assert ex.all_layers_box.description == "显示全部层"
    assert f"· 通道 {ex.channel} · 取值" in ex.caption.value
    assert ex.layer == "relu1" and ex.layer_dropdown.tooltip.startswith("ReLU：负值变为 0")
    ex.mode = "grid"
    assert "· 通道 0–3 · " in ex.caption.value and "即可打开该通道" in ex.caption.value
    assert "输入 16×16，3 个通道" in ex.summary.header.value
    with pytest.raises(CnnVizError):
        ex.channel = 99  # refused, and said in Chinese in the widget
    assert "超出范围" in ex.error and ex.channel != 99


def test_english_widget_texts_are_unchanged(tiny_functional, rgb16):
    from cnnviz_widgets import ActivationCache, ActivationExplorer

    ex = ActivationExplorer(tiny_functional, rgb16, layer="pool1", cache=ActivationCache())
    assert ex.layer_dropdown.description == "Layer" and ex.tabs.get_title(2) == "Summary"
    lo, hi = ex._activations()[:, :, 0].min(), ex._activations()[:, :, 0].max()
    assert ex.caption.value == (
        f"<b>pool1</b> · 8×8×4 · channel 0 · values {lo:.3g} to {hi:.3g}"
    )


def test_layer_error_in_chinese(tiny_functional):
    from cnnviz_widgets.engine.adapter import adapter_for
    from cnnviz_widgets.errors import LayerError

    i18n.set_language("zh")
    with pytest.raises(LayerError) as caught:
        adapter_for(tiny_functional).resolve_layer("conv9")
    assert str(caught.value).startswith("模型 'tiny_functional' 中没有层 'conv9'。")


# ------------------------------------------------------------------------------ matplotlib
def _draw_title(text: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    plt.close(fig)
    return [str(w.message) for w in caught if "missing from" in str(w.message)]


def test_a_chinese_title_without_a_cjk_font_warns_so_the_check_is_real():
    import matplotlib

    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}):
        assert _draw_title(GLOSSARY)


def test_chinese_titles_draw_with_real_glyphs():
    import matplotlib

    with matplotlib.rc_context():
        family = i18n.use_cjk_font()
        assert _draw_title(GLOSSARY) == [], family


def test_the_shipped_subset_font_covers_the_catalog_and_glossary(monkeypatch):
    import matplotlib

    if not i18n.SHIPPED_FONT.is_file():
        pytest.fail(f"the fallback font {i18n.SHIPPED_FONT} is not shipped")
    monkeypatch.setattr(i18n, "cjk_font_family", lambda: None)  # as on a machine without one
    texts = [GLOSSARY, *compile_catalogs.read_po(PO).values()]
    with matplotlib.rc_context():
        assert i18n.use_cjk_font() != "DejaVu Sans"
        for text in texts[:40]:
            plain = text.replace("{", "").replace("}", "").replace("<b>", "").replace("</b>", "")
            assert _draw_title(plain.replace("$", "")) == [], text
