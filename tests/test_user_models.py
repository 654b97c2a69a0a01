"""The models users bring: shared sub-models, tiny images, channels_first and video models.

Each case was a failure seen with peer tools (wrong values served silently, raw TensorFlow
errors); the right values come from plain Keras on the same call.
"""

from __future__ import annotations

import html

import numpy as np
import pytest

from cnnviz_widgets.engine.adapter import ModelAdapter, activations, layer_paths
from cnnviz_widgets.errors import ImageError, ModelError
from cnnviz_widgets.images import resize_image


@pytest.fixture(scope="module")
def siamese(keras):
    """A base sub-model applied to the image and to its mirror, both pooled into one head."""
    keras.utils.set_random_seed(11)
    inner = keras.Input((40, 56, 3))
    base = keras.Model(
        inner, keras.layers.Conv2D(5, 3, activation="relu", name="inner_conv")(inner), name="base"
    )
    x = keras.Input((40, 56, 3))
    mirrored = keras.layers.Lambda(lambda t: keras.ops.flip(t, axis=2), name="mirror")(x)
    pooled = [keras.layers.GlobalAveragePooling2D()(base(t)) for t in (x, mirrored)]
    head = keras.layers.Dense(3, name="head")(keras.layers.Concatenate()(pooled))
    return keras.Model(x, head, name="siamese"), base


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(3).integers(0, 256, (40, 56, 3), dtype=np.uint8)


def test_each_call_of_a_shared_sub_model_has_its_own_path_and_values(siamese, photo):
    model, base = siamese
    assert {"base/inner_conv", "base:2/inner_conv"} <= set(layer_paths(model))
    batch = photo[np.newaxis].astype("float32")
    first = np.asarray(base(batch))[0]
    second = np.asarray(base(batch[:, :, ::-1]))[0]
    assert np.abs(first - second).max() > 1.0  # the two calls really differ on this photo
    np.testing.assert_allclose(activations(model, photo, "base/inner_conv"), first, atol=1e-4)
    np.testing.assert_allclose(activations(model, photo, "base:2/inner_conv"), second, atol=1e-4)


def test_grad_cam_on_each_call_is_that_calls_map(keras, siamese, photo):
    import tensorflow as tf

    from cnnviz_widgets.explain import grad_cam

    model, base = siamese
    batch = tf.constant(photo[np.newaxis].astype("float32"))
    maps = []
    for flip in (False, True):
        with tf.GradientTape() as tape:
            features_first = base(batch)
            features_second = base(batch[:, :, ::-1])
            tape.watch([features_first, features_second])
            pooled = [tf.reduce_mean(f, axis=(1, 2)) for f in (features_first, features_second)]
            score = model.get_layer("head")(tf.concat(pooled, axis=-1))[:, 0]
        features = features_second if flip else features_first
        grads = tape.gradient(score, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0].numpy()
        maps.append(cam)
    assert np.abs(maps[0] / maps[0].max() - maps[1] / maps[1].max()).max() > 0.2
    for path, want in zip(("base/inner_conv", "base:2/inner_conv"), maps, strict=True):
        got = grad_cam(model, photo, 0, layer=path)
        # The same resize grad_cam documents (38×54 cells → the photo's 40×56), then max 1.
        full = np.maximum(resize_image(want, (40, 56)), 0.0)
        np.testing.assert_allclose(got, full / full.max(), atol=1e-4)


