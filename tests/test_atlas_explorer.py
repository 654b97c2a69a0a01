"""AtlasExplorer with no browser: records, crops grid, statistics, ascent, opening a channel."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

pytest.importorskip("dask")
pytest.importorskip("zarr")

from widget_comm import recording_comms  # noqa: F401  (fixture)

import cnnviz_widgets as cv
from cnnviz_widgets import render
from cnnviz_widgets.errors import CnnVizError, LayerError
from cnnviz_widgets.widgets.activations import ActivationExplorer
from cnnviz_widgets.widgets.atlas import TILE_MIN_SIDE, AtlasExplorer

pytestmark = pytest.mark.usefixtures("recording_comms")


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(7, 3, strides=2, padding="same", name="conv2")(x)
    return keras.Model(inputs, x, name="explorer_tiny")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(5).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def store(model, images, tmp_path_factory):
    path = tmp_path_factory.mktemp("atlas") / "atlas.zarr"
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNVIZ_CACHE_DIR", str(cache))
        cv.atlas.build(model, images, k=4, store=path, batch_size=4, progress=False,
                       ascent={"size": 16, "steps": 2})  # fmt: skip
    return path


def test_shows_the_first_layer_and_its_top_crops_with_scores(store):
    ex = AtlasExplorer(store)
    atlas = ex.atlas
    assert ex.layer_dropdown.options == ("conv1", "conv2") and ex.layer == "conv1"
    assert (ex.channel, ex.channel_slider.max) == (0, 4)
    records = atlas.top("conv1", 0)
    assert ex.records == records
    crops = atlas.crops("conv1", 0)
    want, _ = render.image_grid(crops, range(4), columns=3, tile_min_side=TILE_MIN_SIDE)
    np.testing.assert_array_equal(ex.rgb, want)
    assert ex.view.value == ex.png
    for record in records:
        assert f"<td>{record.index}</td><td>{record.score:.4g}</td>" in ex.caption.value
    assert "<b>conv1</b> · channel 0 · top 4 of 10 images" in ex.caption.value


def test_channel_and_layer_changes_follow_the_store(store):
    ex = AtlasExplorer(store)
    ex.channel = 3
    assert ex.records == ex.atlas.top("conv1", 3)
    stats = ex.atlas.stats("conv1")
    assert f"mean {stats['mean'][3]:.4g}" in ex.stats_view.value
    assert f"zeros {100 * stats['zero_fraction'][3]:.1f}%" in ex.stats_view.value
    ex.layer = "conv2"
    assert (ex.channel, ex.channel_slider.max) == (3, 6)
    ex.channel = 6
    assert ex.records == ex.atlas.top("conv2", 6)
    ex.layer_dropdown.value = "conv1"  # the browser's part: the control moves the trait
    assert (ex.layer, ex.channel, ex.channel_slider.max) == ("conv1", 4, 4)


def test_the_ascent_image_is_shown(store):
    ex = AtlasExplorer(store, channel=2)
    assert ex.ascent_view.layout.display == ""
    want = render.encode_png(render.upscale_nearest(ex.atlas.ascent("conv1", 2), 160))
    assert ex.ascent_view.value == want


def test_bad_values_are_refused_and_shown(store):
    ex = AtlasExplorer(store)
    with pytest.raises(
        CnnVizError, match=r"Channel 5 is out of range: layer 'conv1' has 5 channels \(0–4\)"
    ):
        ex.channel = 5
    assert "out of range" in ex.error and ex.channel == 0
    with pytest.raises(LayerError, match="The atlas has no layer 'conv3'"):
        ex.layer = "conv3"
    with pytest.raises(CnnVizError, match="needs the model: AtlasExplorer\\(store, model=...\\)"):
        ex.show_on(np.zeros((16, 16, 3), np.uint8))


def test_show_on_opens_the_activation_explorer_at_this_channel(store, model, images):
    ex = AtlasExplorer(store, model=model, layer="conv2", channel=4)
    opened = ex.show_on(images[3])
    assert isinstance(opened, ActivationExplorer)
    assert (opened.layer, opened.channel) == ("conv2", 4)
    assert ex.activation_box.children == (opened,)
    want = cv.activations(model, images[3], "conv2")[:, :, 4]
    np.testing.assert_allclose(opened._activations()[:, :, 4], want, rtol=1e-6)
    with pytest.raises(CnnVizError, match="Image 2 has no file in this atlas"):
        ex.show_on(2)  # an array source: no paths


def test_an_uploaded_image_opens_the_channel(store, model, images):
    from PIL import Image

    ex = AtlasExplorer(store, model=model, channel=1)
    buffer = io.BytesIO()
    Image.fromarray(images[0]).save(buffer, format="PNG")
    # The browser's part: the front end sends the file as the widget's state.
    content = buffer.getvalue()
    ex.upload.set_state(
        {"value": [{"name": "mine.png", "type": "image/png", "size": len(content),
                    "content": memoryview(content), "last_modified": 0}]}
    )  # fmt: skip
    ex.show_button.click()
    assert ex.activation_explorer is not None
    assert (ex.activation_explorer.layer, ex.activation_explorer.channel) == ("conv1", 1)


def test_a_copied_store_opens_with_no_model(store, tmp_path):
    copy = tmp_path / "elsewhere.zarr"
    shutil.copytree(store, copy)
    ex = AtlasExplorer(str(copy), layer="conv2", channel=5)
    assert ex.records == cv.atlas.open(store).top("conv2", 5)
    assert ex.png[:8] == render.PNG_SIGNATURE
