"""The methods of issue 13, each against an oracle written from its paper's formula.

The oracles use plain Keras layers called by hand and a GradientTape (or numpy), never the
package's own code paths; the model is tiny and its weights come from a seeded generator.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cnnviz_widgets.cache import ActivationCache
from cnnviz_widgets.errors import Cancelled, CnnVizError
from cnnviz_widgets.explain import grad_cam, saliency
from cnnviz_widgets.images import resize_image


def _scaled(batch):
    """The tiny model's preprocessing: 0–255 pixels to [−0.5, 0.5]."""
    return batch / 255.0 - 0.5


@pytest.fixture(scope="module")
def tiny(keras):
    """8×8×3 → feat (4 ch, 3×3, ReLU, full resolution) → mix (5 ch, 1×1, ReLU) → GAP → logits
    (4) → softmax. Weights from np.random.default_rng(41); feat's bias keeps most units on."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="feat")(inputs)
    x = keras.layers.Conv2D(5, 1, activation="relu", name="mix")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Softmax(name="probs")(x), name="tiny_methods")
    rng = np.random.default_rng(41)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0.0, 0.6, w.shape).astype(np.float32)
                               for w in layer.get_weights()])  # fmt: skip
    kernel, bias = model.get_layer("feat").get_weights()
    model.get_layer("feat").set_weights([kernel, np.abs(bias) + 0.2])
    return model


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(42).integers(0, 256, (8, 8, 3), dtype=np.uint8)


def _x(image):
    return _scaled(image.astype(np.float32)[None])


def _tail(model, features):
    """The logits from feat's output, by hand (the softmax left out)."""
    names = ("mix", "gap", "logits")
    for name in names:
        features = model.get_layer(name)(features)
    return features


