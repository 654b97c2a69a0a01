"""Class activation maps, saliency and deconvnet: checked against independent computations."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cnnviz_widgets.engine.adapter import ModelAdapter, adapter_for
from cnnviz_widgets.errors import CnnVizError, LayerError, ModelError
from cnnviz_widgets.explain import (
    CAM_METHODS,
    SALIENCY_METHODS,
    deconvnet,
    default_cam_layer,
    grad_cam,
    normalize_signed,
    predict_top,
    registry,
    saliency,
)
from cnnviz_widgets.images import resize_image
from cnnviz_widgets.samples import sample_image


def _image(shape=(16, 16, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _unit(heatmap):
    peak = heatmap.max()
    return heatmap / peak if peak > 0 else heatmap


# --------------------------------------------------------------------------- references
def _reference_grad_cam(keras, features_model, dense, pixels, class_index, size):
    """Grad-CAM the textbook way: a keras sub-model to the layer, the head by hand, a tape."""
    import tensorflow as tf

    kernel, bias = (np.asarray(w) for w in dense.weights)
    x = tf.constant(pixels.astype(np.float32)[None])
    with tf.GradientTape() as tape:
        features = features_model(x)
        tape.watch(features)
        logits = tf.reduce_mean(features, axis=(1, 2)) @ kernel + bias  # GAP + Dense, no softmax
        score = logits[0, class_index]
    grads = np.asarray(tape.gradient(score, features))[0]
    features = np.asarray(features)[0]
    heatmap = np.maximum((features * grads.mean(axis=(0, 1))).sum(-1), 0.0)
    return _unit(resize_image(heatmap, size))


@pytest.mark.parametrize("class_index", [0, 3])
def test_grad_cam_equals_a_plain_tape_grad_cam(keras, tiny_functional, class_index):
    image = _image((32, 48, 3))  # not the model's 16×16: the map must come back at 32×48
    features_model = keras.Model(
        tiny_functional.inputs[0], tiny_functional.get_layer("conv2").output
    )
    pixels = resize_image(image.astype(np.float32), (16, 16))
    want = _reference_grad_cam(
        keras, features_model, tiny_functional.get_layer("probs"), pixels, class_index, (32, 48)
    )
    got = grad_cam(tiny_functional, image, class_index, layer="conv2")
    assert got.shape == (32, 48) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got.max() == pytest.approx(1.0) and got.min() >= 0.0


def test_grad_cam_through_a_nested_base_equals_the_unnested_reference(keras, tiny_nested):
    image = _image(seed=3)
    base = tiny_nested.get_layer("base")
    features_model = keras.Model(base.inputs[0], base.get_layer("b_conv2").output)
    want = _reference_grad_cam(
        keras, features_model, tiny_nested.get_layer("logits"), image, 2, (16, 16)
    )
    # default layer: the deepest spatial layer, found inside the nested base
    assert default_cam_layer(tiny_nested) == "base/b_conv2"
    np.testing.assert_allclose(grad_cam(tiny_nested, image, 2), want, atol=1e-5)


def test_default_class_is_the_top_class(tiny_functional):
    image = _image(seed=5)
    top = int(np.argmax(tiny_functional(image.astype(np.float32)[None])[0]))
    np.testing.assert_array_equal(
        grad_cam(tiny_functional, image), grad_cam(tiny_functional, image, top)
    )


@pytest.mark.parametrize("method", CAM_METHODS)
def test_every_cam_method_gives_a_unit_map_at_image_size(tiny_flexible, method):
    got = grad_cam(tiny_flexible, _image((20, 28, 3)), 1, method=method)
    assert got.shape == (20, 28) and got.dtype == np.float32
    assert np.isfinite(got).all() and got.min() >= 0.0 and got.max() <= 1.0


# --------------------------------------------------------------------------- cam methods
def _seed_weights(model, seed):
    """Weights from our own generator: Keras' global seed (other tests' fixtures) is left alone."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(
                [rng.normal(0.0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()]
            )
    return model


