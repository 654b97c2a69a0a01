"""ActivationExplorer with no browser: exact pictures, control state and messages to the page."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from widget_comm import recording_comms, updates  # noqa: F401  (fixture)

from cnnviz_widgets import render
from cnnviz_widgets.cache import ActivationCache
from cnnviz_widgets.engine.adapter import activations
from cnnviz_widgets.errors import CnnVizError, ImageConversionWarning, LayerError
from cnnviz_widgets.widgets.activations import (
    GRID_COLUMNS,
    GRID_TILE_MAX_SIDE,
    GRID_TILE_MIN_SIDE,
    VIEW_MIN_SIDE,
    ActivationExplorer,
)

pytestmark = pytest.mark.usefixtures("recording_comms")


def _expected_channel_view(maps, channel, cmap):
    rgb = render.apply_colormap(render.normalize_channels(maps[:, :, channel]), cmap)
    return render.upscale_nearest(rgb, VIEW_MIN_SIDE)


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.fixture
def explorer(tiny_functional, rgb16):
    return ActivationExplorer(tiny_functional, rgb16, layer="pool1", cache=ActivationCache())


def test_a_named_layer_opens_on_channel_zero(explorer, tiny_functional, rgb16):
    # Without a layer the explorer opens on the first activation (tests/test_teaching.py).
    assert explorer.layer == "pool1"
    maps = activations(tiny_functional, rgb16, "pool1")
    np.testing.assert_array_equal(explorer.rgb, _expected_channel_view(maps, 0, "viridis"))
    np.testing.assert_array_equal(_decode(explorer.png), explorer.rgb)
    assert explorer.view.value == explorer.png
    assert "pool1" in explorer.caption.value and "8×8×4" in explorer.caption.value


def test_channel_and_colormap_changes_redraw_exactly(explorer, tiny_functional, rgb16):
    maps = activations(tiny_functional, rgb16, "pool1")
    explorer.channel = 3
    explorer.cmap = "magma"
    np.testing.assert_array_equal(explorer.rgb, _expected_channel_view(maps, 3, "magma"))
    assert explorer.channel_slider.value == 3 and explorer.cmap_dropdown.value == "magma"


def test_layer_change_moves_channel_range_and_clamps_channel(explorer):
    explorer.layer = "conv2"
    explorer.channel = 5
    assert explorer.channel_slider.max == 5
    explorer.layer = "conv1"  # 4 channels: channel 5 no longer exists
    assert (explorer.channel, explorer.channel_slider.max) == (3, 3)
    assert "conv1" in explorer.caption.value and "channel 3" in explorer.caption.value


def test_grid_mode_shows_every_channel_and_a_click_opens_one(explorer, tiny_functional, rgb16):
    explorer.layer = "conv2"
    explorer.mode = "grid"
    maps = activations(tiny_functional, rgb16, "conv2")
    want, layout = render.channel_grid(
        maps, range(6), columns=min(GRID_COLUMNS, 6), cmap="viridis",
        tile_min_side=GRID_TILE_MIN_SIDE, tile_max_side=GRID_TILE_MAX_SIDE,
    )  # fmt: skip
    np.testing.assert_array_equal(explorer.rgb, render.number_tiles(want, layout))
    assert explorer.grid_layout == layout
    assert explorer.channel_slider.disabled
    # click the middle of the fifth tile (channel 4), as ipyevents reports it
    x = layout.pad + 4 * (layout.tile_width + layout.pad) + layout.tile_width / 2
    y = layout.pad + layout.tile_height / 2
    explorer.handle_view_click({"type": "click", "dataX": x, "dataY": y})
    assert (explorer.mode, explorer.channel) == ("channel", 4)
    np.testing.assert_array_equal(explorer.rgb, _expected_channel_view(maps, 4, "viridis"))


def test_click_on_padding_or_outside_grid_mode_changes_nothing(explorer):
    explorer.mode = "grid"
    before = explorer.rgb
    explorer.handle_view_click({"dataX": 0, "dataY": 0})  # the border padding
    assert explorer.mode == "grid"
    np.testing.assert_array_equal(explorer.rgb, before)
    explorer.mode = "channel"
    explorer.handle_view_click({"dataX": 10, "dataY": 10})
    assert explorer.channel == 0


def test_sum_mode_is_the_fused_map(explorer, tiny_functional, rgb16):
    explorer.mode = "sum"
    maps = activations(tiny_functional, rgb16, "pool1")
    fused = render.apply_colormap(render.normalize_channels(render.channel_sum(maps)), "viridis")
    np.testing.assert_array_equal(explorer.rgb, render.upscale_nearest(fused, VIEW_MIN_SIDE))


def test_browser_side_changes_drive_the_traits(explorer):
    # what the page sends when a person picks the 4th layer and drags the slider
    explorer.layer_dropdown.set_state({"index": 3})
    assert explorer.layer == "conv2"
    explorer.channel_slider.set_state({"value": 2})
    assert explorer.channel == 2
    explorer.mode_buttons.set_state({"index": 2})
    assert explorer.mode == "sum"


def test_a_view_change_sends_the_png_as_a_binary_buffer_once(explorer):
    explorer.view.comm.messages.clear()
    explorer.caption.comm.messages.clear()
    explorer.channel = 1
    sent = updates(explorer.view)
    assert len(sent) == 1
    state, buffers = sent[0]
    assert bytes(buffers[0]) == explorer.png  # raw bytes, not base64 in JSON
    assert state.get("value") is None or state["value"] == {}
    # The caption is a second widget: its own one message, sent in the same Picture.show call.
    assert updates(explorer.caption) == [({"value": explorer.caption.value}, [])]
    assert "channel 1" in explorer.caption.value


def test_unknown_layer_shows_close_matches_in_the_widget_and_raises(explorer):
    before = explorer.png
    with pytest.raises(LayerError, match=r"No layer 'conv3'.*Did you mean: .*'conv"):
        explorer.layer = "conv3"
    assert "No layer &#x27;conv3&#x27;" in explorer.message.value
    assert explorer.message.layout.display == ""
    assert explorer.layer == "pool1" and explorer.png == before
    explorer.channel = 1  # the widget keeps working; a good change clears the message
    assert explorer.error == "" and explorer.message.layout.display == "none"


def test_channel_out_of_range_names_the_range(explorer):
    with pytest.raises(
        CnnVizError, match=r"Channel 9 is out of range: layer 'pool1' has 4 channels \(0–3\)\."
    ):
        explorer.channel = 9
    assert "Channel 9 is out of range" in explorer.error


def test_unknown_colormap_is_refused_and_extra_names_join_the_picker(explorer):
    with pytest.raises(CnnVizError, match="Unknown colormap 'virdis'. Did you mean: 'viridis'"):
        explorer.cmap = "virdis"
    explorer.cmap = "twilight"
    assert (
        "twilight" in explorer.cmap_dropdown.options and explorer.cmap_dropdown.value == "twilight"
    )


def test_summary_lists_every_layer_and_picking_one_opens_it(explorer):
    labels = [label for label, _ in explorer.summary.table.options]
    assert [path for _, path in explorer.summary.table.options] == [
        "conv1", "relu1", "pool1", "conv2", "gap", "probs",
    ]  # fmt: skip
    assert labels[0].split()[:3] == ["conv1", "Conv2D", "16×16×4"]
    assert labels[0].split()[-1] == "112"  # 3·3·3·4 + 4 parameters
    explorer.tabs.selected_index = 2
    explorer.summary.table.value = "conv2"
    assert explorer.layer == "conv2" and explorer.tabs.selected_index == 0


def test_picking_a_dense_layer_in_the_summary_explains_instead_of_crashing(explorer):
    explorer.summary.table.value = "probs"  # no exception reaches the caller (the browser)
    assert "Layer &#x27;probs&#x27; (Dense)" in explorer.message.value
    assert explorer.layer == "pool1"


def test_grid_pages_for_layers_with_many_channels(keras, rgb16):
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(150, 3, name="wide")(inputs))
    ex = ActivationExplorer(model, rgb16, mode="grid", cache=ActivationCache())
    assert (ex.page_slider.max, ex.page_slider.layout.display) == (3, "")
    ex.page = 2
    assert ex.page_slider.value == 3  # people count pages from 1
    assert ex.grid_layout.channels == tuple(range(128, 150))
    assert "page 3 of 3" in ex.caption.value
    with pytest.raises(
        CnnVizError, match=r"page 3 is out of range: this layer has 3 pages of 64 channels \(0–2\)\."
    ):
        ex.page = 3
    assert ex.page == 2 and "page 3 is out of range" in ex.message.value
    ex.page_slider.set_state({"value": 1})  # the browser moves the slider to "1"
    assert ex.page == 0 and ex.grid_layout.channels[0] == 0


def test_detail_tab_draws_the_channel_with_a_colorbar(explorer, tiny_functional, rgb16):
    explorer.channel = 2
    explorer.tabs.selected_index = 1
    detail = explorer._detail
    maps = activations(tiny_functional, rgb16, "pool1")
    np.testing.assert_array_equal(detail.image.get_array(), maps[:, :, 2])
    assert detail.image.get_clim() == (float(maps[:, :, 2].min()), float(maps[:, :, 2].max()))
    assert detail.axes.get_title() == "pool1 · channel 2"
    explorer.channel = 3  # follows while visible
    np.testing.assert_array_equal(detail.image.get_array(), maps[:, :, 3])


def test_saved_notebooks_get_a_static_png(explorer):
    bundle = explorer._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    # The photo, the view and the caption, composed as the widget shows them (widgets/snapshot.py).
    from cnnviz_widgets.widgets.snapshot import compose

    want = compose([explorer._photo_rgb, explorer.rgb], explorer.caption.value,
                   [explorer.message.value] if explorer.message.value else [])  # fmt: skip
    assert _decode(base64.b64decode(data["image/png"])).tolist() == want.tolist()
    assert "application/vnd.jupyter.widget-view+json" in data


def test_grayscale_photo_on_rgb_model_is_converted_and_said(tiny_functional):
    gray = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (16, 1))
    with pytest.warns(ImageConversionWarning):
        ex = ActivationExplorer(tiny_functional, gray, cache=ActivationCache())
    assert "cnnviz-note" in ex.message.value and "channel" in ex.message.value
    np.testing.assert_array_equal(_decode(ex.input_view.value)[:, :, 0], gray)


def test_nested_and_never_built_models(tiny_nested, never_built_sequential, rgb16):
    nested = ActivationExplorer(tiny_nested, rgb16, layer="b_conv2", cache=ActivationCache())
    assert nested.layer == "base/b_conv2" and nested.channel_slider.max == 5
    unbuilt = ActivationExplorer(never_built_sequential, rgb16, cache=ActivationCache())
    assert list(unbuilt.layer_dropdown.options) == ["conv1", "pool1", "conv2"]


def test_explorers_share_the_cache_and_compute_each_map_once(tiny_functional, rgb16):
    cache = ActivationCache()
    ActivationExplorer(tiny_functional, rgb16, layer="conv1", cache=cache)
    misses = cache.misses
    ActivationExplorer(tiny_functional, rgb16, layer="conv1", cache=cache)
    assert cache.misses == misses and cache.hits > 0


def test_users_image_is_not_modified(tiny_functional, rgb16):
    before = rgb16.copy()
    ex = ActivationExplorer(tiny_functional, rgb16, cache=ActivationCache())
    ex.mode = "grid"
    np.testing.assert_array_equal(rgb16, before)
