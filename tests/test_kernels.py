"""Kernels: reading them from any conv layer (engine.weights), drawing them with numbers
(render.kernels), and the hand-made filter network (engine.models)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_widgets.engine.adapter import activations
from cnnviz_widgets.engine.models import handmade_filter_model
from cnnviz_widgets.engine.weights import kernel_weights
from cnnviz_widgets.errors import CnnVizError, LayerError
from cnnviz_widgets.render.kernels import (
    DEFAULT_FILTERS,
    _font_scale,
    _format_value,
    _text_mask,
    kernel_grid,
    pad_kernel,
)


@pytest.fixture(scope="module")
def convs(keras):
    """A nested model with each kind of 2-D convolution."""
    inner_in = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", name="rgb_conv")(inner_in)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = keras.layers.SeparableConv2D(4, 5, padding="same", name="sep")(x)
    inner = keras.Model(inner_in, x, name="base")
    outer_in = keras.Input((12, 12, 3))
    y = keras.layers.GlobalAveragePooling2D(name="gap")(inner(outer_in))
    return keras.Model(outer_in, keras.layers.Dense(2, name="head")(y), name="convs")


# ------------------------------------------------------------------------------ reading
def test_conv_kernels_keep_keras_layout(convs):
    got = kernel_weights(convs, "base/rgb_conv")
    want = convs.get_layer("base").get_layer("rgb_conv").get_weights()[0]
    assert got.shape == (3, 3, 3, 5) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    got[...] = 0  # a copy: the model is untouched
    assert np.abs(convs.get_layer("base").get_layer("rgb_conv").get_weights()[0]).sum() > 0


def test_depthwise_and_separable_kernels_have_one_input_each(convs):
    dw = convs.get_layer("base").get_layer("dw").get_weights()[0]  # (3, 3, 5, 2)
    got = kernel_weights(convs, "dw")
    assert got.shape == (3, 3, 1, 10)
    # output o filters input channel o // depth_multiplier with multiplier index o % 2
    np.testing.assert_array_equal(got[:, :, 0, 7], dw[:, :, 3, 1])
    sep = kernel_weights(convs, "sep")
    assert sep.shape == (5, 5, 1, 10)
    depthwise = convs.get_layer("base").get_layer("sep").get_weights()[0]
    np.testing.assert_array_equal(sep[:, :, 0, 4], depthwise[:, :, 4, 0])


def test_non_conv_layer_names_the_conv_layers_nearby(convs):
    with pytest.raises(
        LayerError,
        match=r"Layer 'base/bn' \(BatchNormalization\) has no convolution kernels.*"
        r"Convolution layers nearby: 'base/rgb_conv', 'base/dw', 'base/sep'\.",
    ):
        kernel_weights(convs, "bn")
    with pytest.raises(LayerError, match="No layer 'rgb_cnv'.*Did you mean"):
        kernel_weights(convs, "rgb_cnv")


# ------------------------------------------------------------------------------ drawing
def _cell_ink(picture, plain, row, col, cell, pad=2):
    """Pixels where the numbered rendering differs from the plain one, inside one cell."""
    y, x = pad + row * cell, pad + col * cell
    a = picture[y : y + cell, x : x + cell]
    b = plain[y : y + cell, x : x + cell]
    return np.any(a != b, axis=2)


def _trim(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def test_small_kernels_get_their_numbers_written_on_the_cells():
    edge = DEFAULT_FILTERS["vertical_dark_to_light"][:, :, None, None]
    picture = kernel_grid(edge)
    plain = kernel_grid(edge, numbers=False, cell=36)
    assert picture.shape == plain.shape == (4 * 36 + 4, 4 * 36 + 4, 3)
    scale = _font_scale(36)
    for col, text in enumerate(["-1", "-1", "1", "1"]):
        ink = _cell_ink(picture, plain, 0, col, 36)
        np.testing.assert_array_equal(_trim(ink), _text_mask(text, scale))
    # "-1" and "1" cells really differ in their writing, not only in their colour
    minus = _cell_ink(picture, plain, 0, 0, 36)
    one = _cell_ink(picture, plain, 0, 3, 36)
    assert minus.sum() > one.sum()


def test_numbers_are_readable_on_dark_and_light_cells():
    kernel = np.array([[-1.0, 0.0], [0.25, 1.0]], np.float32)[:, :, None, None]
    picture = kernel_grid(kernel)
    plain = kernel_grid(kernel, numbers=False, cell=36)
    for (r, c), text in np.ndenumerate(np.array([["-1", "0"], [".25", "1"]])):
        ink = _cell_ink(picture, plain, r, c, 36)
        assert ink.any(), text
        y, x = 2 + r * 36, 2 + c * 36
        cell = picture[y : y + 36, x : x + 36]
        background = plain[y + 1, x + 1].astype(int)
        # ink contrasts with its cell: far from the background colour
        assert np.abs(cell[ink].astype(int) - background).sum(axis=1).min() > 100


def test_format_value_fits_four_characters():
    cases = {
        1.0: "1",
        -1.0: "-1",
        0.0: "0",
        0.25: ".25",
        -0.05: "-.05",
        1.5: "1.5",
        -12.3: "-12",
        2.0e4: "2e4",
        0.001: "0",
        -0.999: "-1.0",
    }
    for value, text in cases.items():
        assert _format_value(value) == text
        assert len(text) <= 4


def test_rgb_first_layer_kernels_in_colour_around_grey(convs):
    kernels = kernel_weights(convs, "rgb_conv")
    picture = kernel_grid(kernels, cell=4, pad=1)
    # 5 kernels -> 3 per row, 2 rows; each tile 3×3 cells of 4 px
    assert picture.shape == (1 + 2 * 13, 1 + 3 * 13, 3)
    tile = picture[1:13, 1:13]
    k = kernels[:, :, :, 0]
    want = np.rint(np.clip(0.5 + k / (2 * np.abs(kernels).max()), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(tile[::4, ::4], want)
    zero = kernel_grid(np.zeros((1, 1, 3, 1), np.float32), cell=2, pad=0)
    assert (zero == 128).all()  # a zero kernel is mid-grey


def test_other_kernels_are_one_diverging_tile_per_input_and_output():
    rng = np.random.default_rng(0)
    kernels = rng.normal(size=(7, 7, 4, 3)).astype(np.float32)
    picture = kernel_grid(kernels, cell=2, pad=1)
    # rows: 3 outputs; columns: 4 inputs; 7×7 cells of 2 px; no numbers on 7×7 kernels
    assert picture.shape == (1 + 3 * 15, 1 + 4 * 15, 3)
    # 0 maps to the colormap's middle (near white for RdBu_r), + to red, - to blue
    tiny = np.array([[-1.0, 0.0, 1.0]], np.float32)[:, :, None, None]
    row = kernel_grid(tiny, numbers=False, cell=1, pad=0)[0]
    assert row[0, 2] > row[0, 0] and row[2, 0] > row[2, 2] and row[1].min() > 200
    picked = kernel_grid(kernels, inputs=[1], outputs=[0, 2], cell=2, pad=1)
    assert picked.shape == (1 + 15, 1 + 2 * 15, 3)  # a single input: tiles wrap, about square


def test_kernel_grid_reads_a_model_layer_and_rejects_bad_input(convs):
    from_model = kernel_grid(convs, "dw", cell=3)
    assert from_model.dtype == np.uint8
    # the model form is only a shortcut for reading the kernels through the engine
    np.testing.assert_array_equal(from_model, kernel_grid(kernel_weights(convs, "dw"), cell=3))
    with pytest.raises(CnnVizError, match=r"needs kernels \(a \(kh, kw, in, out\) array\) or a model"):
        kernel_grid(convs)
    with pytest.raises(CnnVizError, match=r"^Unknown normalize mode 'global'\..*'layer', 'kernel'"):
        kernel_grid(np.ones((3, 3, 1, 1), np.float32), normalize="global")
    with pytest.raises(CnnVizError, match=r"^cell must be ≥ 1; got 0\.$"):
        kernel_grid(np.ones((3, 3, 1, 1), np.float32), cell=0)
    with pytest.raises(CnnVizError, match=r"^columns must be ≥ 1; got -2\.$"):
        kernel_grid(np.ones((3, 3, 1, 4), np.float32), columns=-2)
    with pytest.raises(CnnVizError, match="kernels must be a non-empty"):
        kernel_grid(np.zeros((3, 3)))
    with pytest.raises(CnnVizError, match=r"outputs \[9\] out of range.*5 output channels \(0–4\)"):
        kernel_grid(kernel_weights(convs, "rgb_conv"), outputs=[9])
    with pytest.raises(CnnVizError, match="color=True needs kernels with 3 input channels"):
        kernel_grid(np.zeros((3, 3, 2, 1), np.float32), color=True)


# ------------------------------------------------------------------------------ hand-made
def test_default_filters_are_the_lesson_edges_and_the_padded_sobel_pair():
    assert list(DEFAULT_FILTERS) == [
        "vertical_dark_to_light",
        "vertical_light_to_dark",
        "horizontal_dark_to_light",
        "horizontal_light_to_dark",
        "sobel_x",
        "sobel_y",
    ]
    edge = np.array([[-1, -1, 1, 1]] * 4, np.float32)
    np.testing.assert_array_equal(DEFAULT_FILTERS["vertical_light_to_dark"], -edge)
    np.testing.assert_array_equal(DEFAULT_FILTERS["horizontal_dark_to_light"], edge.T)
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    padded = pad_kernel(sobel, 4)
    assert padded.dtype == np.float32 and padded.shape == (4, 4)
    np.testing.assert_array_equal(padded[:3, :3], sobel)
    assert not padded[3].any() and not padded[:, 3].any()
    np.testing.assert_array_equal(DEFAULT_FILTERS["sobel_y"], pad_kernel(sobel.T, 4))


def test_handmade_model_structure_and_kernels():
    model = handmade_filter_model()
    assert [layer.name for layer in model.layers] == ["image", "edges", "relu", "pool"]
    assert model.filter_names == tuple(DEFAULT_FILTERS)
    weights = model.get_layer("edges").get_weights()
    assert len(weights) == 1  # no bias
    assert weights[0].shape == (4, 4, 1, 6)
    np.testing.assert_array_equal(weights[0][:, :, 0, 0], [[-1, -1, 1, 1]] * 4)
    np.testing.assert_array_equal(
        weights[0][:, :, 0, 4][:3, :3], [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    )


def test_vertical_edge_filter_fires_only_at_the_edge_with_the_hand_computed_value():
    image = np.zeros((8, 12), np.uint8)
    image[:, 4:8] = 100  # a bright vertical band: dark→light edge at column 4, light→dark at 8
    model = handmade_filter_model()
    conv = activations(model, image, "edges")
    relu = activations(model, image, "relu")
    # vertical_dark_to_light, rows of [-1, -1, 1, 1]: 'same' padding for a 4-wide kernel reads
    # columns x-1..x+2, so at x = 2, 3, 4 the window holds 1, 2, 1 bright columns on its plus
    # side (net), i.e. 1, 2, 1 × 100 per kernel row, × 4 rows inside the image.
    np.testing.assert_allclose(relu[1:6, :, 0], [[0, 0, 400, 800, 400, 0, 0, 0, 0, 0, 0, 0]] * 5)
    assert set(np.flatnonzero(relu[:, :, 0].any(axis=0))) == {2, 3, 4}
    # before the ReLU the light→dark edge gives the mirror image, negative
    np.testing.assert_allclose(conv[3, 5:10, 0], [0, -400, -800, -400, 0])
    # the negated filter fires at the other edge only
    assert set(np.flatnonzero(relu[:, :, 1].any(axis=0))) == {6, 7, 8}
    # the horizontal filters see no horizontal edge away from the top and bottom borders
    np.testing.assert_allclose(conv[1:6, :, 2:4], 0)
    # 2×2 max pooling halves the map and keeps the strongest response
    pooled = activations(model, image, "pool")
    assert pooled.shape == (4, 6, 6) and pooled[1, 1, 0] == 800 and pooled[1, 3, 1] == 800


def test_sobel_padded_to_4x4_equals_a_3x3_same_convolution(keras):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (10, 10)).astype(np.uint8)
    got = activations(handmade_filter_model(), image, "edges")[:, :, 4]
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    padded = np.pad(image.astype(np.float32), 1)
    want = np.zeros((10, 10), np.float32)
    for y in range(10):
        for x in range(10):
            want[y, x] = (padded[y : y + 3, x : x + 3] * sobel).sum()
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_custom_kernels_names_and_rgb_input():
    model = handmade_filter_model({"blur": np.full((3, 3), 1 / 9)}, input_channels=3)
    assert model.filter_names == ("blur",)
    image = np.full((6, 6, 3), 90, np.uint8)
    out = activations(model, image, "edges")
    np.testing.assert_allclose(out[2:4, 2:4, 0], 90, rtol=1e-5)  # mean of RGB, blurred
    named = handmade_filter_model([np.eye(2), -np.eye(2)], names=["diag", "anti"])
    assert named.filter_names == ("diag", "anti")
    with pytest.raises(CnnVizError, match="Got 1 names for 2 filters"):
        handmade_filter_model([np.eye(2), np.eye(2)], names=["one"])
    with pytest.raises(CnnVizError, match="kernels must be square 2-D filters"):
        handmade_filter_model([np.ones((2, 3))])