@pytest.fixture(scope="module")
def full_res(keras):
    """Input 8×8×3 → feat (3 channels, same padding, ReLU, full resolution) → GAP → softmax."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="feat")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="probs")(x)
    model = _seed_weights(keras.Model(inputs, outputs, name="full_res"), 7)
    kernel, bias = model.get_layer("feat").get_weights()
    model.get_layer("feat").set_weights([kernel * 0.02, bias + 0.1])  # mostly active units
    return model


def _features(keras, model, layer, pixels):
    sub = keras.Model(model.inputs[0], model.get_layer(layer).output)
    return np.asarray(sub(pixels.astype(np.float32)[None]))[0]


def test_gradcam_plus_plus_weights_match_the_paper_formula(keras, full_res):
    # Layer before GAP + Dense: the class gradient is w_k / (h·w) at every position, so the
    # paper's alpha reduces to 1 / (2 + g_k Σ A_k) and the weight to h·w·alpha·relu(g_k).
    image = _image((8, 8, 3), seed=1)
    features = _features(keras, full_res, "feat", image)
    kernel = full_res.get_layer("probs").get_weights()[0]
    g = kernel[:, 2] / 64.0
    alpha = g**2 / (2 * g**2 + features.sum(axis=(0, 1)) * g**3)
    weights = (alpha * np.maximum(g, 0.0)) * 64.0
    want = _unit(np.maximum((features * weights).sum(-1), 0.0))
    got = grad_cam(full_res, image, 2, layer="feat", method="gradcam++")
    np.testing.assert_allclose(got, want, atol=1e-5)


def _mask(a):
    """A map scaled to [0, 1]; a flat (e.g. dead) map masks everything out."""
    span = a.max() - a.min()
    return (a - a.min()) / span if span > 0 else np.zeros_like(a)


def test_scorecam_weights_are_increases_of_the_softmax_score(keras, full_res):
    image = _image((8, 8, 3), seed=2)
    features = _features(keras, full_res, "feat", image)
    x = image.astype(np.float32)
    baseline = np.asarray(full_res(np.zeros((1, 8, 8, 3), np.float32)))[0, 1]
    weights = []
    for k in range(3):  # the map is already at input size: no upsampling
        mask = _mask(features[:, :, k])
        weights.append(np.asarray(full_res((x * mask[:, :, None])[None]))[0, 1] - baseline)
    want = _unit(np.maximum((features * np.array(weights)).sum(-1), 0.0))
    got = grad_cam(full_res, image, 1, layer="feat", method="scorecam", batch_size=2)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_scorecam_channel_cap_keeps_the_most_varied_maps(keras, full_res):
    image = _image((8, 8, 3), seed=4)
    features = _features(keras, full_res, "feat", image)
    keep = np.argsort(-features.std(axis=(0, 1)))[:2]
    x = image.astype(np.float32)
    baseline = np.asarray(full_res(np.zeros((1, 8, 8, 3), np.float32)))[0, 0]
    total = np.zeros((8, 8), np.float32)
    for k in keep:
        a = features[:, :, k]
        total += (np.asarray(full_res((x * _mask(a)[:, :, None])[None]))[0, 0] - baseline) * a
    got = grad_cam(full_res, image, 0, layer="feat", method="scorecam", max_channels=2)
    np.testing.assert_allclose(got, _unit(np.maximum(total, 0.0)), atol=1e-5)


@pytest.fixture(scope="module")
def left_half(keras):
    """Only the left half of ``feat`` reaches the head (Cropping2D): the right cannot matter."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="feat")(inputs)
    x = keras.layers.Cropping2D(((0, 0), (0, 8)), name="crop")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="left_half")
    return _seed_weights(model, 8)


def test_layercam_is_zero_where_the_layer_cannot_reach_the_score(left_half):
    image = _image(seed=6)
    layercam = grad_cam(left_half, image, 0, layer="feat", method="layercam")
    assert layercam.max() == 1.0
    assert layercam[:, 8:].max() == 0.0 and layercam[:, :8].max() == 1.0
    # Grad-CAM's channel weights are global: it spreads onto the right half as well.
    gradcam = grad_cam(left_half, image, 0, layer="feat")
    assert gradcam[:, 8:].max() > 0.0


# --------------------------------------------------------------------------- saliency
@pytest.fixture(scope="module")
def two_filters(keras):
    """x → 1×1 conv with kernels +1 and −1 (fused ReLU) → GAP → logits, class 0 = (1, −1).

    With the preprocess ``p - 128`` the model input x has both signs, and by hand
    d logit_0 / dx = (1/16)·1[x > 0] + (−1/16)·(−1)·1[x < 0] = 1/16 wherever x ≠ 0.
    """
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 1, use_bias=False, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, use_bias=False, name="logits")(x)
    model = keras.Model(inputs, outputs, name="two_filters")
    model.get_layer("conv").set_weights([np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2)])
    model.get_layer("logits").set_weights([np.array([[1.0, 0.5], [-1.0, 0.5]], np.float32)])
    return model


def _centred(batch):
    return batch - 128.0


def _signed_pixels():
    # model inputs x = p − 128: 2, 72, −28, −125 in every row (positive in the left half,
    # negative in the right half), and −128 at (2, 3)
    pixels = np.tile(np.array([130, 200, 100, 3], np.uint8)[None, :, None], (4, 1, 1))
    pixels[2, 3] = 0
    return pixels


