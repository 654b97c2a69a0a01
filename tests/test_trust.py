"""Trust checks: deletion/insertion scores against a numpy oracle, the randomisation check."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cnnviz_widgets.errors import CnnVizError, ImageError, ModelError
from cnnviz_widgets.explain import grad_cam
from cnnviz_widgets.explain.trust import (
    FLAG_CORRELATION,
    blurred,
    faithfulness,
    randomization_check,
    spearman,
)
from cnnviz_widgets.images import resize_image


@pytest.fixture
def heat16():
    return np.random.default_rng(7).random((16, 16)).astype(np.float32)


def oracle_curve(model, image, heat, class_index, steps, start, end):
    """The curve written out: rank pixels, replace the top share, read the softmax output."""
    order = np.argsort(-heat.ravel(), kind="stable")
    n = heat.size
    images = []
    for k in range(steps + 1):
        picture = start.reshape(-1, 3).copy()
        chosen = order[: round(k * n / steps)]
        picture[chosen] = end.reshape(-1, 3)[chosen]
        images.append(picture.reshape(start.shape))
    probs = np.asarray(model(np.stack(images).astype(np.float32)))
    curve = probs[:, class_index].astype(np.float64)
    fractions = np.round(np.arange(steps + 1) * n / steps) / n
    return np.trapezoid(curve, fractions), curve


@pytest.mark.parametrize("metric", ["deletion", "insertion"])
def test_scores_match_the_curve_written_out(tiny_functional, rgb16, heat16, metric):
    pixels = rgb16.astype(np.float32)
    zero = np.zeros_like(pixels)
    start, end = (pixels, zero) if metric == "deletion" else (zero, pixels)
    want, curve = oracle_curve(tiny_functional, rgb16, heat16, 2, 8, start, end)
    got = faithfulness(tiny_functional, rgb16, heat16, 2, metric=metric, steps=8,
                       baseline="zero", batch_size=3, progress=False)  # fmt: skip
    assert isinstance(got, float) and 0.0 <= got <= 1.0
    assert float(got) == pytest.approx(want, abs=1e-6)
    np.testing.assert_allclose(got.curve, curve, atol=1e-6)
    assert got.metric == metric and got.class_index == 2
    # The random map: a seeded uniform map, scored the same way.
    random_map = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    want_random, _ = oracle_curve(tiny_functional, rgb16, random_map, 2, 8, start, end)
    assert got.random == pytest.approx(want_random, abs=1e-6)
    assert got.better_than_random == (
        got < got.random if metric == "deletion" else got > got.random
    )


def test_random_map_at_a_coarser_grid(tiny_functional, rgb16, heat16):
    # A 4×4 random map, resized to the input as a layer's map is: the curve removes blocks.
    got = faithfulness(tiny_functional, rgb16, heat16, 1, steps=8, baseline="zero",
                       random_grid=(4, 4), progress=False)  # fmt: skip
    pixels = rgb16.astype(np.float32)
    cells = np.random.default_rng(0).random((4, 4), dtype=np.float32)
    coarse = resize_image(cells, (16, 16))
    want, curve = oracle_curve(tiny_functional, rgb16, coarse, 1, 8, pixels, np.zeros_like(pixels))
    assert got.random == pytest.approx(want, abs=1e-6)
    np.testing.assert_allclose(got.random_curve, curve, atol=1e-6)
    # A heatmap given at 4×4 gets a 4×4 random map without being told.
    small = faithfulness(tiny_functional, rgb16, heat16[::4, ::4], 1, steps=8, baseline="zero",
                         progress=False)  # fmt: skip
    assert small.random == pytest.approx(want, abs=1e-6)
    for bad in [(0, 4), (4,), "4x4", (2.5, 2)]:
        with pytest.raises(CnnVizError, match="random_grid"):
            faithfulness(tiny_functional, rgb16, heat16, 1, random_grid=bad, progress=False)


def test_blur_baseline_ends_on_the_blurred_image(tiny_functional, rgb16, heat16):
    got = faithfulness(tiny_functional, rgb16, heat16, 0, steps=4, random_baseline=False,
                       progress=False)  # fmt: skip
    pixels = rgb16.astype(np.float32)
    ends = np.asarray(tiny_functional(np.stack([pixels, blurred(pixels)])))[:, 0]
    np.testing.assert_allclose(got.curve[[0, -1]], ends, atol=1e-6)
    assert got.random is None and got.random_curve is None and got.better_than_random is None
    # The blur keeps the colours and loses the detail: a flat image stays itself.
    flat = np.full((32, 48, 3), 90.0, np.float32)
    np.testing.assert_allclose(blurred(flat), flat, atol=1e-4)


def test_top_class_and_seeded_random_map(tiny_functional, rgb16, heat16):
    top = int(np.argmax(np.asarray(tiny_functional(rgb16[None].astype(np.float32)))[0]))
    first = faithfulness(tiny_functional, rgb16, heat16, steps=4, seed=3, progress=False)
    again = faithfulness(tiny_functional, rgb16, heat16, top, steps=4, seed=3, progress=False)
    assert first.class_index == top
    assert float(first) == float(again) and first.random == again.random


def test_a_map_at_another_size_is_resized_to_the_model_input(tiny_functional, rgb16):
    heat = grad_cam(tiny_functional, rgb16, 1, layer="conv2")
    big = np.kron(heat, np.ones((2, 2), np.float32))  # 32×32, same ranking after resizing back
    a = faithfulness(tiny_functional, rgb16, heat, 1, steps=4, progress=False)
    b = faithfulness(tiny_functional, rgb16, big, 1, steps=4, progress=False)
    assert 0.0 <= a <= 1.0 and 0.0 <= b <= 1.0


def test_faithfulness_bad_input(tiny_functional, rgb16, heat16):
    with pytest.raises(CnnVizError, match=re.escape(
        "Unknown faithfulness metric 'delete'. Did you mean 'deletion'? Choose one of "
        "'deletion', 'insertion'."
    )):  # fmt: skip
        faithfulness(tiny_functional, rgb16, heat16, metric="delete")
    with pytest.raises(CnnVizError, match=re.escape("steps must be ≥ 1; got 0.")):
        faithfulness(tiny_functional, rgb16, heat16, steps=0)
    with pytest.raises(ImageError, match=re.escape(
        "heatmap must be a 2-D map of numbers (H, W), as grad_cam and saliency return; got "
        "shape (16, 16, 3) of dtype float64."
    )):  # fmt: skip
        faithfulness(tiny_functional, rgb16, np.zeros((16, 16, 3)))
    with pytest.raises(ImageError, match="heatmap contains NaN or infinite values"):
        faithfulness(tiny_functional, rgb16, np.full((16, 16), np.nan))
    with pytest.raises(CnnVizError, match="class_index 9 is out of range"):
        faithfulness(tiny_functional, rgb16, heat16, 9)


# ------------------------------------------------------------------------ randomisation
def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, 300).astype(np.float32)  # many ties, as in ReLU'd maps
    b = a + rng.normal(0, 2, 300)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert np.isnan(spearman(np.zeros(9), np.arange(9)))


@pytest.fixture(scope="module")
def two_heads():
    """conv1 → conv2 → gap → "probs" (the class head, output 0), and a side head "aux"."""
    import keras

    keras.utils.set_random_seed(11)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(pooled)
    aux = keras.layers.Dense(2, name="aux")(pooled)
    return keras.Model(inputs, [probs, aux], name="two_heads")


def test_the_users_model_is_never_touched(two_heads, rgb16):
    before = [w.copy() for w in two_heads.get_weights()]
    check = randomization_check(two_heads, rgb16, "gradcam", 0, layer="conv2", output=0,
                                progress=False)  # fmt: skip
    for old, new in zip(before, two_heads.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    # Top block first; each block randomised on top of the ones before it.
    assert check.blocks == ["aux", "probs", "conv2", "conv1"]
    assert check.layers == [["aux"], ["probs"], ["conv2"], ["conv1"]]
    assert len(check) == 4 and list(check) == check.correlations
    assert check.method == "gradcam" and check.class_index == 0


def test_a_map_that_does_not_change_is_flagged(two_heads, rgb16):
    # Randomising "aux" only leaves the class head and every layer it reads untouched: the map
    # is the same map, rank correlation exactly 1, and the method must be flagged.
    check = randomization_check(two_heads, rgb16, "gradcam", 0, layer="conv2", output=0,
                                blocks=1, progress=False)  # fmt: skip
    assert check.correlations == [pytest.approx(1.0, abs=1e-12)]
    assert check.flagged and FLAG_CORRELATION < 1.0


def test_randomisation_is_seeded_and_changes_the_map(two_heads, rgb16):
    kwargs = {"layer": "conv2", "output": 0, "blocks": 3, "seed": 5, "progress": False}
    first = randomization_check(two_heads, rgb16, "gradcam", 0, **kwargs)
    again = randomization_check(two_heads, rgb16, "gradcam", 0, **kwargs)
    np.testing.assert_array_equal(first.correlations, again.correlations)
    assert first.correlations[0] == pytest.approx(1.0)
    assert first.correlations[1] != pytest.approx(1.0)  # the class head is new


def test_saliency_methods_are_checked_too(tiny_functional, rgb16):
    check = randomization_check(tiny_functional, rgb16, "vanilla", 1, progress=False)
    assert check.blocks == ["probs", "conv2", "conv1"]
    assert all(np.isnan(c) or -1.0 <= c <= 1.0 for c in check.correlations)


def test_randomisation_bad_input(keras, tiny_functional, rgb16):
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.AveragePooling2D(2, name="pool")(inputs)
    outputs = keras.layers.Softmax(name="softmax")(keras.layers.GlobalAveragePooling2D()(pooled))
    weightless = keras.Model(inputs, outputs, name="weightless")
    with pytest.raises(ModelError, match=re.escape(
        "Model 'weightless' has no weights, so the randomisation check has nothing to "
        "re-initialise: it tests whether a map depends on what the model learned. Run it on a "
        "model with trained (or at least initialised) layers."
    )):  # fmt: skip
        randomization_check(weightless, rgb16[:8, :8], "gradcam", 0, layer="pool")
    with pytest.raises(CnnVizError, match=re.escape("Unknown attribution method 'gradcan'.")):
        randomization_check(tiny_functional, rgb16, "gradcan")
    with pytest.raises(CnnVizError, match=re.escape("blocks must be ≥ 1; got 0.")):
        randomization_check(tiny_functional, rgb16, blocks=0)
