"""The model adapter on tiny models: layer paths, nested sub-models, outputs, no retracing."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_widgets.engine.adapter import ModelAdapter, activations, adapter_for, layer_paths
from cnnviz_widgets.errors import ImageConversionWarning, LayerError, ModelError


def _reference(keras, model, layer_name, x):
    """An independent computation: Keras' own sub-model up to ``layer_name``."""
    sub = keras.Model(model.inputs[0], model.get_layer(layer_name).output)
    return np.asarray(sub(x.astype(np.float32)[None]))[0]


def test_layer_paths_list_spatial_layers_in_order(tiny_functional):
    assert layer_paths(tiny_functional) == ["conv1", "relu1", "pool1", "conv2"]


def test_layer_infos_include_non_spatial_layers_with_shapes_and_params(tiny_functional):
    infos = {i.path: i for i in ModelAdapter(tiny_functional).layers}
    assert infos["conv1"].output_shape == (16, 16, 4)
    assert infos["conv1"].params == 3 * 3 * 3 * 4 + 4
    assert infos["pool1"].output_shape == (8, 8, 4)
    assert infos["probs"].output_shape == (5,) and not infos["probs"].spatial
    assert infos["conv2"].channels == 6


def test_activations_match_keras_submodel(keras, tiny_functional, rgb16):
    for name in ["conv1", "pool1", "conv2"]:
        got = activations(tiny_functional, rgb16, name)
        want = _reference(keras, tiny_functional, name, rgb16)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_nested_submodel_paths_and_outputs(keras, tiny_nested, rgb16):
    paths = layer_paths(tiny_nested)
    assert paths == ["base/b_conv1", "base/b_relu1", "base/b_pool1", "base/b_conv2"]
    base = tiny_nested.get_layer("base")
    want = np.asarray(
        keras.Model(base.inputs[0], base.get_layer("b_pool1").output)(rgb16[None].astype("float32"))
    )[0]
    np.testing.assert_allclose(activations(tiny_nested, rgb16, "base/b_pool1"), want, atol=1e-5)
    # a bare name that is unique works too
    np.testing.assert_allclose(activations(tiny_nested, rgb16, "b_pool1"), want, atol=1e-5)


def test_the_submodel_itself_is_listed_among_layers_but_not_twice_in_paths(tiny_nested):
    adapter = ModelAdapter(tiny_nested)
    assert [i.path for i in adapter.layers if i.depth == 0] == ["base", "gap", "logits"]
    assert "base" not in adapter.layer_paths
    assert adapter.layer_info("base").params == sum(
        i.params for i in adapter.layers if i.depth == 1
    )


def test_never_built_sequential_is_read_on_first_image(keras, never_built_sequential, rgb16):
    assert not never_built_sequential.built
    # Before any image the shapes are unknown: every layer is listed by name.
    assert ModelAdapter(never_built_sequential).layer_paths == [
        "conv1", "pool1", "conv2", "gap", "logits"
    ]
    with pytest.raises(ModelError, match="was never built.*Pass an image first"):
        _ = ModelAdapter(never_built_sequential).layers
    assert layer_paths(never_built_sequential, image=rgb16) == ["conv1", "pool1", "conv2"]
    # Reading it for that image left the user's model object as it was.
    assert not never_built_sequential.built
    out = activations(never_built_sequential, rgb16, "conv2")
    conv1, pool1, conv2 = (never_built_sequential.get_layer(n) for n in ("conv1", "pool1", "conv2"))
    want = np.asarray(conv2(pool1(conv1(rgb16[None].astype("float32")))))[0]
    assert out.shape == (5, 5, 6)
    np.testing.assert_allclose(out, want, atol=1e-5)


def test_repeating_a_request_never_retraces(tiny_functional, rgb16):
    adapter = ModelAdapter(tiny_functional)
    adapter.activations(rgb16, "conv2")
    fn = adapter._function(("conv2",))
    for seed in range(3):
        other = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        adapter.activations(other, "conv2")
    assert adapter._function(("conv2",)) is fn
    assert fn.experimental_get_tracing_count() == 1


