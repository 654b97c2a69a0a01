"""CamExplorer with no browser: overlay pixels, bar-chart clicks, background work, errors."""

from __future__ import annotations

import numpy as np
import pytest
from widget_comm import recording_comms  # noqa: F401  (fixture)

from cnnviz_widgets import render
from cnnviz_widgets.cache import ActivationCache
from cnnviz_widgets.errors import CnnVizError, LayerError
from cnnviz_widgets.explain import grad_cam, predict_top, saliency
from cnnviz_widgets.widgets.cam import CamExplorer

pytestmark = pytest.mark.usefixtures("recording_comms")

LABELS = ["cat", "dog", "cup", "car", "tree"]


@pytest.fixture
def rgb32():
    return np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)


@pytest.fixture
def cam(tiny_functional, rgb32):
    explorer = CamExplorer(tiny_functional, rgb32, labels=LABELS, k=3, cache=ActivationCache())
    assert explorer.wait(30)
    yield explorer
    explorer.close()


def test_top_classes_become_bars_and_the_first_is_explained(cam, tiny_functional, rgb32):
    top = predict_top(tiny_functional, rgb32, k=3, labels=LABELS)
    assert cam.top == top
    assert list(cam.bars.x) == [label for _, label, _ in top]
    np.testing.assert_allclose(cam.bars.y, [p for _, _, p in top])
    assert cam.class_index == top[0][0]
    assert list(cam.bars.selected) == [0]
    heat = grad_cam(tiny_functional, rgb32, top[0][0], layer="conv2")
    np.testing.assert_allclose(cam.heatmap, heat, atol=1e-6)
    want = render.overlay(rgb32, heat, cmap="jet", alpha=0.5)
    np.testing.assert_array_equal(cam.rgb, want)
    assert cam.view.value == cam.png
    assert f"<b>{top[0][1]}</b> (class {top[0][0]}) · Grad-CAM · layer conv2" in cam.caption.value


def test_clicking_a_bar_explains_that_class(cam, tiny_functional, rgb32):
    second = cam.top[1][0]
    cam.bars.selected = [1]  # what bqplot sets when a person clicks the second bar
    assert cam.wait(30)
    assert cam.class_index == second
    np.testing.assert_allclose(
        cam.heatmap, grad_cam(tiny_functional, rgb32, second, layer="conv2"), atol=1e-6
    )


def test_any_class_from_the_picker_and_bars_unselect(cam):
    missing = next(i for i in range(5) if i not in [c for c, _, _ in cam.top])
    cam.class_picker.value = f"{missing}: {LABELS[missing]}"
    assert cam.wait(30)
    assert cam.class_index == missing and cam.bars.selected is None
    assert cam.class_picker.options[missing] == f"{missing}: {LABELS[missing]}"


def test_saliency_methods_disable_the_layer_picker(cam, tiny_functional, rgb32):
    cam.method = "smoothgrad"
    assert cam.wait(30)
    assert cam.layer_dropdown.disabled
    want = saliency(tiny_functional, rgb32, cam.class_index, method="smoothgrad")
    np.testing.assert_allclose(cam.heatmap, want, atol=1e-5)
    assert "SmoothGrad" in cam.caption.value and "layer" not in cam.caption.value


def test_opacity_and_colormap_redraw_without_recomputing(cam, rgb32):
    heat = cam.heatmap
    misses = cam.cache.misses
    cam.alpha = 1.0
    cam.cmap = "gray"
    assert cam.cache.misses == misses
    np.testing.assert_array_equal(cam.rgb, render.apply_colormap(heat, "gray"))


def test_coming_back_to_a_map_reads_the_cache(cam):
    first = cam.png
    cam.method = "layercam"
    assert cam.wait(30)
    cam.method = "gradcam"  # cached: drawn at once, no background job
    assert not cam.busy and cam.png == first


def test_bad_values_show_in_the_widget_and_raise(cam):
    with pytest.raises(
        CnnVizError, match=r"class_index 7 is out of range: the model has 5 classes \(0–4\)\."
    ):
        cam.class_index = 7
    assert "class_index 7 is out of range" in cam.message.value
    with pytest.raises(
        CnnVizError, match=r"alpha must be between 0 \(photo only\) and 1 \(map only\); got 1\.5"
    ):
        cam.alpha = 1.5
    with pytest.raises(LayerError, match="No layer 'conv9'"):
        cam.layer = "conv9"


def test_errors_from_the_background_job_show_in_the_widget(cam, monkeypatch):
    before = cam.png

    def failing(method, layer, class_index):
        raise CnnVizError(f"cannot compute {method} on {layer}")

    monkeypatch.setattr(cam, "_compute", failing)
    cam.method = "gradcam++"
    assert cam.wait(30)
    assert cam.error == "cannot compute gradcam++ on conv2"
    assert "cannot compute gradcam++ on conv2" in cam.message.value
    assert not cam.busy and cam.progress.value == ""
    assert cam.png == before  # the last good picture stays


def test_newest_request_wins(cam, tiny_functional, rgb32):
    for method in ["gradcam++", "layercam", "scorecam", "vanilla", "gradcam"]:
        cam.method = method
    cam.class_index = cam.top[2][0]
    assert cam.wait(30)
    want = grad_cam(tiny_functional, rgb32, cam.top[2][0], layer="conv2")
    np.testing.assert_allclose(cam.heatmap, want, atol=1e-6)