def test_vanilla_gradient_by_hand(two_filters):
    got = saliency(two_filters, _signed_pixels(), 0, reduce=False, preprocess=_centred)
    np.testing.assert_allclose(got[..., 0], np.full((4, 4), 1 / 16), atol=1e-7)


def test_guided_backprop_rule_by_hand(two_filters):
    # Channel 0 (kernel +1) receives +1/16 > 0: passes where its input x > 0. Channel 1 (kernel
    # −1) receives −1/16 < 0: guided backprop blocks it everywhere, though its ReLU is open
    # where x < 0. So: 1/16 in the left half, 0 in the right half.
    got = saliency(
        two_filters, _signed_pixels(), 0, method="guided_backprop", reduce=False,
        preprocess=_centred,
    )  # fmt: skip
    want = np.zeros((4, 4), np.float32)
    want[:, :2] = 1 / 16
    np.testing.assert_allclose(got[..., 0], want, atol=1e-7)
    reduced = saliency(
        two_filters, _signed_pixels(), 0, method="guided_backprop", preprocess=_centred
    )
    np.testing.assert_allclose(reduced, want * 16, atol=1e-7)


def test_guided_backprop_relu6_also_needs_the_input_below_six(keras):
    inputs = keras.Input((1, 4, 1))
    x = keras.layers.Conv2D(1, 1, use_bias=False, name="conv")(inputs)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False, name="logits")(x))
    model.get_layer("conv").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    model.get_layer("logits").set_weights([np.array([[1.0, -1.0]], np.float32)])
    pixels = np.array([[[125], [130], [133], [140]]], np.uint8)  # x = −3, 2, 5, 12
    got = saliency(model, pixels, 0, method="guided_backprop", reduce=False, preprocess=_centred)
    np.testing.assert_allclose(got[0, :, 0], [0.0, 0.25, 0.25, 0.0], atol=1e-7)
    # class 1 sends back a negative gradient: guided backprop passes nothing at all
    blocked = saliency(
        model, pixels, 1, method="guided_backprop", reduce=False, preprocess=_centred
    )
    np.testing.assert_array_equal(blocked, np.zeros_like(blocked))


def test_smoothgrad_averages_noisy_gradients_reproducibly(tiny_flexible):
    image = _image((12, 14, 3), seed=9)
    first = saliency(tiny_flexible, image, 2, method="smoothgrad", samples=7, batch_size=3)
    again = saliency(tiny_flexible, image, 2, method="smoothgrad", samples=7, batch_size=3)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (12, 14) and first.max() == pytest.approx(1.0)
    # no noise: every sample is the image itself, so SmoothGrad is the vanilla gradient
    plain = saliency(tiny_flexible, image, 2, reduce=False)
    still = saliency(
        tiny_flexible, image, 2, method="smoothgrad", noise=0.0, samples=5, batch_size=2,
        reduce=False,
    )  # fmt: skip
    np.testing.assert_allclose(still, plain, rtol=1e-5, atol=1e-8)


def test_guided_gradcam_is_guided_backprop_times_the_cam(tiny_functional):
    image = _image(seed=11)
    guided = saliency(tiny_functional, image, 1, method="guided_backprop", reduce=False)
    cam = grad_cam(tiny_functional, image, 1, layer="conv2")
    got = saliency(tiny_functional, image, 1, method="guided_gradcam", reduce=False)
    np.testing.assert_allclose(got, guided * cam[..., None], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("method", SALIENCY_METHODS)
def test_every_saliency_method_at_image_size(tiny_flexible, method):
    image = _image((18, 30, 3), seed=12)
    kwargs = {"samples": 4} if method == "smoothgrad" else {}
    reduced = saliency(tiny_flexible, image, method=method, **kwargs)
    assert reduced.shape == (18, 30) and reduced.dtype == np.float32
    assert reduced.min() >= 0.0 and reduced.max() <= 1.0
    signed = saliency(tiny_flexible, image, method=method, reduce=False, **kwargs)
    assert signed.shape == (18, 30, 3) and signed.dtype == np.float32 and np.isfinite(signed).all()


# --------------------------------------------------------------------------- deconvnet
@pytest.fixture(scope="module")
def deconv_model(keras):
    """x → c1: 1×1 conv (+1, −2), ReLU → c2: 1×1 conv (1, 1), ReLU → GAP → logits.

    c2 = relu(relu(x) + relu(−2x)) = x for x > 0 and −2x for x < 0. Projecting c2 back with the
    deconvnet rule: c1 gets (s, s) from c2's transpose, relu((s, s)) = (s, s) whatever c1's
    forward sign was, then the transpose of c1 gives s·1 + s·(−2) = −s at every pixel. The
    true gradient would be +s where x > 0 (only c1's first unit is open) and −2s where x < 0.
    """
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 1, use_bias=False, activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(1, 1, use_bias=False, activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x), name="deconv")
    model.get_layer("c1").set_weights([np.array([1.0, -2.0], np.float32).reshape(1, 1, 1, 2)])
    model.get_layer("c2").set_weights([np.ones((1, 1, 2, 1), np.float32)])
    return model


