"""The models users bring: shared sub-models, tiny images, channels_first and video models.

Each case was a failure seen with peer tools (wrong values served silently, raw TensorFlow
errors); the right values come from plain Keras on the same call.
"""

from __future__ import annotations

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
            pooled = [
                tf.reduce_mean(f, axis=(1, 2)) for f in (features_first, features_second)
            ]
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
    maps = activations(shrinking, np.zeros((8, 8, 3), np.uint8), ModelAdapter(shrinking).layer_paths[-1])
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