def test_a_plain_layer_called_twice_is_numbered_in_call_order(keras):
    keras.utils.set_random_seed(12)
    x = keras.Input((12, 12, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="shared")
    first = conv(x)
    doubled = keras.layers.Rescaling(2.0, name="double")(x)
    second = conv(doubled)
    model = keras.Model(x, keras.layers.Add()([first, second]), name="twice")
    image = np.random.default_rng(4).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    batch = image[np.newaxis].astype("float32")
    np.testing.assert_allclose(
        activations(model, image, "shared"), np.asarray(conv(batch))[0], atol=1e-4
    )
    np.testing.assert_allclose(
        activations(model, image, "shared:2"), np.asarray(conv(batch * 2.0))[0], atol=1e-4
    )


@pytest.fixture(scope="module")
def shrinking(keras):
    keras.utils.set_random_seed(13)
    x = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(8, 3)(x)
    y = keras.layers.MaxPooling2D()(y)
    y = keras.layers.Conv2D(16, 3)(y)
    y = keras.layers.Dense(5)(keras.layers.GlobalMaxPooling2D()(y))
    return keras.Model(x, y, name="shrinking")


def test_minimum_size_is_computed_from_the_layers(shrinking, keras):
    # conv 3 (valid) → pool 2 → conv 3 (valid): 8 → 6 → 3 → 1, and 7 would give an empty map.
    assert ModelAdapter(shrinking).minimum_size == (8, 8)
    strided = keras.Sequential(
        [keras.Input((None, None, 1)), keras.layers.Conv2D(2, 5, strides=2, dilation_rate=1),
         keras.layers.Cropping2D(((1, 2), (0, 0))), keras.layers.Conv2D(2, 3, padding="same")],
        name="strided",
    )  # fmt: skip
    # Cropping needs 1+2+1 = 4 rows, so the conv needs (4-1)*2+5 = 11 rows and 5 columns.
    assert ModelAdapter(strided).minimum_size == (11, 5)


@pytest.mark.parametrize("shape", [(6, 6, 3), (3, 40, 3)])
def test_an_image_too_small_for_the_model_is_refused_with_the_smallest_size(shrinking, shape):
    from cnnviz_widgets.explain import predict_top

    image = np.zeros(shape, np.uint8)
    message = (
        rf"The image is {shape[0]}×{shape[1]} px as model 'shrinking' sees it, but the model "
        r"needs at least 8×8 px.*ModelAdapter\(model, image_size=8\)"
    )
    with pytest.raises(ImageError, match=message):
        predict_top(shrinking, image, k=2)
    with pytest.raises(ImageError, match=message):
        activations(shrinking, image, "conv2d")


def test_the_smallest_accepted_image_works(shrinking):
    maps = activations(
        shrinking, np.zeros((8, 8, 3), np.uint8), ModelAdapter(shrinking).layer_paths[-1]
    )
    assert maps.shape == (1, 1, 16)


def test_channels_first_models_are_refused_by_name(keras):
    x = keras.Input((3, 20, 20))
    y = keras.layers.Conv2D(4, 3, data_format="channels_first", name="conv_cf")(x)
    model = keras.Model(x, y, name="cf")
    with pytest.raises(ModelError, match=r"uses data_format='channels_first' \(layer 'conv_cf'\)"):
        ModelAdapter(model)


def test_video_models_name_the_per_frame_model(keras):
    frame_in = keras.Input((16, 16, 3))
    frame = keras.Model(frame_in, keras.layers.Conv2D(4, 3)(frame_in), name="per_frame")
    clip = keras.Input((5, 16, 16, 3))
    wrapped = keras.layers.TimeDistributed(frame, name="frames")(clip)
    model = keras.Model(clip, wrapped, name="video")
    with pytest.raises(
        ModelError,
        match=r"takes a sequence of frames .*model\.get_layer\('frames'\)\.layer .*'per_frame'",
    ):
        ModelAdapter(model)


# --------------------------------------------------------------------------- heads
def _head_model(keras, units: int, activation: str | None, seed: int):
    keras.utils.set_random_seed(seed)
    x = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(x)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    y = keras.layers.Dense(units, activation=activation, name="head")(y)
    return keras.Model(x, y, name=f"head_{units}_{activation}")


@pytest.fixture(scope="module")
def small_photo():
    # Values 0-1 as floats: small activations, so sigmoid and softmax do not saturate.
    return np.random.default_rng(5).random((16, 16, 3)).astype(np.float32)


def _tape_gradcam(keras, model, image, score_of):
    """Grad-CAM of ``score_of(head output before activation)`` at layer 'conv', from scratch."""
    import tensorflow as tf

    conv, gap, head = (model.get_layer(n) for n in ("conv", "gap", "head"))
    batch = tf.constant(image[np.newaxis] * 255.0)
    with tf.GradientTape() as tape:
        features = conv(batch)
        tape.watch(features)
        z = tf.matmul(gap(features), head.kernel) + head.bias
        score = score_of(z)[0]
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0].numpy()


def _unit(raw):
    full = np.maximum(resize_image(raw.astype(np.float32), (16, 16)), 0.0)
    return full / full.max() if full.max() > 0 else full


def test_two_class_softmax_head_defaults_fit_the_model(keras, small_photo):
    from cnnviz_widgets.explain import predict_top
    from cnnviz_widgets.widgets.cam import CamExplorer

    model = _head_model(keras, 2, "softmax", 21)
    probs = np.asarray(model(small_photo[np.newaxis] * 255.0))[0]
    top = predict_top(model, small_photo)
    assert [i for i, _, _ in top] == list(np.argsort(-probs, kind="stable"))
    np.testing.assert_allclose([p for _, _, p in top], np.sort(probs)[::-1], rtol=1e-5)
    cam = CamExplorer(model, small_photo)
    assert cam.wait(60)
    assert [i for i, _, _ in cam.top] == [i for i, _, _ in top] and cam.error == ""