def test_deconvnet_rectifies_the_backward_signal_not_the_forward_one(deconv_model):
    pixels = _signed_pixels()
    x = pixels[..., 0].astype(np.float32) - 128.0
    seed = np.where(x > 0, x, -2.0 * x)  # the c2 map, the starting signal
    got = deconvnet(deconv_model, pixels, "c2", 0, keep="map", preprocess=_centred)
    assert got.shape == (4, 4, 1) and got.dtype == np.float32
    np.testing.assert_allclose(got[..., 0], -seed, atol=1e-5)
    # keep="max": only the strongest activation (x = −128 → 256, at (2, 3)) is projected
    strongest = deconvnet(deconv_model, pixels, "c2", 0, preprocess=_centred)
    want = np.zeros((4, 4), np.float32)
    want[2, 3] = -256.0
    assert seed.max() == 256.0 and seed[2, 3] == 256.0
    np.testing.assert_allclose(strongest[..., 0], want, atol=1e-4)


def test_deconvnet_routes_max_pooling_through_its_switches(keras):
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.MaxPooling2D(2, name="pool")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))
    pixels = np.array([[1, 9, 2, 2], [3, 4, 2, 8], [7, 0, 5, 5], [1, 1, 6, 5]], np.uint8)[..., None]
    got = deconvnet(model, pixels, "pool", 0, keep="map")[..., 0]
    want = np.zeros((4, 4), np.float32)
    for (r, c), value in {(0, 1): 9, (1, 3): 8, (2, 0): 7, (3, 2): 6}.items():
        want[r, c] = value  # each pooled value goes back to where the maximum was
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_deconvnet_on_a_real_layer_shape_and_range(tiny_flexible):
    image = _image((20, 24, 3), seed=13)
    got = deconvnet(tiny_flexible, image, "conv2", 3)
    assert got.shape == (20, 24, 3) and got.dtype == np.float32 and np.isfinite(got).all()
    shown = normalize_signed(got)
    assert shown.min() >= 0.0 and shown.max() <= 1.0


def test_normalize_signed_is_symmetric_around_one_half():
    np.testing.assert_allclose(
        normalize_signed(np.array([-2.0, 0.0, 1.0]), percentile=100), [0.0, 0.5, 0.75]
    )
    assert normalize_signed(np.zeros((2, 2, 3))).tolist() == np.full((2, 2, 3), 0.5).tolist()
    clipped = normalize_signed(np.r_[np.ones(999), 1000.0])  # 99.5th percentile: 1
    assert clipped[-1] == 1.0 and clipped[0] > 0.9  # one outlier does not wash out the rest


# --------------------------------------------------------------------------- predict_top
def test_predict_top_probabilities_from_the_head(tiny_functional):
    image = _image(seed=14)
    probs = np.asarray(tiny_functional(image.astype(np.float32)[None]))[0]
    got = predict_top(tiny_functional, image, k=3)
    assert [i for i, _, _ in got] == list(np.argsort(-probs)[:3])
    assert [label for _, label, _ in got] == [f"class {i}" for i, _, _ in got]
    np.testing.assert_allclose([p for _, _, p in got], np.sort(probs)[::-1][:3], rtol=1e-5)
    named = predict_top(tiny_functional, image, k=1, labels=list("abcde"))
    assert named[0][1] == "abcde"[got[0][0]]


def test_predict_top_uses_a_sigmoid_head_as_is(keras):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid", name="tags")(x))
    image = _image((8, 8, 3))
    want = np.asarray(model(image.astype(np.float32)[None]))[0]
    got = dict((i, p) for i, _, p in predict_top(model, image, k=3))
    np.testing.assert_allclose([got[i] for i in range(3)], want, rtol=1e-5)


def test_predict_top_k_and_labels_errors(tiny_functional):
    with pytest.raises(
        CnnVizError, match=r"k=0 is out of range: the model has 5 classes, so k must be 1–5\."
    ):
        predict_top(tiny_functional, _image(), k=0)
    with pytest.raises(CnnVizError, match=r"k=6 is out of range"):
        predict_top(tiny_functional, _image(), k=6)
    with pytest.raises(
        CnnVizError,
        match=r"labels has 2 names but the model has 5 classes\. Pass one name per class",
    ):
        predict_top(tiny_functional, _image(), labels=["a", "b"])


