"""FilterExplorer with no browser: streamed frames, cancellation, cache, progress, errors."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from widget_comm import recording_comms  # noqa: F401  (fixture)

from cnnviz_widgets import ascent as fa
from cnnviz_widgets import render
from cnnviz_widgets.ascent import optimize
from cnnviz_widgets.errors import CnnVizError
from cnnviz_widgets.widgets.filters import PAGE_SIZE, FilterExplorer

pytestmark = pytest.mark.usefixtures("recording_comms")

SETTINGS = {"size": 32, "steps": 16}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    fa.clear_memory_cache()
    yield tmp_path / "cache"
    fa.clear_memory_cache()


@pytest.fixture
def wide_model(paged_conv_model):
    """A conv layer with 40 channels: three pages of 16."""
    return paged_conv_model


@pytest.fixture
def explorer(wide_model):
    fx = FilterExplorer(wide_model, layer="conv2", **SETTINGS)
    assert fx.wait(60)
    yield fx
    fx.close()


def test_first_page_equals_a_direct_filter_ascent(explorer, wide_model):
    want = fa.filter_ascent(wide_model, "conv2", range(16), cache=False, **SETTINGS)
    np.testing.assert_allclose(explorer.images, want, atol=1e-6)
    grid = render.number_tiles(*render.image_grid(want, range(16), columns=8, tile_min_side=64))
    np.testing.assert_array_equal(explorer.rgb, grid)
    assert explorer.view.value == explorer.png
    assert (explorer.progress_bar.value, explorer.progress_bar.max) == (16, 16)
    assert explorer.progress_bar.bar_style == "success" and not explorer.busy
    assert "channels 0–15 · page 1 of 3 · 32 px, 16 steps" in explorer.caption.value


def test_frames_stream_into_the_grid_while_images_form(wide_model):
    shown = []
    fx = FilterExplorer(wide_model, layer="conv2", size=32, steps=32)
    fx.view.observe(lambda change: shown.append(change["new"]), names="value")
    assert fx.wait(60)
    assert len(shown) >= 3  # frames at steps 8, 16, 24 and the final picture
    assert len(set(shown)) == len(shown)  # every frame differs from the last
    assert shown[-1] == fx.png
    fx.close()


def test_moving_on_cancels_the_run_and_the_newest_page_is_shown(
    explorer, wide_model, private_cache
):
    fa.clear_memory_cache()
    explorer.steps = 400  # long enough to be caught mid-run
    time.sleep(0.3)
    started = time.perf_counter()
    explorer.page = 2
    explorer.steps = 16
    assert explorer.wait(60)
    assert explorer.images.shape == (8, 32, 32, 3)  # channels 32–39
    want = fa.filter_ascent(wide_model, "conv2", range(32, 40), cache=False, **SETTINGS)
    np.testing.assert_allclose(explorer.images, want, atol=1e-6)
    assert time.perf_counter() - started < 30
    assert not list(private_cache.rglob("*.tmp*"))  # a cancelled run leaves no partial file


def test_a_page_seen_once_comes_back_from_the_cache(explorer, monkeypatch):
    first = explorer.png
    explorer.page = 1
    assert explorer.wait(60)
    calls = []
    original = optimize._optimise
    monkeypatch.setattr(optimize, "_optimise", lambda *a, **k: calls.append(1) or original(*a, **k))
    explorer.page = 0
    assert explorer.wait(60)
    assert calls == [] and explorer.png == first


def test_channel_slider_follows_pages_and_clicks_enlarge(explorer):
    explorer.channel = 20  # on page 1
    assert explorer.page == 1
    assert explorer.wait(60)
    layout = explorer.grid_layout
    x = layout.pad + 3 * (layout.tile_width + layout.pad) + 5
    explorer.handle_view_click({"dataX": x, "dataY": layout.pad + 5})
    assert explorer.channel == 19
    picture = explorer.images[19 - PAGE_SIZE]
    tile, _ = render.image_grid(picture[None], [19], pad=0, tile_min_side=256)
    assert explorer.enlarged.value == render.encode_png(tile)


def test_a_new_page_moves_the_channel_onto_it(explorer):
    explorer.page_slider.set_state({"value": 3})  # the browser moves the slider to "3"
    assert (explorer.page, explorer.channel, explorer.channel_slider.value) == (2, 32, 32)
    explorer.channel = 33  # same page: the run for it goes on
    assert explorer.page == 2
    assert explorer.wait(60) and explorer.images.shape[0] == 8


def test_layer_change_resets_channel_range(explorer):
    explorer.channel = 39
    explorer.layer = "conv1"
    assert (explorer.channel, explorer.channel_slider.max, explorer.page_slider.max) == (7, 7, 1)
    assert explorer.page == 0
    assert explorer.wait(60) and explorer.images.shape[0] == 8


def test_bad_values_are_refused_in_the_widget(explorer):
    with pytest.raises(
        CnnVizError, match=r"Channel 40 is out of range: layer 'conv2' has 40 channels \(0–39\)"
    ):
        explorer.channel = 40
    assert "Channel 40 is out of range" in explorer.message.value
    with pytest.raises(CnnVizError, match=r"^steps must be ≥ 1; got 0\. Use steps=None for the default"):
        explorer.steps = 0
    with pytest.raises(CnnVizError, match="page 5 is out of range"):
        explorer.page = 5


def test_errors_in_the_run_show_in_the_widget_and_stop_the_bar(explorer, monkeypatch):
    def failing(*args, **kwargs):
        raise CnnVizError("size 32 is too small for this layer")

    monkeypatch.setattr("cnnviz_widgets.widgets.filters.filter_ascent", failing)
    explorer.size = 64
    assert explorer.wait(60)
    assert explorer.error == "size 32 is too small for this layer"
    assert explorer.progress_bar.bar_style == "danger" and not explorer.busy


def test_the_kernel_stays_responsive_during_a_run(wide_model):
    fx = FilterExplorer(wide_model, layer="conv2", size=32, steps=200)
    ticks = 0
    deadline = time.perf_counter() + 0.5
    while time.perf_counter() < deadline:  # the main thread keeps running meanwhile
        ticks += 1
        time.sleep(0.01)
    assert ticks >= 20 and fx.busy
    fx.close()
    assert not any(t.name == "cnnviz-filters" for t in threading.enumerate())


def test_default_steps_honour_the_environment_cap(wide_model, monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_STEPS", "8")
    fx = FilterExplorer(wide_model, layer="conv1", size=32)
    assert fx.steps == 8
    assert fx.wait(60) and "32 px, 8 steps" in fx.caption.value
    fx.close()
    explicit = FilterExplorer(wide_model, layer="conv1", size=32, steps=16)
    assert explicit.steps == 16  # an explicit choice is the user's to make
    explicit.close()


def test_kernel_view_draws_the_layers_weights_or_explains(explorer, wide_model):
    from cnnviz_widgets.engine.weights import kernel_weights
    from cnnviz_widgets.render.kernels import kernel_grid

    explorer.show = "kernels"
    assert not explorer.busy
    np.testing.assert_array_equal(explorer.rgb, kernel_grid(kernel_weights(wide_model, "conv2")))
    assert "40 kernels of 3×3×8" in explorer.caption.value
    explorer.layer = "conv1"
    np.testing.assert_array_equal(explorer.rgb, kernel_grid(kernel_weights(wide_model, "conv1")))
    explorer.show = "ascent"
    assert explorer.wait(60) and explorer.images.shape[0] == 8


def test_kernel_view_of_a_layer_without_kernels_says_where_they_are(keras):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.ReLU(name="relu")(x))
    fx = FilterExplorer(
        model,
        layer="relu",
        size=32,
        steps=8,
    )
    fx.show = "kernels"
    assert "has no convolution kernels to show" in fx.error and "'conv'" in fx.error
    fx.close()
