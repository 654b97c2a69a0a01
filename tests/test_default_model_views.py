"""The adapter and the ActivationExplorer on the real offline default model."""

from __future__ import annotations

import numpy as np
import pytest
from widget_comm import recording_comms  # noqa: F401  (fixture)

from cnnviz_widgets import render
from cnnviz_widgets.cache import ActivationCache
from cnnviz_widgets.engine.adapter import activations, adapter_for, layer_paths
from cnnviz_widgets.engine.models import load_default_model
from cnnviz_widgets.samples import sample_image
from cnnviz_widgets.widgets.activations import ActivationExplorer

pytestmark = pytest.mark.default_model


@pytest.fixture(scope="module")
def model():
    return load_default_model()


def test_nested_layer_paths_of_the_default_model(model):
    paths = layer_paths(model)
    assert len(paths) == 141
    assert paths[:3] == ["preprocess", "backbone/stem_conv", "backbone/stem_bn"]
    assert paths[-1] == "backbone/top_activation"
    assert "backbone" not in paths and "logits" not in paths


def test_chelsea_is_brought_to_imagenet_scale_whole(model):
    adapter = adapter_for(model)
    assert adapter.prepare(sample_image("chelsea")).pixels.shape == (224, 337, 3)  # 300×451 in


def test_activations_equal_the_backbone_run_by_keras_itself(model):
    import keras

    image = sample_image("chelsea")
    pixels = adapter_for(model).prepare(image).pixels
    backbone = model.get_layer("backbone")
    stem = keras.Model(backbone.inputs[0], backbone.get_layer("block2a_expand_activation").output)
    want = np.asarray(stem(model.get_layer("preprocess")(pixels[None])))[0]
    got = activations(model, image, "backbone/block2a_expand_activation")
    assert got.shape == (112, 169, 96)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert 0.0 <= float(got.min()) and float(got.max()) <= 6.0  # ReLU6


def test_logits_of_the_replayed_model_equal_the_models_own(model):
    import tensorflow as tf

    adapter = adapter_for(model)
    batch = adapter.model_input(adapter.prepare(sample_image("coffee")))
    _, logits = adapter.forward(tf.constant(batch), logits=True)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(model(batch)), atol=1e-4)
    assert int(np.argmax(logits)) == 967  # espresso


@pytest.mark.usefixtures("recording_comms")
def test_explorer_grid_pages_through_a_wide_layer(model):
    ex = ActivationExplorer(
        model, sample_image("chelsea"), layer="backbone/block5a_expand_activation",
        mode="grid", cache=ActivationCache(),
    )  # fmt: skip
    assert (ex.page_slider.max, len(ex.grid_layout.channels)) == (8, 64)  # 480 channels
    ex.page = 7
    assert ex.grid_layout.channels == tuple(range(448, 480))
    maps = activations(model, sample_image("chelsea"), "backbone/block5a_expand_activation")
    want, layout = render.channel_grid(
        maps, range(448, 480), columns=8, cmap="viridis", tile_min_side=48
    )
    np.testing.assert_array_equal(ex.rgb, render.number_tiles(want, layout))