# --------------------------------------------------------------------------- bad input
def test_class_index_out_of_range(tiny_functional):
    with pytest.raises(
        CnnVizError,
        match=r"class_index 7 is out of range: the model has 5 classes \(0–4\)\. Pass a class number in that range, or class_index=None",
    ):
        grad_cam(tiny_functional, _image(), 7)
    with pytest.raises(CnnVizError, match=r"class_index -1 is out of range"):
        saliency(tiny_functional, _image(), -1)
    with pytest.raises(
        CnnVizError,
        match=r"class_index must be an int; got 'cat' of type str\. Pass a class number in that range, or class_index=None",
    ):
        grad_cam(tiny_functional, _image(), "cat")


def test_layer_after_global_pooling_names_a_layer_that_works(tiny_functional):
    with pytest.raises(
        LayerError,
        match=r"Layer 'gap' \(GlobalAveragePooling2D\) has output shape \(6,\): no spatial map left \(it comes after global pooling or flattening\).* e\.g\. the deepest one with a spatial map: 'conv2'\.",
    ):
        grad_cam(tiny_functional, _image(), layer="gap")


def test_one_by_one_map_is_skipped_by_default_and_refused_when_asked(keras):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="gap")(x)  # (1, 1, 4)
    x = keras.layers.Flatten(name="flat")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    assert adapter_for(model).layer_paths[-1] == "gap"
    assert default_cam_layer(model) == "conv"
    with pytest.raises(
        LayerError,
        match=r"Layer 'gap' \(GlobalAveragePooling2D\) has a 1×1 spatial map .*: 'conv'\.",
    ):
        grad_cam(model, _image((8, 8, 3)), layer="gap")


def test_unknown_layer_and_method(tiny_functional):
    with pytest.raises(
        LayerError, match=r"No layer 'conv3' in model 'tiny_functional'\. Did you mean"
    ):
        grad_cam(tiny_functional, _image(), layer="conv3")
    with pytest.raises(
        CnnVizError,
        match=r"Unknown grad_cam method 'gradcam\+'\. Did you mean 'gradcam\+\+' or 'gradcam'",
    ):
        grad_cam(tiny_functional, _image(), method="gradcam+")
    with pytest.raises(CnnVizError, match=r"layer= is only used by method='guided_gradcam'"):
        saliency(tiny_functional, _image(), layer="conv2")


def test_layer_that_does_not_feed_the_class_output(keras):
    inputs = keras.Input((8, 8, 3))
    trunk = keras.layers.Conv2D(4, 3, name="trunk")(inputs)
    side = keras.layers.Conv2D(2, 1, name="side")(trunk)  # a map output of its own
    classes = keras.layers.Dense(3, name="classes")(keras.layers.GlobalAveragePooling2D()(trunk))
    model = keras.Model(inputs, [classes, side])
    with pytest.raises(
        LayerError,
        match=r"The class scores of output 'classes' do not depend on layer 'side', so it cannot explain them\. Pick a layer on the way to that output, e\.g\. 'trunk'",
    ):
        grad_cam(model, _image((8, 8, 3)), layer="side", output="classes")
    with pytest.raises(LayerError, match=r"do not depend on layer 'side'.* e\.g\. 'trunk'"):
        grad_cam(model, _image((8, 8, 3)), output="classes")  # the deepest map is 'side'
    assert grad_cam(model, _image((8, 8, 3)), layer="trunk", output=0).shape == (8, 8)


def test_output_that_is_not_a_class_vector_surfaces_the_adapter_error(keras):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(inputs))
    for call in (grad_cam, saliency, predict_top):
        with pytest.raises(
            ModelError, match=r"Output 'conv' has shape \(6, 6, 2\), not a vector of class scores"
        ):
            call(model, _image((8, 8, 3)))


def test_multi_output_model_needs_output_then_works(keras):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    box = keras.layers.Dense(4, name="box")(pooled)
    classes = keras.layers.Dense(5, activation="softmax", name="classes")(pooled)
    model = keras.Model(inputs, [box, classes])
    image = _image((8, 8, 3))
    with pytest.raises(
        ModelError,
        match=r"has 2 outputs \(0: 'box' \(4,\), 1: 'classes' \(5,\)\)\. Choose the class scores with output=",
    ):
        grad_cam(model, image)
    by_name = grad_cam(model, image, 4, output="classes")
    np.testing.assert_array_equal(by_name, grad_cam(model, image, 4, output=1))
    with pytest.raises(
        CnnVizError, match=r"class_index 4 is out of range: the model has 4 classes \(0–3\)"
    ):
        grad_cam(model, image, 4, output="box")
    assert len(predict_top(model, image, k=5, output="classes")) == 5