def _pair(model, image, class_index):
    """(A, g) at 'feat' for the class logit: a plain tape on the layers called by hand."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        features = model.get_layer("feat")(tf.constant(_x(image)))
        tape.watch(features)
        score = _tail(model, features)[0, class_index]
    grads = tape.gradient(score, features)
    return np.asarray(features)[0].astype(np.float64), np.asarray(grads)[0].astype(np.float64)


def _unit(raw):
    raw = np.maximum(raw, 0.0)
    return raw / raw.max() if raw.max() > 0 else raw


def _pca(maps):
    """First principal component of (h, w, K) maps through the covariance's top eigenvector,
    signed to correlate with the channel sum (a different route from the package's SVD)."""
    h, w, k = maps.shape
    rows = maps.reshape(h * w, k)
    centred = rows - rows.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    projection = centred @ vectors[:, -1]
    if projection @ rows.sum(axis=1) < 0:
        projection = -projection
    return projection.reshape(h, w)


# --------------------------------------------------------------------------- gradient CAMs
def _cam_oracles(a, g):
    total = a.sum(axis=(0, 1))
    return {
        # Draelos & Carin 2020, eq. 5: the element-wise product, summed over channels.
        "hirescam": (g * a).sum(-1),
        # pytorch-grad-cam's GradCAMElementWise: each channel's product rectified first.
        "gradcam_elementwise": np.maximum(g * a, 0).sum(-1),
        # Fu et al. 2020, eq. 9: w_k = Σ_ij (A_ij / Σ A) g_ij.
        "xgradcam": (a * ((a * g).sum(axis=(0, 1)) / total)).sum(-1),
        # Muhammad & Yeasin 2020: the maps' first principal component.
        "eigencam": _pca(a),
        # EigenCAM of gradient × activation.
        "eigengradcam": _pca(g * a),
    }


@pytest.mark.parametrize(
    "method", ["hirescam", "gradcam_elementwise", "xgradcam", "eigencam", "eigengradcam"]
)
@pytest.mark.parametrize("class_index", [0, 2])
def test_gradient_cams_match_their_paper_formulas(tiny, image, method, class_index):
    a, g = _pair(tiny, image, class_index)
    want = _unit(_cam_oracles(a, g)[method])
    assert want.max() == 1.0  # the oracle map is not empty: the comparison means something
    got = grad_cam(tiny, image, class_index, layer="feat", method=method, preprocess=_scaled)
    assert got.shape == (8, 8) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_ablationcam_weights_are_relative_logit_drops(tiny, image):
    import tensorflow as tf

    features = np.asarray(tiny.get_layer("feat")(tf.constant(_x(image))))
    score = float(_tail(tiny, features)[0, 1])
    weights = []
    for k in range(4):  # Desai & Ramaswamy 2020, eq. 3: (y_c − y_c^k) / y_c
        ablated = features.copy()
        ablated[..., k] = 0.0
        weights.append((score - float(_tail(tiny, ablated)[0, 1])) / score)
    want = _unit((features[0] * np.array(weights)).sum(-1))
    got = grad_cam(tiny, image, 1, layer="feat", method="ablationcam", max_channels=None,
                   batch_size=3, preprocess=_scaled)  # fmt: skip
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_ablationcam_channel_cap_keeps_the_most_active_channels(tiny, image):
    import tensorflow as tf

    features = np.asarray(tiny.get_layer("feat")(tf.constant(_x(image))))
    kept = np.argsort(-features[0].sum(axis=(0, 1)), kind="stable")[:2]
    score = float(_tail(tiny, features)[0, 3])
    total = np.zeros((8, 8))
    for k in kept:
        ablated = features.copy()
        ablated[..., k] = 0.0
        total += (score - float(_tail(tiny, ablated)[0, 3])) / score * features[0, :, :, k]
    got = grad_cam(tiny, image, 3, layer="feat", method="ablationcam", max_channels=2,
                   preprocess=_scaled)  # fmt: skip
    np.testing.assert_allclose(got, _unit(total), atol=2e-5)


@pytest.mark.parametrize("method", ["gradcam", "layercam", "hirescam"])
def test_eigen_smooth_is_the_principal_component_of_the_weighted_maps(tiny, image, method):
    a, g = _pair(tiny, image, 0)
    weighted = {
        "gradcam": a * g.mean(axis=(0, 1)),
        "layercam": np.maximum(g, 0) * a,
        "hirescam": g * a,
    }[method]
    got = grad_cam(tiny, image, 0, layer="feat", method=method, eigen_smooth=True,
                   preprocess=_scaled)  # fmt: skip
    np.testing.assert_allclose(got, _unit(_pca(weighted)), atol=2e-5)


def _zoomed(array, scale):
    """Zoom about the centre at the same size: crop an enlargement, or pad a reduction."""
    height, width = array.shape[:2]
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    out = resize_image(array, size)
    seen = np.ones(size, bool)
    for axis, full in ((0, height), (1, width)):
        have = out.shape[axis]
        lo = abs(have - full) // 2
        if have >= full:
            out, seen = (np.take(v, range(lo, lo + full), axis=axis) for v in (out, seen))
        else:
            pad = [(0, 0)] * out.ndim
            pad[axis] = (lo, full - have - lo)
            out = np.pad(out, pad, mode="edge" if out.ndim == 3 else "constant")
            seen = np.pad(seen, pad[:2])
    return out, seen


def test_aug_smooth_is_the_mean_of_the_undone_views(tiny, image):
    # The oracle does the views by hand: flip and zoom the model input, Grad-CAM by tape on
    # each, scale each to max 1, undo the flip and the zoom, average where the view saw.
    import tensorflow as tf

    x = _x(image)[0]
    total, count = np.zeros((8, 8)), np.zeros((8, 8))
    for scale in (1.0, 0.9, 1.1):
        for flip in (False, True):
            view = x if scale == 1.0 else _zoomed(x, scale)[0]
            view = view[:, ::-1] if flip else view
            with tf.GradientTape() as tape:
                features = tiny.get_layer("feat")(tf.constant(view[None].astype(np.float32)))
                tape.watch(features)
                score = _tail(tiny, features)[0, 2]
            a, g = np.asarray(features)[0], np.asarray(tape.gradient(score, features))[0]
            cam = _unit((a * g.mean(axis=(0, 1))).sum(-1))
            cam = cam[:, ::-1] if flip else cam
            cam, seen = (cam, np.ones((8, 8), bool)) if scale == 1.0 else _zoomed(cam, 1 / scale)
            total += np.where(seen, cam, 0.0)
            count += seen
    want = _unit(total / np.maximum(count, 1))
    got = grad_cam(tiny, image, 2, layer="feat", aug_smooth=True, preprocess=_scaled)
    np.testing.assert_allclose(got, want, atol=1e-4)


# --------------------------------------------------------------------------- saliency methods
def _input_gradient(model, points, class_index):
    import tensorflow as tf

    points = tf.constant(points.astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(points)
        score = _tail(model, model.get_layer("feat")(points))[:, class_index]
    return np.asarray(tape.gradient(score, points), np.float64)


def test_integrated_gradients_is_the_papers_riemann_sum(tiny, image):
    x = _x(image)
    steps = 6
    # Sundararajan et al. 2017, eq. 3: (x − x') × (1/m) Σ_k ∇F(x' + k/m (x − x')), x' = 0.
    alphas = np.arange(1, steps + 1) / steps
    grads = _input_gradient(tiny, alphas[:, None, None, None] * x, 1)
    want = x[0] * grads.mean(axis=0)
    got = saliency(tiny, image, 1, method="integrated_gradients", steps=steps, batch_size=4,
                   reduce=False, preprocess=_scaled)  # fmt: skip
    assert got.shape == (8, 8, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_integrated_gradients_with_a_baseline_is_complete(tiny, image):
    gray = np.full((8, 8, 3), 90, np.uint8)
    got = saliency(tiny, image, 0, method="integrated_gradients", steps=400, batch_size=100,
                   baseline=gray, reduce=False, preprocess=_scaled)  # fmt: skip
    logits = _tail(tiny, tiny.get_layer("feat")(np.concatenate([_x(image), _x(gray)])))
    change = float(logits[0, 0] - logits[1, 0])
    assert abs(change) > 0.1
    # Completeness (the paper's axiom): the attributions add up to F(x) − F(x').
    assert float(got.sum()) == pytest.approx(change, rel=0.02)


def test_integrated_gradients_bad_input(tiny, image):
    with pytest.raises(
        CnnVizError,
        match=r"^steps must be ≥ 1; got 0\. Integrated gradients averages the gradient over",
    ):
        saliency(tiny, image, method="integrated_gradients", steps=0, preprocess=_scaled)
    with pytest.raises(
        CnnVizError,
        match=r"baseline must be an image of the same size as the image \(8×8 px\); got 4×6 "
        r"px\. .*baseline=None for an all-zero model input",
    ):
        saliency(tiny, image, method="integrated_gradients", baseline=np.zeros((4, 6, 3)),
                 preprocess=_scaled)  # fmt: skip


def test_occlusion_is_the_mean_probability_drop_under_each_window(tiny, image):
    x = _x(image)
    probs = lambda batch: np.asarray(tiny(batch), np.float64)[:, 2]  # noqa: E731
    clean = probs(x)[0]
    drops, covered = np.zeros((8, 8)), np.zeros((8, 8))
    for top in (0, 2, 4, 5):  # every 2 px, and flush with the far edge
        for left in (0, 2, 4, 5):
            occluded = x.copy()
            occluded[0, top : top + 3, left : left + 3] = 0.0  # the zero baseline
            drops[top : top + 3, left : left + 3] += clean - probs(occluded)[0]
            covered[top : top + 3, left : left + 3] += 1
    want = drops / covered
    got = saliency(tiny, image, 2, method="occlusion", window=3, stride=2, batch_size=5,
                   reduce=False, preprocess=_scaled)  # fmt: skip
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(got, np.repeat(want[..., None], 3, axis=-1), atol=1e-6)
    with pytest.raises(
        CnnVizError, match=r"window=9 is larger than the image as the model sees it \(8×8 px\)"
    ):
        saliency(tiny, image, method="occlusion", window=9, preprocess=_scaled)
    with pytest.raises(CnnVizError, match=r"stride must be ≥ 1; got 0\."):
        saliency(tiny, image, method="occlusion", stride=0, preprocess=_scaled)


# --------------------------------------------------------------------------- stopping
_BATCHED = [
    (grad_cam, {"method": "scorecam", "layer": "mix", "batch_size": 1}),
    (grad_cam, {"method": "ablationcam", "layer": "mix", "batch_size": 1}),
    (saliency, {"method": "smoothgrad", "samples": 6, "batch_size": 1}),
    (saliency, {"method": "integrated_gradients", "steps": 6, "batch_size": 1}),
    (saliency, {"method": "occlusion", "window": 2, "stride": 2, "batch_size": 1}),
]


@pytest.mark.parametrize(
    ("view", "options"), _BATCHED, ids=[o["method"] for _, o in _BATCHED]
)  # fmt: skip
def test_batched_work_stops_after_the_first_batch_and_keeps_nothing(tiny, view, options):
    image = np.random.default_rng(43).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    cache = ActivationCache()  # as an explorer passes its own
    grad_cam(tiny, image, 1, layer="mix", preprocess=_scaled, cache=cache)  # the pair, kept
    entries = len(cache)
    first_batch_done, stop = threading.Event(), threading.Event()
    checks = []

    def cancel():
        checks.append(1)
        if len(checks) == 2:  # checked before batch 2: batch 1 is done
            first_batch_done.set()
            stop.wait(10)
        return stop.is_set()

    outcome = []

    def run():
        try:
            view(tiny, image, 1, cancel=cancel, progress=False, preprocess=_scaled, cache=cache,
                 **options)  # fmt: skip
            outcome.append("finished")
        except Cancelled as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert first_batch_done.wait(30)
    asked = time.monotonic()
    stop.set()
    worker.join(10)
    assert time.monotonic() - asked < 0.5  # a generous bound: one check, no batch
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled), outcome
    assert str(outcome[0]).startswith("Stopped ") and len(checks) == 2
    assert len(cache) == entries  # nothing half-done was kept
    # and the same call, not stopped, keeps its result
    view(tiny, image, 1, progress=False, preprocess=_scaled, cache=cache, **options)
    assert len(cache) == entries + 1


def test_cancel_accepts_an_event(tiny):
    image = np.random.default_rng(44).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled, match=r"^Stopped Score-CAM on request\.$"):
        grad_cam(tiny, image, 0, layer="feat", method="scorecam", cancel=stop, preprocess=_scaled)
