"""``target=``: explaining a score of the caller's choosing, on outputs that are not class vectors.

Each right value is computed from scratch with a bare ``GradientTape`` on the model's own layers
(issue 10: a regression value, a region of a segmentation map, one output of a multi-output
model, as pytorch-grad-cam's model targets allow).
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_widgets.errors import CnnVizError
from cnnviz_widgets.explain import grad_cam, saliency
from cnnviz_widgets.images import resize_image


@pytest.fixture(scope="module")
def image():
    # Values 0-1 as floats (scaled ×255 for the model): small activations, nothing saturates.
    return np.random.default_rng(8).random((16, 16, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def segmenter(keras):
    """conv (6 channels, ReLU) → seg: a 1×1 conv to 3 classes per pixel, with a softmax."""
    keras.utils.set_random_seed(31)
    x = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(x)
    y = keras.layers.Conv2D(3, 1, activation="softmax", name="seg")(y)
    return keras.Model(x, y, name="segmenter")


@pytest.fixture(scope="module")
def two_heads(keras):
    """conv → gap → ("cls": 4 classes, softmax) and ("reg": one linear value)."""
    keras.utils.set_random_seed(37)  # its value map changes sign: evidence either way
    x = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    cls = keras.layers.Dense(4, activation="softmax", name="cls")(pooled)
    reg = keras.layers.Dense(1, name="reg")(pooled)
    return keras.Model(x, [cls, reg], name="two_heads")


def _gradcam_from(features, grads):
    weights = grads.mean(axis=(0, 1))
    raw = np.maximum((features * weights).sum(-1), 0.0).astype(np.float32)
    full = np.maximum(resize_image(raw, (16, 16)), 0.0)
    assert full.max() > 0  # the reference shows evidence, so the comparison means something
    return full / full.max()


def _region_mask():
    mask = np.zeros((16, 16), np.float32)
    mask[:8, :8] = 1.0  # the top-left quadrant
    return mask


def test_segmentation_region_target_is_grad_cam_of_that_regions_logits(segmenter, image):
    import tensorflow as tf

    mask = tf.constant(_region_mask())

    def region(scores):
        return tf.reduce_sum(scores[..., 2] * mask, axis=(1, 2))

    conv, seg = segmenter.get_layer("conv"), segmenter.get_layer("seg")
    batch = tf.constant(image[np.newaxis] * 255.0)
    with tf.GradientTape() as tape:
        features = conv(batch)
        tape.watch(features)
        logits = tf.nn.conv2d(features, seg.kernel, 1, "VALID") + seg.bias  # seg before softmax
        score = region(logits)
    grads = tape.gradient(score, features)
    want = _gradcam_from(features.numpy()[0], grads.numpy()[0])
    got = grad_cam(segmenter, image, layer="conv", target=region)
    np.testing.assert_allclose(got, want, atol=1e-4)
    # Without a target there is no class vector to explain, and the error says so.
    with pytest.raises(CnnVizError, match=r"not a vector of class scores"):
        grad_cam(segmenter, image, layer="conv")


def test_target_on_one_output_of_a_multi_output_model(two_heads, image):
    import tensorflow as tf

    conv, gap, reg = (two_heads.get_layer(n) for n in ("conv", "gap", "reg"))
    batch = tf.constant(image[np.newaxis] * 255.0)
    with tf.GradientTape() as tape:
        features = conv(batch)
        tape.watch(features)
        value = reg(gap(features))[:, 0]
    want = _gradcam_from(features.numpy()[0], tape.gradient(value, features).numpy()[0])

    def read(scores):
        return scores[:, 0]

    by_name = grad_cam(two_heads, image, output="reg", target=read)
    np.testing.assert_allclose(by_name, want, atol=1e-4)
    np.testing.assert_array_equal(grad_cam(two_heads, image, output=1, target=read), by_name)
    # A different target on the same output is a different explanation (nothing cached wrongly).
    flipped = grad_cam(two_heads, image, output="reg", target=lambda s: -s[:, 0])
    assert np.abs(flipped - by_name).max() > 0.1


def test_saliency_target_is_the_input_gradient_of_that_score(two_heads, image):
    import tensorflow as tf

    batch = tf.constant(image[np.newaxis] * 255.0)
    with tf.GradientTape() as tape:
        tape.watch(batch)
        value = two_heads(batch)[1][:, 0]
    want = tape.gradient(value, batch).numpy()[0]
    assert np.abs(want).max() > 0

    def read(scores):
        return scores[:, 0]

    got = saliency(two_heads, image, output="reg", target=read, reduce=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())


def test_one_number_for_the_whole_batch_gives_each_image_its_own_gradient(two_heads, image):
    import tensorflow as tf

    # SmoothGrad runs 4 noisy copies per batch: a target that sums over the batch must give
    # the same per-image gradients as one that returns a value per image.
    options = dict(output="reg", method="smoothgrad", samples=8, batch_size=4, seed=3,
                   reduce=False)  # fmt: skip
    per_image = saliency(two_heads, image, target=lambda s: s[:, 0], **options)
    summed = saliency(two_heads, image, target=lambda s: tf.reduce_sum(s[:, 0]), **options)
    assert np.abs(per_image).max() > 0
    np.testing.assert_allclose(summed, per_image, rtol=1e-4, atol=1e-6 * np.abs(per_image).max())


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_forward_only_methods_read_the_target_value(keras, method, image):
    # A single linear unit: the class path reads its raw value too, so both must agree; and a
    # target that doubles the value leaves the map (scaled to a maximum of 1) unchanged.
    keras.utils.set_random_seed(37)
    x = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(x)
    y = keras.layers.Dense(1, name="value")(keras.layers.GlobalAveragePooling2D()(y))
    model = keras.Model(x, y)
    by_class = grad_cam(model, image, 0, method=method, layer="conv")
    by_target = grad_cam(model, image, method=method, layer="conv", target=lambda s: s[:, 0])
    doubled = grad_cam(model, image, method=method, layer="conv", target=lambda s: 2 * s[:, 0])
    assert by_class.max() == pytest.approx(1.0)  # evidence: the comparison means something
    np.testing.assert_allclose(by_target, by_class, atol=1e-5)
    np.testing.assert_allclose(doubled, by_class, atol=1e-5)


def test_occlusion_reads_the_target_value(two_heads, image):
    import tensorflow as tf

    got = saliency(two_heads, image, output="reg", target=lambda s: s[:, 0], method="occlusion",
                   window=8, stride=8, reduce=False)  # fmt: skip
    # Four windows, no overlap: each quadrant's value is the drop of the output when it is
    # blacked out (the default baseline is an all-zero model input).
    batch = image[np.newaxis] * 255.0
    clean = float(two_heads(tf.constant(batch))[1][0, 0])
    for top in (0, 8):
        for left in (0, 8):
            hidden = batch.copy()
            hidden[:, top : top + 8, left : left + 8] = 0.0
            drop = clean - float(two_heads(tf.constant(hidden))[1][0, 0])
            np.testing.assert_allclose(got[top : top + 8, left : left + 8], drop, rtol=1e-4,
                                       atol=1e-5)  # fmt: skip


def test_target_errors_name_the_problem_and_the_fix(two_heads, segmenter, image):
    import tensorflow as tf

    with pytest.raises(CnnVizError, match=r"either class_index= .* or target=.*class_index=1"):
        grad_cam(two_heads, image, 1, output="reg", target=lambda s: s[:, 0])
    with pytest.raises(CnnVizError, match=r"target must be a function .* got int 3"):
        grad_cam(two_heads, image, output="reg", target=3)
    with pytest.raises(CnnVizError) as raised:
        grad_cam(segmenter, image, layer="conv", target=lambda s: s["class"])
    message = str(raised.value)
    assert "output 'seg'" in message and "shape (1, 16, 16, 3)" in message
    assert "Return a float tensor, one value per image" in message
    with pytest.raises(CnnVizError, match=r"returned a int32 tensor, not a float one"):
        saliency(two_heads, image, output="reg", target=lambda s: tf.cast(s[:, 0], tf.int32))
    # The model still answers after the errors.
    assert grad_cam(two_heads, image, output="reg", target=lambda s: s[:, 0]).max() == 1.0