@pytest.fixture(scope="module")
def mixed(keras):
    """A tiny model built under the mixed_float16 policy (restored to float32 right after)."""
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
        x = keras.layers.MaxPooling2D(2, name="pool")(x)
        x = keras.layers.Conv2D(6, 3, padding="same", name="conv2")(x)
        x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        outputs = keras.layers.Dense(5, activation="softmax", name="probs")(x)
        model = _seed_weights(keras.Model(inputs, outputs, name="mixed"), 15)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("conv1").compute_dtype == "float16"
    assert keras.mixed_precision.global_policy().name == "float32"
    return model


def _view_ids(cases):
    """'grad_cam-scorecam', 'saliency-guided_backprop-rgb', 'deconvnet' ... for test names."""
    ids = []
    for view, *_, options in cases:
        parts = [view.__name__, options.get("method", "")]
        parts.append("rgb" if options.get("reduce") is False else "")
        ids.append("-".join(p for p in parts if p))
    return ids


_EVERY_VIEW = [
    *[(grad_cam, {"method": m}) for m in CAM_METHODS],
    *[(saliency, {"method": m, "samples": 3}) for m in SALIENCY_METHODS],
    (saliency, {"method": "guided_backprop", "reduce": False}),
]


@pytest.mark.parametrize(("view", "options"), _EVERY_VIEW, ids=_view_ids(_EVERY_VIEW))
def test_mixed_precision_model_works_in_float32(mixed, view, options):
    result = view(mixed, _image(seed=15), **options)  # the top class
    assert result.dtype == np.float32 and np.isfinite(result).all()
    assert 0.0 < result.max() and (options.get("reduce", True) is False or result.max() <= 1.0)


def test_mixed_precision_deconvnet_and_predict_top(mixed):
    projection = deconvnet(mixed, _image(seed=15), "relu6", 1, keep="map")
    assert projection.dtype == np.float32 and np.isfinite(projection).all()
    assert sum(p for _, _, p in predict_top(mixed, _image(seed=15), k=5)) == pytest.approx(
        1.0, abs=1e-3
    )


def test_adapter_with_its_own_preprocess_refuses_a_second_one(tiny_functional):
    adapter = ModelAdapter(tiny_functional, preprocess=_centred)
    assert grad_cam(adapter, _image()).shape == (16, 16)
    with pytest.raises(CnnVizError, match="preprocess= was given together with a ModelAdapter"):
        grad_cam(adapter, _image(), preprocess=lambda b: b)


# --------------------------------------------------------------------------- tracing, mutation
def test_new_images_and_classes_never_retrace(tiny_flexible):
    adapter = ModelAdapter(tiny_flexible)  # its own: every trace counted below is one of ours

    def first_then_again(view, first, *again):
        """At most one new compiled function (one trace) per method — the gradient methods
        share one per layer, the input-gradient ones one per output; later calls add none."""
        traces = adapter.trace_count
        view(*first)
        made = adapter.trace_count
        assert made <= traces + 1
        keys = adapter.compiled_keys
        for args in again:
            view(*args)
        assert (adapter.trace_count, adapter.compiled_keys) == (made, keys)

    for method in CAM_METHODS:
        first_then_again(
            lambda image, class_index, method=method: grad_cam(
                adapter, image, class_index, method=method
            ),
            (_image((16, 16, 3), seed=20), 0),
            (_image((16, 16, 3), seed=21), 3),
            (_image((24, 18, 3), seed=22), None),  # new size, top class
        )
    for method in SALIENCY_METHODS:
        first_then_again(
            lambda image, class_index, method=method: saliency(
                adapter, image, class_index, method=method, samples=3
            ),
            (_image((14, 20, 3), seed=23), 1),
            (_image((14, 20, 3), seed=24), None),
            (_image((22, 12, 3), seed=25), 4),
        )
    first_then_again(
        lambda image, channel: deconvnet(adapter, image, "conv2", channel),
        (_image((14, 20, 3), seed=0), 0),
        (_image((14, 20, 3), seed=5), 5),
    )


_VIEWS_ON_NESTED = [
    *[(grad_cam, (1,), {"method": m}) for m in CAM_METHODS],
    *[(saliency, (1,), {"method": m, "samples": 3}) for m in SALIENCY_METHODS],
    (deconvnet, ("base/b_conv2", 2), {}),
    (predict_top, (2,), {}),
]


@pytest.mark.parametrize(
    ("view", "args", "options"), _VIEWS_ON_NESTED, ids=_view_ids(_VIEWS_ON_NESTED)
)
def test_nothing_is_mutated(tiny_nested, view, args, options):
    image = _image(seed=30)
    before = image.copy()
    weights = [w.copy() for w in tiny_nested.get_weights()]
    nodes = [len(layer._inbound_nodes) for layer in tiny_nested.get_layer("base").layers]
    view(tiny_nested, image, *args, **options)
    np.testing.assert_array_equal(image, before)
    for want, got in zip(weights, tiny_nested.get_weights(), strict=True):
        np.testing.assert_array_equal(want, got)
    assert [len(layer._inbound_nodes) for layer in tiny_nested.get_layer("base").layers] == nodes