def test_flexible_model_takes_images_of_any_size_without_retracing(tiny_flexible):
    adapter = ModelAdapter(tiny_flexible)
    rng = np.random.default_rng(1)
    shapes = [
        adapter.activations(rng.random((h, w, 3)), "conv2").shape for h, w in [(16, 20), (30, 12)]
    ]
    assert shapes == [(8, 10, 6), (15, 6, 6)]
    assert adapter._function(("conv2",)).experimental_get_tracing_count() == 1


def test_image_size_option_resizes_shorter_side(tiny_flexible):
    adapter = ModelAdapter(tiny_flexible, image_size=8)
    assert adapter.target_size((16, 32)) == (8, 16)
    assert adapter.prepare(np.zeros((16, 32, 3), np.uint8)).pixels.shape == (8, 16, 3)


def test_fixed_size_model_gets_the_whole_image_resized_not_cropped(tiny_functional):
    adapter = ModelAdapter(tiny_functional)
    image = np.zeros((32, 64, 3), np.float32)
    image[:, 32:] = 255.0  # right half white
    prepared = adapter.prepare(image).pixels
    assert prepared.shape == (16, 16, 3)
    # both halves survive: a crop to the centre-left would lose the white half
    assert prepared[:, :7].max() == 0.0 and prepared[:, 9:].min() == 255.0


def test_preprocess_runs_before_the_model_on_a_copy(keras, tiny_functional, rgb16):
    seen = []

    def preprocess(batch):
        seen.append(batch.shape)
        batch -= 100.0  # in place on purpose: must not reach the user's image
        return batch

    before = rgb16.copy()
    got = ModelAdapter(tiny_functional, preprocess=preprocess).activations(rgb16, "conv1")
    want = _reference(keras, tiny_functional, "conv1", rgb16.astype(np.float32) - 100.0)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert seen == [(1, 16, 16, 3)]
    np.testing.assert_array_equal(rgb16, before)


