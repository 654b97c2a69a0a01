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

import numpy as np
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
    assert str(caught.value) == "通道 70 超出范围（层 'features'：共 64 个通道，0–63）。"
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
    assert [ex.tabs.get_title(i) for i in range(3)] == ["视图", "详情", "模型概要"]
    assert ex.all_layers_box.description == "显示全部层"
    assert f"· 通道 {ex.channel} · 取值" in ex.caption.value
    assert ex.layer == "relu1" and ex.layer_dropdown.tooltip.startswith("ReLU：负值变为 0")
    ex.mode = "grid"
    assert "· 通道 0–3 · " in ex.caption.value and "即可打开该通道" in ex.caption.value
    assert "输入 16×16，3 个通道" in ex.summary.header.value
    with pytest.raises(CnnVizError):
        ex.channel = 99  # refused, and said in Chinese in the widget
    assert "超出范围" in ex.error and ex.channel != 99


def test_explorer_tab_titles_and_export_summary_in_chinese(tiny_functional, rgb16, tmp_path):
    from cnnviz_widgets import ActivationCache, Explorer

    for language, titles, header in (
        ("en", ["Activations", "Filters", "Class activation", "Summary"],
         ("layer", "class", "output", "params")),
        ("zh", ["激活图", "滤波器", "类激活图", "模型概要"], ("层", "类别", "输出", "参数量")),
    ):  # fmt: skip
        i18n.set_language(language)
        ex = Explorer(tiny_functional, rgb16, cache=ActivationCache())
        try:
            assert [ex.tabs.get_title(i) for i in range(4)] == titles
            page = ex.export_html(tmp_path / f"{language}.html").read_text(encoding="utf-8")
            assert f"<h2>{titles[3]}</h2>" in page or f">{titles[3]}<" in page
            assert all(f"<th>{name}</th>" in page for name in header), header
            assert f"{titles[0]}: " in page
        finally:
            ex.close()


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


# ------------------------------------------------------------------------------ the catalog
def _po_entries(text: str) -> list[tuple[str, str, bool]]:
    """``(msgid, msgstr, fuzzy)`` of every entry, read without the compiler's own parser."""
    import ast

    entries = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        field = None
        fuzzy = False
        for line in block.splitlines():
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            elif line.startswith(("msgid ", "msgstr ")):
                field, _, quoted = line.partition(" ")
                fields[field] = ast.literal_eval(quoted)
            elif line.startswith('"') and field is not None:
                fields[field] += ast.literal_eval(line)
        if "msgid" in fields:
            entries.append((fields["msgid"], fields.get("msgstr", ""), fuzzy))
    return entries


def test_every_msgid_in_the_po_has_a_real_chinese_msgstr():
    entries = [e for e in _po_entries(PO.read_text(encoding="utf-8")) if e[0]]  # not the header
    assert len(entries) == len(compile_catalogs.read_po(PO)) - 1  # the parsers agree
    ids = [msgid for msgid, _, _ in entries]
    assert len(ids) == len(set(ids)), "a msgid appears twice (the second silently wins)"
    for msgid, msgstr, fuzzy in entries:
        assert msgstr.strip() and not fuzzy, msgid
        assert msgstr != msgid and i18n.has_cjk(msgstr), (msgid, msgstr)


def test_the_shipped_subset_font_has_every_character_of_the_catalog():
    from fontTools.ttLib import TTFont

    cmap = TTFont(i18n.SHIPPED_FONT).getBestCmap()
    texts = [GLOSSARY, *compile_catalogs.read_po(PO).values()]
    absent = sorted({c for text in texts for c in text if c.isprintable() and ord(c) not in cmap})
    assert absent == [], "re-run tools/subset_font.py"


# ------------------------------------------------------------------------------ explorers
def _english_sentences(markup: str) -> list[str]:
    """Runs of three or more English words left in a text (names alone are allowed)."""
    import html
    import re

    plain = re.sub(r"<[^>]+>", " ", html.unescape(markup))
    return re.findall(r"[A-Za-z]{2,}(?:[ ,]+[A-Za-z]{2,}){2,}", plain)