def test_fused_activations_are_left_in_place(full_res):
    image = _image((8, 8, 3), seed=31)
    probs = np.asarray(full_res(image.astype(np.float32)[None]))
    for method in ("guided_backprop", "vanilla"):
        saliency(full_res, image, 0, method=method)
    deconvnet(full_res, image, "feat", 0)
    assert full_res.get_layer("feat").activation.__name__ == "relu"
    assert full_res.get_layer("probs").activation.__name__ == "softmax"
    np.testing.assert_array_equal(np.asarray(full_res(image.astype(np.float32)[None])), probs)


def test_importing_the_module_does_not_import_tensorflow():
    import subprocess
    import sys

    modules = ", ".join(
        f"cnnviz_widgets.explain.{name}"
        for name in ("cam", "deconvnet", "predictions", "registry", "relu_rules", "saliency")
    )
    code = f"import sys, {modules}; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------- real model
@pytest.fixture(scope="module")
def default_model():
    from cnnviz_widgets.engine.models import load_default_model

    return load_default_model()


def _mass_fractions(heatmap, split):
    total = float(heatmap.sum())
    return float(heatmap[:, :split].sum()) / total, float(heatmap[:, split:].sum()) / total


@pytest.mark.default_model
def test_default_model_localises_cat_and_coffee(default_model):
    cat, coffee = sample_image("chelsea"), sample_image("coffee")
    height = cat.shape[0]
    coffee = resize_image(coffee, (height, round(coffee.shape[1] * height / coffee.shape[0])))
    pair = np.concatenate([cat.astype(np.float32), coffee], axis=1)
    split = cat.shape[1]
    cat_map = grad_cam(default_model, pair, 285)  # Egyptian cat
    coffee_map = grad_cam(default_model, pair, 967)  # espresso
    assert cat_map.shape == coffee_map.shape == pair.shape[:2]
    cat_left, _ = _mass_fractions(cat_map, split)
    _, coffee_right = _mass_fractions(coffee_map, split)
    print(
        f"\nGrad-CAM mass: cat on the cat half {cat_left:.3f}, espresso on the coffee half {coffee_right:.3f}"
    )
    assert cat_left > 0.8
    assert coffee_right > 0.8


@pytest.mark.default_model
def test_default_model_predicts_chelsea_and_checks_class_range(default_model):
    top = predict_top(default_model, sample_image("chelsea"), k=3)
    assert top[0][:2] == (285, "Egyptian cat")
    assert 0.0 < top[0][2] <= 1.0 and top[0][2] >= top[1][2] >= top[2][2]
    assert default_cam_layer(default_model) == "backbone/top_activation"
    with pytest.raises(
        CnnVizError, match=r"class_index 1200 is out of range: the model has 1000 classes \(0–999\)"
    ):
        grad_cam(default_model, sample_image("chelsea"), 1200)


def test_deconvnet_max_breaks_relu6_ties_toward_the_strongest_region(keras):
    """Saturated ReLU6 maps tie at 6.0 in many places; the kept one is a blob's centre."""
    inputs = keras.Input((9, 9, 1))
    x = keras.layers.Conv2D(1, 1, use_bias=False, name="identity")(inputs)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    model.get_layer("identity").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    image = np.zeros((9, 9), np.float32)
    image[0, 0] = 200.0  # saturates alone, first in reading order
    image[4:7, 4:7] = 200.0  # a saturated 3×3 blob centred at (5, 5)
    projection = deconvnet(model, image, "relu6", 0, keep="max")
    assert projection.shape == (9, 9, 1)
    nonzero = np.argwhere(projection[:, :, 0] != 0)
    assert nonzero.tolist() == [[5, 5]]


# --------------------------------------------------------------------------- registry
def test_methods_are_registered_objects_in_order():
    cams, saliencies = registry.methods("cam"), registry.methods("saliency")
    assert CAM_METHODS == tuple(m.name for m in cams) == (
        "gradcam", "gradcam++", "scorecam", "layercam", "hirescam", "gradcam_elementwise",
        "xgradcam", "ablationcam", "eigencam", "eigengradcam",
    )  # fmt: skip
    assert SALIENCY_METHODS == tuple(m.name for m in saliencies) == (
        "vanilla", "smoothgrad", "guided_backprop", "guided_gradcam", "integrated_gradients",
        "occlusion",
    )  # fmt: skip
    for method in (*cams, *saliencies):
        assert registry.get(method.kind, method.name) is method
        # Two-author papers are cited "Draelos and Carin 2020", others "Jiang et al. 2021".
        assert re.fullmatch(
            r"[A-Z][a-z]+ (et al\.|and [A-Z][a-z]+) 20\d\d, \S.+", method.paper
        ), method.paper
        assert method.label and callable(method.compute)
    assert all(m.kind == "cam" and m.needs_layer for m in cams)
    assert [m.name for m in saliencies if m.needs_layer] == ["guided_gradcam"]


