"""Error messages in English and Chinese: validators' words, marked raise sites, widget refusals.

Each test checks the exact text a user sees, in both languages where the words changed.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_widgets import i18n
from cnnviz_widgets.cache import ActivationCache
from cnnviz_widgets.engine.adapter import adapter_for
from cnnviz_widgets.errors import CnnVizError, LayerError, check_choice
from cnnviz_widgets.explain import registry
from cnnviz_widgets.explain.drilldown import image_cell
from cnnviz_widgets.explain.targets import check_class_index
from cnnviz_widgets.render import page_channels
from cnnviz_widgets.samples import sample_image


@pytest.fixture(autouse=True)
def english_after():
    yield
    i18n.set_language("en")


def _message(call) -> str:
    with pytest.raises(CnnVizError) as caught:
        call()
    return str(caught.value)


# ------------------------------------------------------------------ 1. validators' words
def test_point_out_of_range_names_the_image_rows_in_english_and_chinese():
    call = lambda: image_cell((10000, 1), (300, 451), (10, 15))  # noqa: E731
    assert _message(call) == "point y 10000 is out of range: the image has 300 rows (0–299)."
    with i18n.use_language("zh"):
        assert _message(call) == "点的 y 坐标 10000 超出范围（图像：共 300 个像素行，0–299）。"
        assert _message(lambda: image_cell((1, -2), (300, 451), (10, 15))) == (
            "点的 x 坐标 -2 超出范围（图像：共 451 个像素列，0–450）。"
        )


def test_unknown_method_lists_suggestions_with_the_languages_separator():
    call = lambda: registry.get("cam", "gradcamm")  # noqa: E731
    english = _message(call)
    assert english.startswith(
        "Unknown grad_cam method 'gradcamm'. Did you mean 'gradcam' or 'xgradcam' or "
    )
    with i18n.use_language("zh"):
        chinese = _message(call)
    assert chinese.startswith("grad_cam 方法 'gradcamm' 不存在。您是不是想用 'gradcam'、'xgradcam'、")
    assert " or " not in chinese and "可选：'gradcam', 'gradcam++', " in chinese
    with i18n.use_language("zh"):
        assert _message(lambda: check_choice("zz", ["a", "b"], "mode")) == (
            "mode 'zz' 不存在。可选：'a', 'b'。"
        )


def test_objective_channel_out_of_range_in_chinese(tiny_functional):
    from cnnviz_widgets.ascent import channel

    adapter = adapter_for(tiny_functional)
    with i18n.use_language("zh"):
        message = _message(lambda: channel("conv2", 99).resolved(adapter))
    assert message == "通道 99 超出范围（层 'conv2'：共 6 个通道，0–5）。"


# ------------------------------------------------------------------ 2. raise sites marked
def test_reviewers_examples_are_translated_and_english_is_unchanged(tiny_functional):
    adapter = adapter_for(tiny_functional)
    cases = [
        (lambda: adapter.resolve_layer(3),
         "A layer is named by its path (a str, e.g. 'conv2'); got int.",
         "层要用它的路径来指定（一个 str，例如 'conv2'）；收到的是 int。"),
        (lambda: sample_image("dog"),
         "Unknown sample image 'dog'. Available: ",
         "示例图像 'dog' 不存在。可选："),
        (lambda: image_cell((1,), (8, 8), (2, 2)),
         "point must be (y, x), two numbers in image pixels; got (1,).",
         "point 必须是 (y, x)，两个以图像像素为单位的数；收到的是 (1,)。"),
        (lambda: ActivationCache(max_bytes=-1),
         "max_bytes must be a whole number of bytes ≥ 0 (e.g. 512 * 2**20); got -1.",
         "max_bytes 必须是 ≥ 0 的整数字节数（例如 512 * 2**20）；收到的是 -1。"),
    ]  # fmt: skip
    for call, english, chinese in cases:
        assert _message(call).startswith(english)
        with i18n.use_language("zh"):
            assert _message(call).startswith(chinese)


def test_top_k_out_of_range_in_chinese(tiny_functional, rgb16):
    from cnnviz_widgets.explain import predict_top

    call = lambda: predict_top(tiny_functional, rgb16, k=0)  # noqa: E731
    assert _message(call) == "k=0 is out of range: the model has 5 classes, so k must be 1–5."
    with i18n.use_language("zh"):
        assert _message(call) == "k=0 超出范围：模型共有 5 个类别，所以 k 必须在 1–5 之间。"


# ------------------------------------------------------------------ 3. mode / method typos
def test_a_mode_typo_is_shown_in_the_widget_and_the_mode_is_kept(tiny_functional, rgb16):
    from cnnviz_widgets import ActivationExplorer

    ex = ActivationExplorer(tiny_functional, rgb16, cache=ActivationCache())
    try:
        ex.mode = "grid"
        with pytest.raises(CnnVizError) as caught:
            ex.mode = "gird"
        english = "Unknown mode 'gird'. Did you mean 'grid'? Choose one of 'channel', 'grid', 'sum'."
        assert str(caught.value) == english and ex.error == english
        assert "⚠ Unknown mode &#x27;gird&#x27;." in ex.message.value
        assert ex.mode == "grid" and ex.mode_buttons.value == "grid"
        i18n.set_language("zh")
        with pytest.raises(CnnVizError):
            ex.mode = "gird"
        assert ex.error == "mode 'gird' 不存在。您是不是想用 'grid'？可选：'channel', 'grid', 'sum'。"
        assert ex.message.layout.display == "" and ex.mode == "grid"
    finally:
        ex.close()


def test_a_method_typo_is_shown_in_the_cam_widget_in_chinese(tiny_functional, rgb16):
    from cnnviz_widgets.widgets.cam import METHODS, CamExplorer

    i18n.set_language("zh")
    cam = CamExplorer(tiny_functional, rgb16, k=3, cache=ActivationCache())
    try:
        assert cam.wait(60)
        with pytest.raises(CnnVizError) as caught:
            cam.method = "gradcamm"
        assert str(caught.value) == cam.error
        assert cam.error.startswith("method 'gradcamm' 不存在。您是不是想用 'gradcam'、")
        assert "⚠ method &#x27;gradcamm&#x27; 不存在。" in cam.message.value
        assert cam.method == "gradcam" and cam.method_dropdown.value == "gradcam"
        with pytest.raises(CnnVizError):
            cam.method = 3  # not a str: still the package's message, not a TraitError
        choices = ", ".join(repr(m) for m in METHODS)
        assert cam.error == f"method 3 不存在。可选：{choices}。" and cam.method == "gradcam"
    finally:
        cam.close()


# ------------------------------------------------------------------ 4. one wording
def test_widget_and_function_use_the_same_words(tiny_functional, rgb16):
    from cnnviz_widgets import ActivationExplorer
    from cnnviz_widgets.widgets.cam import CamExplorer

    i18n.set_language("zh")
    cam = CamExplorer(tiny_functional, rgb16, k=3, cache=ActivationCache())
    try:
        with pytest.raises(CnnVizError):
            cam.class_index = 9
        assert cam.error == _message(lambda: check_class_index(9, 5))
        assert cam.error.endswith("或者用 class_index=None 表示得分最高的类别（见 predict_top）。")
    finally:
        cam.close()
    ex = ActivationExplorer(tiny_functional, rgb16, cache=ActivationCache())
    try:
        with pytest.raises(CnnVizError):
            ex.page = 1
        assert ex.error == "页码 1 超出范围：这一层只有 1 页（每页 64 个通道），页码只能是 0。"
        assert ex.error == _message(lambda: page_channels(ex._channels, 1, ex._page_size))
        assert ex.page == 0
    finally:
        ex.close()


def test_page_messages_in_english():
    assert _message(lambda: page_channels(10, 1, 64)) == (
        "page 1 is out of range: this layer has only 1 page (64 channels per page), so the page "
        "must be 0."
    )
    assert _message(lambda: page_channels(150, 3, 64)) == (
        "page 3 is out of range: this layer has 3 pages of 64 channels (0–2). Pick a page from 0 "
        "to 2."
    )


# ------------------------------------------------------------------ 6. counts that say what
def test_no_such_layer_says_what_it_counted(tiny_functional):
    adapter = adapter_for(tiny_functional)
    n_all, n_spatial = len(adapter.layers), len(adapter.layer_paths)
    assert n_all != n_spatial
    with pytest.raises(LayerError) as spatial:
        adapter.resolve_layer("conv9")
    with pytest.raises(LayerError) as every:
        adapter.layer_info("conv9")
    assert str(spatial.value).endswith(
        f"See layer_paths(model) for all {n_spatial} layers with feature maps."
    )
    assert str(every.value).endswith(
        f"The model has {n_all} layers in all; layer_paths(model) lists those with feature maps."
    )
    with i18n.use_language("zh"):
        with pytest.raises(LayerError) as every:
            adapter.layer_info("conv9")
    assert str(every.value).startswith("模型 'tiny_functional' 中没有层 'conv9'。您是不是想用：")
    assert str(every.value).endswith(
        f"这个模型一共有 {n_all} 层；layer_paths(model) 会列出其中有特征图的层。"
    )


def test_atlas_image_sources_refuse_in_chinese(tmp_path):
    from cnnviz_widgets.atlas.sources import as_source

    missing = str(tmp_path / "nowhere")
    assert _message(lambda: as_source(missing)) == f"No such folder or file: {missing!r}."
    with i18n.use_language("zh"):
        assert _message(lambda: as_source(missing)) == f"没有这个文件夹或文件：{missing!r}。"
        assert _message(lambda: as_source(np.zeros((2, 3)))) == (
            "图像数组必须是 (N, H, W, C) 或 (N, H, W)；收到的形状是 (2, 3)。"
        )


def test_channel_index_out_of_range_in_chinese():
    from cnnviz_widgets.render.layout import channel_grid

    maps = np.zeros((4, 4, 3), np.float32)
    call = lambda: channel_grid(maps, channels=[5])  # noqa: E731
    assert _message(call) == (
        "Channel index 5 is out of range: this layer has 3 channels (valid: 0–2). Pick channel "
        "indexes from 0 to 2."
    )
    with i18n.use_language("zh"):
        assert _message(call) == (
            "通道编号 5 超出范围：这一层有 3 个通道（有效范围：0–2）。请选 0 到 2 之间的通道编号。"
        )