def html_text(markup: str) -> str:
    """A widget's HTML as the plain text a person reads."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", markup)).strip()


@pytest.fixture
def stock_frontend():
    """No optional front end: the stand-ins (and their notes) are what every machine shows."""
    from cnnviz_widgets.widgets import frontend

    frontend.set_frontend("stock")
    yield
    frontend.set_frontend("auto")


LABELS = ["cat", "dog", "cup", "car", "tree"]


def test_cam_explorer_captions_readouts_drilldown_and_refusals_in_chinese(
    tiny_functional, rgb16, stock_frontend
):
    from cnnviz_widgets import ActivationCache
    from cnnviz_widgets.errors import LayerError
    from cnnviz_widgets.widgets.cam import METHODS, CamExplorer

    i18n.set_language("zh")
    cam = CamExplorer(tiny_functional, rgb16, labels=LABELS, k=3, cache=ActivationCache())
    try:
        assert cam.wait(60)
        index, label, _ = cam.top[0]
        assert cam.caption.value == f"<b>{label}</b>（类别 {index}） · Grad-CAM · 层 conv2"
        labels = dict((value, shown) for shown, value in cam.method_dropdown.options)
        assert list(labels) == list(METHODS)  # the values stay the trait's
        assert [labels[m] for m in ("gradcam", "vanilla", "guided_backprop",
                                    "integrated_gradients", "occlusion")] == [
            "Grad-CAM", "显著图（梯度）", "引导反向传播", "积分梯度", "遮挡法"]  # fmt: skip
        assert (cam.method_dropdown.description, cam.class_picker.description) == ("方法", "类别")
        assert (cam.stop_button.description, cam.stop_button.tooltip) == ("停止", "停止计算")
        assert cam.chart.description == "最可能"  # the stock list that stands in for the chart
        assert "柱状图需要 bqplot 前端，这里没有找到：请从列表中选择类别。" in cam.frontend_note.value
        d, dr, i, ir = (cam.readouts[k] for k in ("deletion", "deletion_random", "insertion",
                                                   "insertion_random"))  # fmt: skip
        verdict = "两项都优于随机图" if d < dr and i > ir else "并非两项都优于随机图：不要太相信它"
        assert cam.readout.value == (
            f"删除得分 <b>{d:.3f}</b>（随机图 {dr:.3f}，越低越好） · "
            f"插入得分 <b>{i:.3f}</b>（随机图 {ir:.3f}，越高越好） —— {verdict}"
        )

        cam.method = "vanilla"  # a saliency method: no layer in the caption
        assert cam.wait(60)
        assert cam.caption.value == f"<b>{label}</b>（类别 {index}） · 显著图（梯度）"
        cam.method = "gradcam"
        cam.point = (8, 8)
        assert cam.wait(60)
        best = cam.drilled[0][0]
        assert cam.drill_caption.value.startswith(
            f"在 (y=8, x=8)（单元 (4, 4)）处支持 <b>{label}</b> 的 <b>conv2</b> 通道：{best} ("
        )
        assert cam.drill_caption.value.endswith(" · 点击一个即可打开")
        assert cam.drill_picker.description == "通道"
        texts = [cam.caption.value, cam.readout.value, cam.drill_caption.value,
                 cam.frontend_note.value, cam._static_caption()]  # fmt: skip

        with pytest.raises(CnnVizError):
            cam.class_index = 99
        assert cam.error == (  # the words of grad_cam's own check, with its fix
            "class_index 99 超出范围（模型：共 5 个类别，0–4）。请传入这个范围内的类别编号，"
            "或者用 class_index=None 表示得分最高的类别（见 predict_top）。"
        )
        texts.append(cam.message.value)
        with pytest.raises(CnnVizError):
            cam.alpha = 2
        assert cam.error == "alpha 必须在 0（只显示照片）和 1（只显示热力图）之间；收到的是 2.0。"
        with pytest.raises(LayerError):
            cam.layer = "gap"
        assert cam.error.startswith("层 'gap'（GlobalAveragePooling2D）的输出形状是 (6,)，不是")
        with pytest.raises(LayerError):
            cam.layer = "conv9"
        assert cam.error.startswith("模型 'tiny_functional' 中没有层 'conv9'。")
        texts.append(cam.message.value)
        assert [s for text in texts for s in _english_sentences(text)] == []
    finally:
        cam.close()


def test_cam_explorer_says_no_evidence_in_chinese(keras, rgb16):
    from cnnviz_widgets import ActivationCache
    from cnnviz_widgets.widgets.cam import CamExplorer

    keras.utils.set_random_seed(21)
    x = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(x)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    model = keras.Model(x, keras.layers.Dense(2, activation="softmax", name="head")(y))
    # ReLU maps are ≥ 0 and class 1 weighs each of them negatively: nothing speaks for it.
    model.get_layer("head").set_weights(
        [np.stack([np.ones(6), -np.ones(6)], axis=1).astype("float32"), np.zeros(2, "float32")]
    )
    i18n.set_language("zh")
    cam = CamExplorer(model, rgb16, labels=["猫", "狗"], cache=ActivationCache())
    try:
        cam.class_index = 1
        assert cam.wait(60)
        assert not cam.heatmap.any()
        assert html_text(cam.message.value) == (
            "ℹ 在层 'conv' 上找不到支持 '狗' 的正面证据：这张热力图处处为零。请换一个类别、层或方法试试。"
        )
    finally:
        cam.close()


@pytest.fixture
def private_ascent_cache(tmp_path, monkeypatch):
    from cnnviz_widgets import ascent

    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    ascent.clear_memory_cache()
    yield
    ascent.clear_memory_cache()


def test_filter_explorer_labels_captions_and_refusals_in_chinese(
    tiny_functional, stock_frontend, private_ascent_cache
):
    from cnnviz_widgets.widgets.filters import FilterExplorer

    i18n.set_language("zh")
    fx = FilterExplorer(tiny_functional, layer="conv2", size=32, steps=16)
    try:
        assert fx.wait(60)
        assert [c.description for c in (fx.layer_dropdown, fx.page_slider, fx.channel_slider,
                fx.steps_slider, fx.size_dropdown, fx.tv_slider, fx.progress_bar)] == [
            "层", "页", "通道", "步数", "尺寸", "平滑度", "进度"]  # fmt: skip
        assert [label for label, _ in fx.param_buttons.options] == ["FFT", "像素"]
        assert [label for label, _ in fx.show_buttons.options] == ["滤波器梯度上升", "卷积核权重"]
        assert fx.caption.value == "<b>conv2</b> · 通道 0–5 · 第 1 页，共 1 页 · 32 像素，16 步"
        assert fx.progress_label.value == "完成"
        assert html_text(fx.frontend_note.value) == (
            "ℹ 点击图片需要 ipyevents 前端，这里没有找到：请改用通道滑块。"
        )
        with pytest.raises(CnnVizError):
            fx.steps = 0
        assert fx.error == (  # the words of optimize_image's own check
            "steps 必须 ≥ 1；收到的是 0。用 steps=None 表示默认值（256），或者给一个正数，例如 128。"
        )
        with pytest.raises(CnnVizError):
            fx.size = 4
        assert fx.error == "size 必须 ≥ 8 像素；收到的是 4。可以试试 size=128。"

        fx.show = "kernels"
        assert fx.caption.value == "<b>conv2</b> · 6 个 3×3×4 的卷积核 · 红色为正，蓝色为负"
        fx.layer = "relu1"  # no kernels: the refusal names the convolutions around it
        assert fx.error == (
            "层 'relu1'（ReLU）没有可显示的卷积核：只有 Conv2D、DepthwiseConv2D 和 "
            "SeparableConv2D 层才有卷积核。附近的卷积层：'conv1', 'conv2'。"
        )
    finally:
        fx.close()


def test_activation_explorer_notes_detail_title_and_export_in_chinese(
    tiny_functional, rgb16, stock_frontend, tmp_path, monkeypatch
):
    import matplotlib

    from cnnviz_widgets import ActivationCache, ActivationExplorer
    from cnnviz_widgets.errors import ImageConversionWarning
    from cnnviz_widgets.widgets import detail

    titles = []
    original = detail.DetailPicture.show
    monkeypatch.setattr(
        detail.DetailPicture, "show",
        lambda self, m, title, cmap: (titles.append(title), original(self, m, title, cmap)),
    )  # fmt: skip
    i18n.set_language("zh")
    gray = rgb16[:, :, :1]
    with pytest.warns(ImageConversionWarning):
        ex = ActivationExplorer(tiny_functional, gray, cache=ActivationCache())
    notes = html_text(ex.message.value)
    assert notes == "ℹ 模型需要 3 个通道，所以已把 1 通道（灰度）图像转换为 3 通道（RGB）。"
    assert ex.open_dropdown.description == "打开"
    assert "ℹ 点击图片需要 ipyevents 前端，这里没有找到：请改用“打开”菜单。" in html_text(
        ex.frontend_note.value
    )
    # matplotlib's own defaults (no CJK font): the Detail title must bring its own.
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ex.tabs.selected_index = 1
    assert titles == [f"relu1 · 通道 {ex.channel}"]
    assert [str(w.message) for w in caught if "missing from" in str(w.message)] == []
    assert bytes(ex.detail_box.children[0].value).startswith(b"\x89PNG")

    page = ex.export_html(tmp_path / "view.html").read_text(encoding="utf-8")
    assert '<html lang="zh-Hans">' in page
    assert "<h2>输入图像</h2>" in page and "<h2>视图</h2>" in page
    assert "<h2>重现这个视图的代码</h2>" in page and "由 cnnviz_widgets 生成于 " in page
    assert "<th>控件</th><th>值</th>" in page
    i18n.set_language("en")
    page = ex.export_html(tmp_path / "view.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in page and "<h2>Input image</h2>" in page
    assert "Made with cnnviz_widgets on " in page


def test_a_chinese_detail_title_without_the_cjk_font_would_warn(monkeypatch):
    """The control for the test above: the Detail figure really needs the font it is given."""
    import matplotlib

    from cnnviz_widgets.widgets import detail

    monkeypatch.setattr(detail, "has_cjk", lambda text: False)
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            detail.DetailPicture().show(np.eye(4, dtype=np.float32), "relu1 · 通道 3", "viridis")
    assert any("missing from" in str(w.message) for w in caught)


# ------------------------------------------------------------------------------ errors
def _error_cases(model, image) -> list[tuple]:
    """(what raises, its English message, its Chinese message); a trailing "…" marks a prefix."""
    from cnnviz_widgets.engine.geometry import check_big_enough
    from cnnviz_widgets.explain import grad_cam
    from cnnviz_widgets.images import load_image
    from cnnviz_widgets.render import colormap_lut

    return [
        (
            lambda: check_big_enough("tiny", (3, 5), (8, 8)),
            "The image is 3×5 px as model 'tiny' sees it, but the model needs at least 8×8 px: its "
            "convolutions and poolings shrink a smaller image to an empty feature map. Pass a "
            "larger image, or let the adapter enlarge it: ModelAdapter(model, image_size=8) scales "
            "the shorter side to 8 px.",
            "在模型 'tiny' 看来，这张图像是 3×5 像素，但该模型至少需要 8×8 像素：更小的图像经过它的"
            "卷积和池化后会变成空的特征图。请传入更大的图像，或者让适配器把它放大："
            "ModelAdapter(model, image_size=8) 会把短边缩放到 8 像素。",
        ),
        (
            lambda: load_image(np.zeros((6, 6, 5), np.uint8)),
            "Expected an image of shape (H, W), (H, W, 1) or (H, W, 3); got an array of shape "
            "(6, 6, 5) with 5 channels on the last axis. Pass 1 (grayscale), 3 (RGB) or 4 (RGBA) "
            "channels.",
            "需要形状为 (H, W)、(H, W, 1) 或 (H, W, 3) 的图像；收到的数组形状是 (6, 6, 5)，"
            "最后一个轴上有 5 个通道。请传入 1 个（灰度）、3 个（RGB）或 4 个（RGBA）通道。",
        ),
        (
            lambda: load_image(np.full((4, 4), np.nan, np.float32)),
            "The image (shape (4, 4)) contains 16 NaN and 0 infinite values. Replace them first, "
            "e.g. with np.nan_to_num(image).",
            "图像（形状 (4, 4)）中有 16 个 NaN 和 0 个无穷大值。请先替换掉它们，例如用 "
            "np.nan_to_num(image)。",
        ),
        (
            lambda: load_image("no_such_photo.png"),
            "No image file at 'no_such_photo.png' (relative to the working directory '…",
            "找不到图像文件 'no_such_photo.png'（相对于工作目录 '…",
        ),
        (
            lambda: grad_cam(model, image, 7, layer="conv2"),
            "class_index 7 is out of range: the model has 5 classes (0–4). Pass a class number in "
            "that range, or class_index=None for the top class (see predict_top).",
            "class_index 7 超出范围（模型：共 5 个类别，0–4）。请传入这个范围内的类别编号，"
            "或者用 class_index=None 表示得分最高的类别（见 predict_top）。",
        ),
        (
            lambda: grad_cam(model, image, 0, layer="gap"),
            "Layer 'gap' (GlobalAveragePooling2D) has output shape (6,): no spatial map left (it "
            "comes after global pooling or flattening), so a class activation map cannot show "
            "where the evidence lies. Pick a convolutional layer before the pooling, e.g. the "
            "deepest one with a spatial map: 'conv2'.",
            "层 'gap'（GlobalAveragePooling2D）的输出形状是 (6,)，已经没有空间特征图了（它位于全局"
            "池化或展平之后），所以类激活图无法显示证据在哪里。请选一个池化之前的卷积层，例如仍有"
            "空间特征图的最深一层：'conv2'。",
        ),
        (
            lambda: colormap_lut("virdis"),
            "Unknown colormap 'virdis'. Did you mean: 'viridis', 'viridis_r', 'cividis', "
            "'cividis_r', 'prism'? Any matplotlib colormap name works, with '_r' for its reversed "
            "form.",
            "未知的配色 'virdis'。您是不是想用：'viridis', 'viridis_r', 'cividis', 'cividis_r', "
            "'prism'？任何 matplotlib 配色名称都可以用，名称后加 '_r' 即为反转的配色。",
        ),
    ]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_errors_that_reach_widgets_in_english_and_chinese(language, tiny_functional, rgb16):
    """Too small, bad image, missing file, class out of range, no spatial map, colormap."""
    i18n.set_language(language)
    for raise_it, english, chinese in _error_cases(tiny_functional, rgb16):
        want = english if language == "en" else chinese
        with pytest.raises(CnnVizError) as caught:
            raise_it()
        if want.endswith("…"):
            assert str(caught.value).startswith(want[:-1])
        else:
            assert str(caught.value) == want


# ------------------------------------------------------------------------------ static pictures
def _glyph(font, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (48, 32), 255)
    ImageDraw.Draw(canvas).text((4, 4), text, fill=0, font=font)
    return np.asarray(canvas)


def test_pillows_own_font_draws_every_chinese_character_as_the_same_box():
    """The control: without a CJK font two different characters give identical pixels."""
    from cnnviz_widgets.widgets import snapshot

    latin = snapshot._font()
    boxes = {_glyph(latin, c).tobytes() for c in "特征图通道"}
    assert len(boxes) == 1


def test_static_captions_draw_chinese_with_real_glyphs():
    from cnnviz_widgets.widgets import snapshot

    font = snapshot.text_font(["<b>relu1</b> · 通道 3"])
    assert font is not snapshot._font() and snapshot.text_font(["channel 3"]).getname() == (
        snapshot._font().getname()
    )  # English keeps Pillow's font
    characters = sorted(set(GLOSSARY.replace(" ", "")))
    glyphs = [_glyph(font, c) for c in characters]
    missing = _glyph(font, "\ue000")  # a private-use code point: this font's "missing" box
    assert all(g.min() < 128 for g in glyphs)  # ink in every one
    assert len({g.tobytes() for g in glyphs}) == len(characters)  # each character its own shape
    assert not any(np.array_equal(g, missing) for g in glyphs)
    # The same in a composed picture: two captions of equal length differ where drawn.
    a = snapshot.compose([np.zeros((8, 8, 3), np.uint8)], "特征图")
    b = snapshot.compose([np.zeros((8, 8, 3), np.uint8)], "卷积核")
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_chinese_captions_wrap_between_characters_within_the_picture():
    from cnnviz_widgets.widgets import snapshot

    i18n.set_language("zh")
    note = i18n.gettext_(
        "No positive evidence for {label!r} at layer {layer!r}: the map is zero everywhere. "
        "Try another class, layer or method."
    ).format(label="class 1", layer="conv")
    caption = f"<b>relu1</b> · 16×16×4 · {note} {note}"
    font = snapshot.text_font([caption])
    width = 360
    lines = snapshot._wrap(snapshot.plain_text(caption), font, width)
    assert len(lines) >= 3
    assert all(font.getlength(line) <= width for line in lines)
    assert "".join(lines).replace(" ", "") == snapshot.plain_text(caption).replace(" ", "")
    assert not any(line.startswith(("，", "。", "：", "）")) for line in lines)

    rgb = snapshot.compose([np.zeros((20, 30, 3), np.uint8)], caption)
    ink = np.where((rgb < 200).any(axis=2).any(axis=0))[0]
    assert rgb.shape[1] == width + 2 * snapshot.MARGIN
    assert ink.max() < rgb.shape[1] - snapshot.MARGIN  # nothing runs off the right edge
    line_height = int(font.getbbox("Ag图")[3] + 4)
    assert rgb.shape[0] == 2 * snapshot.MARGIN + 20 + snapshot.GAP + line_height * len(lines)


def test_english_captions_wrap_as_before():
    from cnnviz_widgets.widgets import snapshot

    text = "pool1 · 8×8×4 · channel 0 · values -0.123 to 4.56 " * 4
    font = snapshot._font()
    lines, line = [], ""  # the greedy word wrap static pictures always had
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if line and font.getlength(candidate) > 200:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    assert snapshot._wrap(text, snapshot.text_font([text]), 200) == lines