def test_registry_refuses_unknown_names_and_second_registrations():
    with pytest.raises(
        CnnVizError,
        match=r"^Unknown saliency method 'smoothgard'\. Did you mean 'smoothgrad'\? Choose one of 'vanilla', 'smoothgrad', 'guided_backprop', 'guided_gradcam', 'integrated_gradients', 'occlusion'\.$",
    ):
        registry.get("saliency", "smoothgard")
    with pytest.raises(
        CnnVizError, match=r"^Unknown method kind 'occlusion'\. Choose one of 'cam', 'saliency'\.$"
    ):
        registry.methods("occlusion")
    gradcam = registry.get("cam", "gradcam")
    with pytest.raises(
        CnnVizError, match=r"A cam method named 'gradcam' is already registered \(Grad-CAM\)"
    ):
        registry.register(registry.Method("gradcam", "Mine", "cam", True, "", lambda t: None))
    assert registry.get("cam", "gradcam") is gradcam and registry.methods("cam")[0] is gradcam


# --------------------------------------------------------------------------- shared validators
def test_options_are_checked_with_the_shared_validators(tiny_functional):
    image = _image()
    cases = [
        (saliency, {"method": "smoothgrad", "batch_size": 0}, r"batch_size must be ≥ 1; got 0\."),
        (
            saliency,
            {"method": "smoothgrad", "samples": "many"},
            r"samples must be an int; got 'many' of type str\.",
        ),
        (
            saliency,
            {"method": "smoothgrad", "noise": -0.5},
            r"noise must be a finite number ≥ 0; got -0\.5\.",
        ),
        (
            saliency,
            {"method": "smoothgrad", "seed": 2**31},
            r"seed 2147483648 is out of range: SmoothGrad's noise generator has 2147483648 seeds \(0–2147483647\)\.",
        ),
        (grad_cam, {"method": "scorecam", "max_channels": 0}, r"max_channels must be ≥ 1; got 0\."),
        (
            grad_cam,
            {"method": "scorecam", "batch_size": 2.0},
            r"batch_size must be an int; got 2\.0",
        ),
    ]
    for view, options, message in cases:
        with pytest.raises(CnnVizError, match=message):
            view(tiny_functional, image, **options)
    with pytest.raises(
        CnnVizError, match=r"channel 6 is out of range: layer 'conv2' has 6 channels \(0–5\)\."
    ):
        deconvnet(tiny_functional, image, "conv2", 6)
    with pytest.raises(CnnVizError, match=r"channel must be an int; got True of type bool\."):
        deconvnet(tiny_functional, image, "conv2", True)
    with pytest.raises(
        CnnVizError, match=r"Unknown deconvnet keep 'all'\. Choose one of 'max', 'map'\."
    ):
        deconvnet(tiny_functional, image, "conv2", 0, keep="all")
    with pytest.raises(CnnVizError, match=r"percentile must be in \(0, 100\]; got 0\."):
        normalize_signed(np.ones(3), percentile=0)


# --------------------------------------------------------------------------- prepared images
_EVERY_PUBLIC_VIEW = [
    *[(grad_cam, (1,), {"method": m}) for m in CAM_METHODS],
    *[(saliency, (1,), {"method": m, "samples": 2}) for m in SALIENCY_METHODS],
    (deconvnet, ("conv2", 2), {}),
    (predict_top, (3,), {}),
]


@pytest.mark.parametrize(
    ("view", "args", "options"), _EVERY_PUBLIC_VIEW, ids=_view_ids(_EVERY_PUBLIC_VIEW)
)
def test_every_view_prepares_the_image_once_and_accepts_it_prepared(
    tiny_functional, monkeypatch, view, args, options
):
    adapter = ModelAdapter(tiny_functional)
    image = _image((20, 12, 3), seed=40)
    prepared = adapter.prepare(image)
    want = view(adapter, image, *args, **options)
    seen = []
    prepare = adapter.prepare
    monkeypatch.setattr(adapter, "prepare", lambda image: seen.append(image) or prepare(image))
    got = view(adapter, prepared, *args, **options)
    assert seen == [prepared]  # once, and handed down, not prepared again (guided Grad-CAM)
    if isinstance(want, np.ndarray):
        assert got.shape[:2] == (20, 12)
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want
