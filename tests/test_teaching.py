"""The first view that teaches, numbered tiles, real shapes, the quick first page, the lessons.

Asserted: widget state (layer, channel, options, switch, notes), pixel values (tile numbers,
pooling switches), shapes; timings live in ``bench/suite_teaching.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_widgets import ActivationCache, ActivationExplorer, activations, lessons, render
from cnnviz_widgets.ascent import channel, quality, starting_images
from cnnviz_widgets.engine.adapter import adapter_for
from cnnviz_widgets.widgets import lesson, summary
from cnnviz_widgets.widgets.summary import LayerSummary, real_shapes, summary_rows


# ------------------------------------------------------------------------------ layer names
@pytest.mark.parametrize(
    ("path", "group", "label"),
    [
        ("backbone/block2a_expand_conv", "backbone/block2a", "backbone/block2a ▸ expand_conv"),
        ("block3_conv1", "block3", "block3 ▸ conv1"),
        ("conv2_block1_1_conv", "conv2_block1", "conv2_block1 ▸ 1_conv"),
        ("backbone/stem_activation", "backbone/stem", "backbone/stem ▸ activation"),
        ("conv1", "", "conv1"),
        ("conv2d_1", "", "conv2d_1"),
        ("max_pooling2d", "", "max_pooling2d"),
    ],
)
def test_layers_are_grouped_by_block(path, group, label):
    assert lesson.layer_group(path) == group
    assert lesson.layer_label(path) == label


def test_short_networks_list_every_layer_with_plain_names(tiny_functional):
    adapter = adapter_for(tiny_functional)
    assert lesson.lesson_layers(adapter) == adapter.layer_paths
    assert lesson.layer_options(adapter.layer_paths) == ["conv1", "relu1", "pool1", "conv2"]


def test_layer_explanations(tiny_functional, paged_conv_model):
    adapter = adapter_for(tiny_functional)
    assert lesson.explain_layer(adapter, "conv1") == "conv 3×3, 4 filters → 4 feature maps"
    assert lesson.explain_layer(adapter, "relu1") == (
        "ReLU: negative values become 0, only evidence for a pattern is kept"
    )
    assert lesson.explain_layer(adapter, "pool1") == (
        "max pool 2×2: keeps the largest value of each 2×2 patch → smaller maps, the same 4 "
        "channels"
    )
    paged = adapter_for(paged_conv_model)
    assert lesson.explain_layer(paged, "conv1") == (
        "conv 3×3, 8 filters, then relu → 8 feature maps"
    )


# ------------------------------------------------------------------------------ the first view
def test_strongest_channel_is_the_one_with_most_contrast():
    maps = np.zeros((6, 6, 4), np.float32)
    maps[:, :, 0] = 6.0  # saturated everywhere: no picture
    maps[::2, :, 2] = 1.0  # stripes
    maps[0, 0, 3] = 0.5
    assert lesson.strongest_channel(maps) == 2


def test_explorer_opens_on_the_first_activation_after_the_first_conv(tiny_functional, rgb16):
    ex = ActivationExplorer(tiny_functional, rgb16, cache=ActivationCache())
    maps = activations(tiny_functional, rgb16, "relu1")
    assert ex.layer == "relu1"
    assert ex.channel == int(np.argmax(maps.reshape(-1, 4).std(axis=0)))
    named = ActivationExplorer(tiny_functional, rgb16, layer="conv2", cache=ActivationCache())
    assert (named.layer, named.channel) == ("conv2", 0)  # a layer you name opens on channel 0
    assert "ReLU: negative values become 0" in ex.layer_note.value


@pytest.fixture(scope="module")
def blocks_model():
    """Five VGG-style named blocks of conv → bn → relu → pool: 20 spatial layers."""
    import keras

    keras.utils.set_random_seed(41)
    x = inputs = keras.Input((64, 64, 3))
    for block in range(1, 6):
        x = keras.layers.Conv2D(4, 3, padding="same", name=f"block{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = keras.layers.ReLU(name=f"block{block}_relu")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{block}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="blocks")


@pytest.mark.parametrize("kind", ["activations", "filters", "cam"])
def test_every_explorer_lists_the_lessons_layers_grouped_by_block(kind, blocks_model):
    from cnnviz_widgets import CamExplorer, FilterExplorer

    photo = np.random.default_rng(6).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    make = {
        "activations": lambda: ActivationExplorer(blocks_model, photo, cache=ActivationCache()),
        "filters": lambda: FilterExplorer(blocks_model, size=64, steps=1),
        "cam": lambda: CamExplorer(blocks_model, photo, cache=ActivationCache()),
    }[kind]
    ex = make()
    try:
        shown = [path for _, path in ex.layer_dropdown.options]
        # The relu and pool of each block (what the block produces); no conv, no bn.
        assert shown == [f"block{b}_{kind_}" for b in range(1, 6) for kind_ in ("relu", "pool")]
        assert ex.layer_dropdown.options[0][0] == "block1 ▸ relu"
        assert ex.all_layers_box.value is False and ex.all_layers_box.layout.display == ""
        assert ex.layer in shown and ex.layer_dropdown.value == ex.layer
        ex.all_layers_box.value = True
        assert len(ex.layer_dropdown.options) == 20 and ex.layer_dropdown.value == ex.layer
        ex.all_layers_box.value = False
        ex.layer = "block2_bn"  # named in code: the full list, so the dropdown can show it
        assert ex.all_layers_box.value is True and ex.layer_dropdown.value == "block2_bn"
        assert "batch norm: each feature map shifted and rescaled" in ex.layer_note.value
        ex.layer_dropdown.value = "block3_relu"  # and the dropdown moves the explorer
        assert ex.layer == "block3_relu"
        assert "ReLU: negative values become 0" in ex.layer_note.value
    finally:
        ex.close()


def test_filters_open_on_an_activation_two_thirds_down():
    # Four residual blocks conv → bn → relu → add: the lesson list is relu, add per block, and
    # two thirds down it is block3_add, a residual sum; the Filters tab opens on an activation.
    import keras

    from cnnviz_widgets import FilterExplorer

    keras.utils.set_random_seed(43)
    x = inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 1, name="stem")(x)
    for block in range(1, 5):
        y = keras.layers.Conv2D(4, 3, padding="same", name=f"block{block}_conv")(x)
        y = keras.layers.BatchNormalization(name=f"block{block}_bn")(y)
        y = keras.layers.ReLU(name=f"block{block}_relu")(y)
        x = keras.layers.Add(name=f"block{block}_add")([x, y])
    model = keras.Model(inputs, x, name="residual")
    fx = FilterExplorer(model, size=32, steps=1)
    try:
        listed = [path for _, path in fx.layer_dropdown.options]
        assert listed[(2 * len(listed)) // 3] == "block3_add"
        assert fx.layer == "block3_relu" and fx.layer_dropdown.value == "block3_relu"
    finally:
        fx.close()


def test_grid_tiles_carry_their_channel_numbers(tiny_functional, rgb16):
    ex = ActivationExplorer(tiny_functional, rgb16, layer="conv2", mode="grid",
                            cache=ActivationCache())  # fmt: skip
    layout = ex.grid_layout
    plain, _ = render.channel_grid(
        activations(tiny_functional, rgb16, "conv2"), range(6), columns=6, cmap="viridis",
        tile_min_side=48, tile_max_side=112,
    )  # fmt: skip
    np.testing.assert_array_equal(ex.rgb, render.number_tiles(plain, layout))
    # tile 5's corner: a black box with the white 3×5 digit "5" at scale 2
    top, left = layout.pad, layout.pad + 5 * (layout.tile_width + layout.pad)
    corner = ex.rgb[top : top + 14, left : left + 10]
    ink = (corner == 255).all(axis=-1)
    assert ink[2:12, 2:8].sum() == 2 * 2 * 11  # "5" has 11 lit cells of 15
    assert (corner[ink == 0] == 0).all()
    assert (ex.rgb[top + 20 :, left + 20 : left + layout.tile_width] ==
            plain[top + 20 :, left + 20 : left + layout.tile_width]).all()  # fmt: skip


def test_number_tiles_leaves_the_input_alone_and_skips_tiny_tiles():
    grid, layout = render.channel_grid(np.ones((4, 4, 3), np.float32), tile_min_side=4)
    before = grid.copy()
    np.testing.assert_array_equal(render.number_tiles(grid, layout), before)
    np.testing.assert_array_equal(grid, before)


# ------------------------------------------------------------------------------ summary
def test_summary_shows_the_real_shapes_for_the_image(tiny_flexible, rgb16):
    adapter = adapter_for(tiny_flexible)
    declared = dict((path, label) for label, path in summary_rows(adapter))
    assert "?×?×4" in declared["conv1"]
    image = adapter.prepare(rgb16)
    shapes = real_shapes(adapter, image)
    assert shapes["conv1"] == activations(tiny_flexible, rgb16, "conv1").shape
    picked = []
    table = LayerSummary(adapter, picked.append)
    table.show_shapes(shapes)
    rows = dict((path, label) for label, path in table.table.options)
    assert "16×16×4" in rows["conv1"] and "?" not in rows["conv1"]
    assert picked == [] and table.table.value is None  # new rows are not a pick


def test_real_shapes_come_from_a_trace_that_computes_no_map(tiny_flexible, rgb16, monkeypatch):
    adapter = adapter_for(tiny_flexible)
    image = adapter.prepare(rgb16)
    paths = adapter.layer_paths
    maps = adapter.feature_maps(image, paths)
    want = {path: m.shape for path, m in zip(paths, maps, strict=True)}
    kept = adapter.compiled_keys
    nodes = [len(layer._inbound_nodes) for layer in tiny_flexible.layers]

    def no_maps(*args, **kwargs):
        raise AssertionError("real_shapes computed feature maps")

    monkeypatch.setattr(adapter, "feature_maps", no_maps)
    assert real_shapes(adapter, image) == want
    # Nothing kept on the adapter, and the user's model got no new call recorded on its layers.
    assert adapter.compiled_keys == kept
    assert [len(layer._inbound_nodes) for layer in tiny_flexible.layers] == nodes
    # When the trace cannot tell, the maps are computed (and give the same shapes).
    monkeypatch.undo()
    monkeypatch.setattr(summary, "output_shapes", lambda adapter, image: None)
    assert real_shapes(adapter, image) == want


# ------------------------------------------------------------------------------ quick first page
def test_selectivity_and_gain_on_colour_channels():
    # A 1×1 convolution whose channel c is colour c: a pure red image excites channel 0 only.
    import keras

    image = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False, name="colours")
    model = keras.Model(image, conv(image))
    conv.set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3)])
    pure = np.zeros((3, 8, 8, 3), np.float32)
    for c in range(3):
        pure[c, :, :, c] = 1.0
    assert quality.selectivity(model, "colours", [0, 1, 2], pure) == 1.0
    # Made "for" the wrong channels: red for green and green for red; blue still wins its own.
    assert quality.selectivity(model, "colours", [1, 0, 2], pure) == pytest.approx(1 / 3)
    # Gain: each channel's response (255 on a full colour) over its response to the start image.
    start = starting_images([channel("colours", c) for c in range(3)], size=8)
    grey = np.array([model(np.rint(start[c : c + 1] * 255))[0, ..., c].numpy().mean()
                     for c in range(3)])  # fmt: skip
    np.testing.assert_allclose(quality.gain(model, "colours", [0, 1, 2], pure),
                               255.0 / np.maximum(grey, 1e-3), rtol=1e-5)  # fmt: skip


# ------------------------------------------------------------------------------ lessons
def test_max_pool_switches_and_unpooling():
    rng = np.random.default_rng(0)
    maps = np.abs(rng.normal(size=(6, 8, 2))).astype(np.float32)  # after ReLU, as deconvnet pools
    pooled, switches = lessons.max_pool_with_switches(maps)
    want = maps.reshape(3, 2, 4, 2, 2).max(axis=(1, 3))
    np.testing.assert_array_equal(pooled, want)
    back = lessons.unpool(pooled, switches)
    assert back.shape == maps.shape
    kept = back != 0
    np.testing.assert_array_equal(back[kept], maps[kept])  # each max at its own pixel
    assert kept.sum() == pooled.size  # one per window, zeros elsewhere
    np.testing.assert_array_equal(lessons.max_pool_with_switches(back)[0], pooled)


def test_correlate_is_what_a_conv_layer_computes():
    picture = np.arange(25, dtype=np.float32).reshape(5, 5)
    out = lessons.correlate(picture, lessons.SOBEL_X)
    # interior pixel: a linear ramp of +1 a column gives 1·(1+2+1)·2 = 8
    assert out[2, 2] == 8.0


def test_digit_pair_set_is_seeded_colour_and_two_classes():
    first, labels = lessons.digit_pair_set((0, 1), size=40, seed=3)
    again, _ = lessons.digit_pair_set((0, 1), size=40, seed=3)
    assert first.shape[1:] == (40, 40, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert first.std(axis=(0, 1, 2)).min() > 5  # painted: every colour plane varies


def test_small_convnet_has_the_classic_shape():
    model = lessons.small_convnet()
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 4 and kinds.count("MaxPooling2D") == 4
    assert model.input_shape == (None, 150, 150, 3) and model.output_shape == (None, 1)
    assert model.layers[-1].activation.__name__ == "sigmoid"
    pools = [layer.output.shape[1] for layer in model.layers if "pooling" in layer.name]
    assert pools == [74, 36, 17, 7]


def test_gradcam_steps_are_consistent(tiny_functional, rgb16):
    steps = lessons.gradcam_steps(tiny_functional, rgb16, "conv2", 1)
    np.testing.assert_allclose(steps["weights"], steps["gradients"].mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(
        steps["weighted_sum"], np.tensordot(steps["maps"], steps["weights"], axes=1), rtol=1e-5,
        atol=1e-7,
    )  # fmt: skip
    np.testing.assert_array_equal(steps["relu"], np.maximum(steps["weighted_sum"], 0))
    assert steps["upsampled"].shape == (16, 16) and steps["overlay"].shape == (16, 16, 3)