def test_users_model_and_image_are_not_modified(tiny_nested, rgb16):
    weights_before = [w.copy() for w in tiny_nested.get_weights()]
    nodes_before = [len(layer._inbound_nodes) for layer in tiny_nested.get_layer("base").layers]
    image_before = rgb16.copy()
    activations(tiny_nested, rgb16, "base/b_conv2")
    for before, after in zip(weights_before, tiny_nested.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert [
        len(layer._inbound_nodes) for layer in tiny_nested.get_layer("base").layers
    ] == nodes_before
    np.testing.assert_array_equal(rgb16, image_before)


def test_unknown_layer_lists_close_matches(tiny_nested, rgb16):
    with pytest.raises(
        LayerError, match=r"No layer 'b_conv3' in model 'tiny_nested'\. Did you mean: "
    ) as caught:
        activations(tiny_nested, rgb16, "b_conv3")
    suggested = str(caught.value).split("Did you mean: ")[1].split("?")[0]
    assert sorted(suggested.split(", ")) == ["'base/b_conv1'", "'base/b_conv2'"]


def test_layer_without_spatial_output_says_so_and_suggests_one(tiny_functional, rgb16):
    with pytest.raises(
        LayerError,
        match=r"Layer 'probs' \(Dense\) has output shape \(5,\), not a spatial .* e\.g\. the last one: 'conv2'",
    ):
        activations(tiny_functional, rgb16, "probs")


def test_grayscale_image_to_rgb_model_is_converted_with_a_warning(tiny_functional):
    gray = np.full((16, 16), 200, np.uint8)
    with pytest.warns(ImageConversionWarning, match="1 channel.*3 channels|grayscale.*RGB"):
        prepared = ModelAdapter(tiny_functional).prepare(gray).pixels
    assert prepared.shape == (16, 16, 3) and float(prepared.min()) == 200.0


def test_rgb_image_to_grayscale_model_is_converted_with_a_warning(keras, rgb16):
    inputs = keras.Input((16, 16, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(inputs))
    with pytest.warns(ImageConversionWarning, match="grayscale"):
        out = activations(model, rgb16, "conv")
    assert out.shape == (14, 14, 2)


def test_multi_input_model_is_not_supported_yet(keras):
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    model = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(
        ModelError, match="has 2 inputs; models with several inputs are not supported yet"
    ):
        ModelAdapter(model)


def test_not_a_keras_model_is_refused_clearly():
    with pytest.raises(
        ModelError,
        match=r"Expected a Keras 3 model \(keras\.Model, keras\.Sequential\); got builtins\.dict",
    ):
        layer_paths({"conv1": 1})


def test_subclassed_model_gets_a_clear_error_with_the_fix(keras):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 3)

        def call(self, x):
            return self.conv(x)

    with pytest.raises(
        ModelError, match="subclassed Keras model.*Rebuild it as a functional model"
    ):
        ModelAdapter(Net())


def test_adapter_is_shared_per_model_and_options(tiny_functional):
    assert adapter_for(tiny_functional) is adapter_for(tiny_functional)
    assert adapter_for(tiny_functional, image_size=8) is not adapter_for(tiny_functional)


# --------------------------------------------------------------------------- gradients API
@pytest.fixture(scope="module")
def fused_relu_softmax(keras):
    """Conv with a fused ReLU, a ReLU6 layer, and a softmax fused into the Dense head."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(5, 3, name="c2")(x)
    x = keras.layers.ReLU(max_value=6, name="r2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="fused")


def _batch(shape=(1, 12, 12, 3), seed=0):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.float32)


def test_logits_view_drops_a_fused_softmax_without_touching_the_layer(fused_relu_softmax):
    import tensorflow as tf

    adapter = ModelAdapter(fused_relu_softmax)
    batch = _batch()
    _, logits = adapter.forward(tf.constant(batch), logits=True)
    probs = np.asarray(fused_relu_softmax(batch))
    np.testing.assert_allclose(np.asarray(tf.nn.softmax(logits)), probs, atol=1e-6)
    # logits are not probabilities: they do not sum to one
    assert abs(float(np.asarray(logits).sum()) - 1.0) > 1e-3
    assert fused_relu_softmax.get_layer("probs").activation.__name__ == "softmax"
    assert adapter.head_activation() == "softmax"


def test_logits_view_skips_a_separate_softmax_layer(keras):
    import tensorflow as tf

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    scores = keras.layers.Dense(4, name="scores")(x)
    model = keras.Model(inputs, keras.layers.Softmax(name="softmax")(scores))
    _, logits = ModelAdapter(model).forward(tf.constant(_batch((1, 8, 8, 3))), logits=True)
    want = keras.Model(inputs, scores)(_batch((1, 8, 8, 3)))
    np.testing.assert_allclose(np.asarray(logits), np.asarray(want), atol=1e-5)


def test_gradient_of_a_logit_with_respect_to_a_feature_map(fused_relu_softmax):
    import tensorflow as tf

    adapter = ModelAdapter(fused_relu_softmax)
    batch = tf.constant(_batch())
    with tf.GradientTape() as tape:
        (features,), logits = adapter.forward(batch, ["c2"], logits=True, watch=tape.watch)
        score = logits[:, 1]
    grads = np.asarray(tape.gradient(score, features))
    # Hand-derived: d logit_1 / d c2 = 1[0 < c2 < 6] * W[:, 1] / (H*W) through ReLU6 and GAP.
    c2 = np.asarray(features)
    weights = fused_relu_softmax.get_layer("probs").get_weights()[0][:, 1]
    want = ((c2 > 0) & (c2 < 6)) * weights[None, None, None, :] / (8 * 8)  # c2 is 8×8
    np.testing.assert_allclose(grads, want, atol=1e-7)


def test_relu_rule_replaces_fused_and_standalone_relus(fused_relu_softmax):
    import tensorflow as tf

    adapter = ModelAdapter(fused_relu_softmax)
    seen = []

    def linear_rule(x, max_value):
        seen.append(max_value)
        return x

    batch = _batch()
    (c1,), _ = adapter.forward(tf.constant(batch), ["c1"], relu=linear_rule)
    conv = fused_relu_softmax.get_layer("c1")
    kernel, bias = conv.get_weights()
    # without its ReLU, c1 is the plain convolution: some outputs are negative
    want = np.asarray(tf.nn.conv2d(batch, kernel, 1, "VALID")) + bias
    np.testing.assert_allclose(np.asarray(c1), want, rtol=1e-5, atol=1e-3)
    assert float(np.asarray(c1).min()) < 0
    assert seen == [None]  # only c1 ran: c1 is all that was asked for
    adapter.forward(tf.constant(batch), [], logits=True, relu=linear_rule)
    assert seen[1:] == [None, 6.0]


def test_multi_output_model_needs_the_output_chosen(keras):
    import tensorflow as tf

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    classes = keras.layers.Dense(4, activation="softmax", name="classes")(x)
    box = keras.layers.Dense(2, name="box")(x)
    adapter = ModelAdapter(keras.Model(inputs, [box, classes]))
    with pytest.raises(
        ModelError,
        match=r"has 2 outputs \(0: 'box' \(2,\), 1: 'classes' \(4,\)\)\. Choose the class scores with output=",
    ):
        adapter.forward(tf.constant(_batch((1, 8, 8, 3))), logits=True)
    _, by_name = adapter.forward(tf.constant(_batch((1, 8, 8, 3))), logits=True, output="classes")
    _, by_index = adapter.forward(tf.constant(_batch((1, 8, 8, 3))), logits=True, output=1)
    assert by_name.shape == (1, 4)
    np.testing.assert_array_equal(np.asarray(by_name), np.asarray(by_index))
    with pytest.raises(ModelError, match=r"output=5 is out of range: .* has 2 output\(s\), 0–1"):
        adapter.forward(tf.constant(_batch((1, 8, 8, 3))), logits=True, output=5)


def test_output_that_is_not_a_class_vector_is_refused(keras):
    import tensorflow as tf

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(inputs))
    with pytest.raises(
        ModelError, match=r"Output 'conv' has shape \(6, 6, 2\), not a vector of class scores"
    ):
        ModelAdapter(model).forward(tf.constant(_batch((1, 8, 8, 3))), logits=True)


def test_traced_functions_are_kept_per_key(tiny_functional):
    adapter = ModelAdapter(tiny_functional)
    built = []
    first = adapter.traced(("demo", 1), lambda: built.append(1) or object())
    again = adapter.traced(("demo", 1), lambda: built.append(1) or object())
    assert first is again and built == [1]


def test_bare_keras_ops_in_the_graph_count_as_weightless_layers(keras, rgb16):
    """MobileNetV3 and ConvNeXt apply keras.ops to symbolic tensors: Operations, not Layers."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.ops.relu6(x + 3.0) * (1.0 / 6.0)  # hard sigmoid, as MobileNetV3 writes it
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="head")(x))
    adapter = ModelAdapter(model)
    ops = [info for info in adapter.layers if info.path not in ("conv", "head")]
    assert ops and all(info.params == 0 for info in ops)
    conv = np.asarray(
        keras.Model(inputs, model.get_layer("conv").output)(rgb16[None].astype("float32"))
    )[0]
    want = np.minimum(np.maximum(conv + 3.0, 0), 6.0) / 6.0
    got = adapter.activations(rgb16, adapter.layer_paths[-2])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_compiled_functions_kept_are_bounded_least_recently_used_first(
    tiny_functional, rgb16, monkeypatch
):
    from cnnviz_widgets.engine import adapter as adapter_module

    monkeypatch.setattr(adapter_module, "MAX_TRACED", 3)
    adapter = adapter_module.ModelAdapter(tiny_functional)
    first = {layer: adapter.activations(rgb16, layer) for layer in ("conv1", "relu1", "pool1")}
    keys = adapter.compiled_keys
    assert len(keys) == 3
    adapter.activations(rgb16, "conv1")  # used again: now the most recent
    adapter.activations(rgb16, "conv2")  # a fourth: the least recently used (relu1) goes
    kept = adapter.compiled_keys
    assert len(kept) == 3 and keys[1] not in kept and keys[0] in kept and keys[2] in kept
    # A dropped function is made again on request, with the same values.
    np.testing.assert_array_equal(adapter.activations(rgb16, "relu1"), first["relu1"])
    assert keys[1] in adapter.compiled_keys and len(adapter.compiled_keys) == 3
