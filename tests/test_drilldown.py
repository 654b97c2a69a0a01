"""channel_attribution against a bare GradientTape computation; point mapping; bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cnnviz_widgets.errors import CnnVizError, LayerError
from cnnviz_widgets.explain.drilldown import channel_attribution, image_cell, rank_channels


def tape_scores(model, image, class_index, layer, logits_of=None):
    """Gradient × activation of the class logit at every cell, written with a bare tape."""
    import keras
    import tensorflow as tf

    probe = keras.Model(model.inputs, [model.get_layer(layer).output, model.output])
    batch = tf.constant(image[None].astype(np.float32))
    with tf.GradientTape() as tape:
        features, output = probe(batch)
        logits = output if logits_of is None else logits_of(features)
        score = logits[:, class_index]
    grads = tape.gradient(score, features)
    return (features * grads).numpy()[0]  # (h, w, K)


def test_ranking_matches_a_bare_tape(tiny_flexible, rgb16):
    scores = tape_scores(tiny_flexible, rgb16, 3, "conv2")  # linear head: output = logits
    cell = (5 * 8 // 16, 13 * 8 // 16)  # conv2 is 8×8 under a 16×16 image
    got = channel_attribution(tiny_flexible, rgb16, 3, "conv2", point=(5, 13))
    want = sorted(enumerate(scores[cell].tolist()), key=lambda pair: -pair[1])
    assert [c for c, _ in got] == [c for c, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5, atol=1e-7)
    assert channel_attribution(tiny_flexible, rgb16, 3, "conv2", point=(5, 13), top=2) == got[:2]


def test_softmax_heads_are_explained_from_their_logits(tiny_functional, rgb16):
    import tensorflow as tf

    dense = tiny_functional.get_layer("probs")

    def logits_of(features):  # gap → dense without its softmax
        return tf.matmul(tf.reduce_mean(features, axis=(1, 2)), dense.kernel) + dense.bias

    scores = tape_scores(tiny_functional, rgb16, 1, "conv2", logits_of)
    got = dict(channel_attribution(tiny_functional, rgb16, 1, "conv2", point=(15, 0)))
    for channel, score in enumerate(scores[7, 0]):
        assert got[channel] == pytest.approx(float(score), rel=1e-5, abs=1e-7)


def test_point_is_in_the_pixels_of_the_image_as_given(tiny_functional):
    # A 32×48 photo is resized to the model's 16×16; conv2 is 8×8 either way.
    photo = np.random.default_rng(2).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    assert image_cell((16, 24), (32, 48), (8, 8)) == (4, 4)
    assert image_cell((15.9, 23.9), (32, 48), (8, 8)) == (3, 3)
    assert image_cell((31, 47), (32, 48), (8, 8)) == (7, 7)
    assert image_cell((0, 0), (32, 48), (8, 8)) == (0, 0)
    from cnnviz_widgets.engine.adapter import adapter_for
    from cnnviz_widgets.explain.drilldown import channel_gradients

    adapter = adapter_for(tiny_functional)
    features, grads, target = channel_gradients(adapter, adapter.prepare(photo), 2, "conv2")
    assert target == 2
    want = rank_channels(features, grads, (7, 7))
    assert channel_attribution(tiny_functional, photo, 2, "conv2", point=(31, 47)) == want
    # Default: the middle of the image.
    middle = rank_channels(features, grads, (4, 4))
    assert channel_attribution(tiny_functional, photo, 2, "conv2") == middle


def test_rank_channels_orders_ties_by_channel():
    features = np.ones((1, 1, 4), np.float32)
    grads = np.array([[[0.5, 2.0, 0.5, -1.0]]], np.float32)
    assert rank_channels(features, grads, (0, 0)) == [(1, 2.0), (0, 0.5), (2, 0.5), (3, -1.0)]


def test_bad_input(tiny_functional):
    photo = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(CnnVizError, match=re.escape(
        "point y 32 is out of range: the image has 32 rows (0–31)."
    )):  # fmt: skip
        channel_attribution(tiny_functional, photo, 0, "conv2", point=(32, 0))
    with pytest.raises(CnnVizError, match=re.escape(
        "point x -1 is out of range: the image has 48 columns (0–47)."
    )):  # fmt: skip
        channel_attribution(tiny_functional, photo, 0, "conv2", point=(0, -0.5))
    with pytest.raises(CnnVizError, match=re.escape(
        "point must be (y, x), two numbers in image pixels; got 'ab'."
    )):  # fmt: skip
        channel_attribution(tiny_functional, photo, 0, "conv2", point="ab")
    with pytest.raises(CnnVizError, match=re.escape("point y must be a number; got 'a'.")):
        channel_attribution(tiny_functional, photo, 0, "conv2", point=("a", 1))
    with pytest.raises(LayerError, match=re.escape(
        "Layer 'gap' (GlobalAveragePooling2D) has output shape (6,): no spatial map left"
    )):  # fmt: skip
        channel_attribution(tiny_functional, photo, 0, "gap", point=(1, 1))
    with pytest.raises(CnnVizError, match=re.escape("top must be ≥ 1; got 0.")):
        channel_attribution(tiny_functional, photo, 0, "conv2", point=(1, 1), top=0)