def test_single_sigmoid_unit_offers_negative_and_positive_evidence(keras, small_photo):
    import tensorflow as tf

    from cnnviz_widgets.explain import grad_cam, predict_top

    model = _head_model(keras, 1, "sigmoid", 22)
    kernel = np.random.default_rng(8).normal(size=(6, 1)).astype("float32")
    pooled = np.asarray(model.get_layer("gap")(model.get_layer("conv")(small_photo[None] * 255.0)))
    # A bias that puts this photo's logit at 0.4: p ≈ 0.6, both classes carry weight.
    bias = (0.4 - pooled @ kernel)[0].astype("float32")
    model.get_layer("head").set_weights([kernel, bias])
    p = float(np.asarray(model(small_photo[np.newaxis] * 255.0))[0, 0])
    assert 0.02 < p < 0.98  # not saturated: both classes carry weight
    top = dict((label, (i, prob)) for i, label, prob in predict_top(model, small_photo))
    assert set(top) == {"negative", "positive"}
    assert top["positive"][0] == 1 and top["negative"][0] == 0
    np.testing.assert_allclose([top["positive"][1], top["negative"][1]], [p, 1 - p], rtol=1e-5)
    positive = _tape_gradcam(keras, model, small_photo, lambda z: z[:, 0])
    negative = _tape_gradcam(keras, model, small_photo, lambda z: -z[:, 0])
    np.testing.assert_allclose(grad_cam(model, small_photo, 1), _unit(positive), atol=1e-4)
    np.testing.assert_allclose(grad_cam(model, small_photo, 0), _unit(negative), atol=1e-4)
    with pytest.raises(Exception, match=r"class_index 2 is out of range: the model has 2 classes"):
        grad_cam(model, small_photo, 2)
    del tf


def test_regression_head_reports_its_value_and_score_cam_reads_the_raw_score(keras, small_photo):
    import tensorflow as tf

    from cnnviz_widgets.explain import grad_cam, predict_top

    model = _head_model(keras, 1, None, 23)
    value = float(np.asarray(model(small_photo[np.newaxis] * 255.0))[0, 0])
    assert predict_top(model, small_photo) == [(0, "value", pytest.approx(value, rel=1e-5))]
    heat = grad_cam(model, small_photo, 0, method="scorecam")
    # Score-CAM by hand on the raw output: each channel's [0, 1] mask times the input, its
    # weight the value's increase over the all-masked input.
    conv = model.get_layer("conv")
    batch = small_photo[np.newaxis] * 255.0
    maps = np.asarray(conv(batch))[0]
    masks = np.asarray(tf.image.resize(np.transpose(maps, (2, 0, 1))[..., None], (16, 16)))
    low = masks.min(axis=(1, 2, 3), keepdims=True)
    span = masks.max(axis=(1, 2, 3), keepdims=True) - low
    masks = np.divide(masks - low, span, out=np.zeros_like(masks), where=span > 0)
    scores = np.asarray(model(batch * masks))[:, 0]
    baseline = float(np.asarray(model(np.zeros_like(batch)))[0, 0])
    raw = np.maximum((maps * (scores - baseline)).sum(-1), 0)
    assert raw.max() > 0
    np.testing.assert_allclose(heat, _unit(raw), atol=1e-4)


def test_report_command_works_on_a_single_sigmoid_unit(keras, small_photo, tmp_path):
    from cnnviz_widgets import report

    model = _head_model(keras, 1, "sigmoid", 24)
    out = report.write_report(tmp_path / "r.html", model=model, image=small_photo)
    page = out.read_text(encoding="utf-8")
    assert "<td>positive</td>" in page and "<td>negative</td>" in page


# --------------------------------------------------------------------------- evidence
def test_no_positive_evidence_is_a_zero_map_and_the_view_says_so(keras, small_photo):
    from cnnviz_widgets.explain import evidence, grad_cam
    from cnnviz_widgets.widgets.cam import CamExplorer

    model = _head_model(keras, 2, None, 25)
    head = model.get_layer("head")
    # ReLU features are ≥ 0; class 1 gets only negative weights: nothing speaks for it.
    head.set_weights([np.stack([np.ones(6), -np.ones(6)], axis=1).astype("float32"),
                      np.zeros(2, "float32")])  # fmt: skip
    heat = grad_cam(model, small_photo, 1)
    assert evidence(heat) == "none" and not heat.any()
    cam = CamExplorer(model, small_photo)
    cam.class_index = 1
    assert cam.wait(60)
    assert "No positive evidence for 'class 1' at layer 'conv'" in html.unescape(cam.message.value)


def test_score_cam_differences_at_float_noise_level_are_no_evidence(keras, small_photo):
    from cnnviz_widgets.explain import evidence, grad_cam

    model = _head_model(keras, 3, "softmax", 26)
    head = model.get_layer("head")
    kernel = np.random.default_rng(7).normal(size=(6, 3)).astype("float32") * 1e-12
    head.set_weights([kernel, np.zeros(3, "float32")])
    # Probabilities differ by ~1e-12, below float32 rounding of 1/3: Score-CAM's weights are
    # noise, and the map would be noise stretched to full scale.
    assert evidence(grad_cam(model, small_photo, 0, method="scorecam")) == "none"
    # Gradient CAMs differentiate the logits, whose tiny weights are exact: still a real map.
    tape = _tape_gradcam(keras, model, small_photo, lambda z: z[:, 0])
    np.testing.assert_allclose(grad_cam(model, small_photo, 0), _unit(tape), atol=1e-4)


def test_evidence_tells_located_flat_and_empty_maps_apart():
    from cnnviz_widgets.explain import evidence

    assert evidence(np.zeros((4, 4), np.float32)) == "none"
    assert evidence(np.full((4, 4), 0.7, np.float32)) == "flat"
    located = np.zeros((4, 4), np.float32)
    located[1, 2] = 1.0
    assert evidence(located) == "located"
