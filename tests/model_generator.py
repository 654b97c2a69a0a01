"""A seeded grammar of small random CNNs, and the plain-Keras oracle the package is checked against.

:func:`random_model` draws a model from a seed: Sequential or functional; sub-models nested 1–3
deep; a layer and a sub-model called twice; batch norm, dropout, augmentation, depthwise and
separable convolutions, every pooling; a softmax, sigmoid or linear head with 1–10 units; fixed
or free (``None``) input sizes; 1 or 3 channels. The same seed always gives the same model.

:func:`keras_activations` computes a layer call's output with Keras' own functional API —
models cut out of the graph at that call, chained through each enclosing sub-model call — so
it shares no code with the package's replay. :func:`keras_grad_cam` is Grad-CAM by hand with a
``GradientTape`` on a model split at the layer.

Used by ``tests/test_generated_models.py`` (a marked group) and ``bench/suite_soak.py``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Spatial sizes drawn for inputs (large enough for three 2× poolings and valid convolutions).
SIDES = (24, 28, 32)


@dataclass
class Drawn:
    """A generated model, the image to feed it, and what was drawn (for failure reports)."""

    seed: int
    model: Any
    image: np.ndarray
    recipe: list[str] = field(default_factory=list)
    head: str = ""

    def describe(self) -> str:
        return f"seed {self.seed}: {' → '.join(self.recipe)} → {self.head}"


class _Builder:
    """Draws layers from one random stream; names stay unique within the model."""

    def __init__(self, keras: Any, rng: random.Random) -> None:
        self.keras = keras
        self.rng = rng
        self.count = 0
        self.recipe: list[str] = []

    def name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def conv(self, channels: int) -> Any:
        L, r = self.keras.layers, self.rng
        kind = r.choice(["conv", "conv", "depthwise", "separable"])
        activation = r.choice(["relu", "relu6", None])
        padding = r.choice(["same", "same", "valid"])
        self.recipe.append(f"{kind}({activation},{padding})")
        if kind == "depthwise":
            return L.DepthwiseConv2D(3, padding=padding, activation=activation,
                                     name=self.name("dw"))  # fmt: skip
        if kind == "separable":
            return L.SeparableConv2D(channels, 3, padding=padding, activation=activation,
                                     name=self.name("sep"))  # fmt: skip
        return L.Conv2D(channels, 3, padding=padding, activation=activation, name=self.name("conv"))

    def extra(self) -> Any | None:
        L, r = self.keras.layers, self.rng
        kind = r.choice(["bn", "dropout", "flip", "relu", "none", "none"])
        self.recipe.append(kind) if kind != "none" else None
        if kind == "bn":
            return L.BatchNormalization(name=self.name("bn"))
        if kind == "dropout":
            return L.Dropout(0.3, name=self.name("drop"))
        if kind == "flip":
            return L.RandomFlip("horizontal", name=self.name("aug"))
        if kind == "relu":
            return L.ReLU(name=self.name("relu"))
        return None

    def pool(self) -> Any:
        L = self.keras.layers
        kind = self.rng.choice(["max", "avg"])
        self.recipe.append(f"{kind}pool")
        layer = L.MaxPooling2D if kind == "max" else L.AveragePooling2D
        return layer(2, name=self.name(f"{kind}pool"))

    def block(self, x: Any, channels: int, depth: int) -> Any:
        """One block on tensor ``x``; may wrap itself in a sub-model (up to 3 deep)."""
        keras, r = self.keras, self.rng
        if depth < 3 and r.random() < 0.35:
            inner_in = keras.Input(tuple(x.shape[1:]), name=self.name("in"))
            self.recipe.append("[")
            inner_out = self.block(inner_in, channels, depth + 1)
            self.recipe.append("]")
            sub = keras.Model(inner_in, inner_out, name=self.name("sub"))
            if r.random() < 0.3 and tuple(inner_out.shape[1:]) == tuple(x.shape[1:]):
                # A sub-model called twice: on x and on its own output.
                self.recipe.append("sub×2")
                return sub(sub(x))
            if r.random() < 0.3:
                # A sub-model applied to x and to x mirrored (a siamese pair), then added.
                self.recipe.append("siamese")
                mirrored = keras.layers.RandomFlip("horizontal", name=self.name("mirror"))(x)
                return keras.layers.Add(name=self.name("add"))([sub(x), sub(mirrored)])
            return sub(x)
        y = self.conv(channels)(x)
        extra = self.extra()
        if extra is not None:
            y = extra(y)
        if r.random() < 0.25:
            shared = keras.layers.Conv2D(int(y.shape[-1]), 3, padding="same",
                                         name=self.name("shared"))  # fmt: skip
            self.recipe.append("shared×2")
            y = shared(shared(y))
        # A residual add needs equal sizes, which free (None) sizes cannot promise.
        known = None not in tuple(x.shape[1:])
        if r.random() < 0.25 and known and tuple(y.shape[1:]) == tuple(x.shape[1:]):
            self.recipe.append("residual")
            y = keras.layers.Add(name=self.name("res"))([x, y])
        if r.random() < 0.5 and all(d is None or d >= 8 for d in y.shape[1:3]):
            y = self.pool()(y)
        return y


def _head(builder: _Builder, x: Any) -> tuple[Any, str]:
    keras, r = builder.keras, builder.rng
    L = keras.layers
    pooling = r.choice(["gap", "gmp"])
    x = (L.GlobalAveragePooling2D if pooling == "gap" else L.GlobalMaxPooling2D)(
        name=builder.name(pooling)
    )(x)
    units = r.choice([1, 2, 3, 10])
    activation = (
        r.choice(["softmax", "sigmoid", None]) if units > 1 else r.choice(["sigmoid", None])
    )
    return L.Dense(units, activation=activation, name="head")(
        x
    ), f"{pooling} → dense({units}, {activation})"


def random_model(seed: int, keras: Any) -> Drawn:
    """The model for ``seed`` (weights seeded too), and a seeded image of its input size."""
    r = random.Random(seed)
    keras.utils.set_random_seed(seed)
    builder = _Builder(keras, r)
    channels_in = r.choice([1, 3])
    side = r.choice(SIDES)
    fixed = r.random() < 0.6
    shape = (side, side, channels_in) if fixed else (None, None, channels_in)
    builder.recipe.append(f"input{shape}")
    if r.random() < 0.25:
        # A plain Sequential chain (no nesting, no shared layers).
        layers = [keras.Input(shape)]
        for _ in range(r.randint(1, 3)):
            layers.append(builder.conv(r.choice([4, 6, 8])))
            extra = builder.extra()
            if extra is not None:
                layers.append(extra)
            layers.append(builder.pool())
        x = layers[0]
        for layer in layers[1:]:
            x = layer(x)
        head, text = _head(builder, x)
        model = keras.Model(layers[0], head, name=f"generated_{seed}")
        builder.recipe.insert(0, "sequential")
        if r.random() < 0.5:  # really a keras.Sequential, the head's layers included
            tail = [layer for layer in model.layers if layer not in layers[1:]][1:]
            model = keras.Sequential([keras.Input(shape), *layers[1:], *tail],
                                     name=f"generated_{seed}")  # fmt: skip
    else:
        inputs = keras.Input(shape, name="image")
        x = inputs
        for _ in range(r.randint(1, 3)):
            x = builder.block(x, r.choice([4, 6, 8]), depth=0)
        head, text = _head(builder, x)
        model = keras.Model(inputs, head, name=f"generated_{seed}")
    rng = np.random.default_rng(seed)
    image_side = side if fixed else r.choice(SIDES)
    image = rng.integers(0, 256, (image_side, image_side + r.choice([0, 4]), channels_in),
                         dtype=np.uint8)  # fmt: skip
    if fixed:
        image = image[:, :side]
    return Drawn(seed, model, image, builder.recipe, text)


# ------------------------------------------------------------------------------ the oracle
def _graph(layer: Any, keras: Any) -> Any:
    return layer._functional if isinstance(layer, keras.Sequential) else layer


def _node_of_call(graph: Any, name: str) -> Any:
    """The node of ``graph`` for a path component ``"conv3"`` or ``"conv3:2"`` (call order)."""
    base, _, number = name.partition(":")
    call = int(number) if number else 1
    nodes = [
        node
        for depth in graph._nodes_by_depth.values()
        for node in depth
        if node.operation is not None and not node.is_input and node.operation.name == base
    ]
    recorded = [id(n) for n in nodes[0].operation._inbound_nodes]
    nodes.sort(key=lambda n: recorded.index(id(n)))
    return nodes[call - 1]


def keras_activations(model: Any, batch: np.ndarray, path: str, keras: Any) -> np.ndarray:
    """The output of the layer call at ``path`` for ``batch``, computed by Keras alone."""
    graph = _graph(model, keras)
    values = batch
    parts = path.split("/")
    for i, part in enumerate(parts):
        node = _node_of_call(graph, part)
        if i == len(parts) - 1:
            cut = keras.Model(graph.inputs, node.outputs)
            return np.asarray(cut(values, training=False))
        # Enter the sub-model call: its input as this graph computes it.
        feed = keras.Model(graph.inputs, node.input_tensors)
        values = np.asarray(feed(values, training=False))
        graph = _graph(node.operation, keras)
    raise AssertionError(path)


def keras_grad_cam(model: Any, batch: np.ndarray, path: str, class_index: int, keras: Any,
                   *, binary: bool) -> np.ndarray | None:  # fmt: skip
    """Grad-CAM by hand at a top-level layer, or None when the graph cannot be split there.

    The model is split into (input → layer) and (layer → scores); the scores are the head's
    logits (its softmax or sigmoid left out), and for a single sigmoid unit class 0 is ``-z``.
    """
    import tensorflow as tf

    graph = _graph(model, keras)
    node = _node_of_call(graph, path)
    head_layer = graph.get_layer("head")
    try:
        front = keras.Model(graph.inputs, node.outputs)
        back = keras.Model(node.outputs, head_layer.input)
    except ValueError:  # "Graph disconnected": a branch skips the layer
        return None
    features = tf.constant(np.asarray(front(batch, training=False)))
    with tf.GradientTape() as tape:
        tape.watch(features)
        pooled = back(features, training=False)
        z = tf.matmul(pooled, head_layer.kernel) + head_layer.bias
        if binary:
            z = tf.concat([-z, z], axis=-1)
        score = z[0, class_index]
    grads = tape.gradient(score, features)
    if grads is None:
        return None
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0].numpy()


def _close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    scale = float(np.abs(expected).max()) or 1.0
    np.testing.assert_allclose(actual / scale, expected / scale, atol=2e-4, err_msg=what)


def _smallest_accepted(drawn: Drawn, adapter: Any, message: str) -> np.ndarray:
    """For an image refused as too small: check the refusal, return an image of the minimum size.

    The refusal is right when plain Keras cannot answer for that image either (an error, or
    non-finite scores from pooling an empty map), and the size it names is the adapter's
    minimum, at which Keras answers with finite scores.
    """
    from cnnviz_widgets.images import resize_image

    low_h, low_w = adapter.minimum_size
    assert f"at least {low_h}×{low_w} px" in message, f"{drawn.describe()}: {message}"

    def keras_answers(image: np.ndarray) -> bool:
        try:
            scores = np.asarray(drawn.model(image[np.newaxis].astype(np.float32)))
        except Exception:  # Keras refuses too (negative output size)
            return False
        return bool(np.all(np.isfinite(scores)))  # pooling an empty map gives NaN

    def sized(size: tuple[int, int]) -> np.ndarray:
        return resize_image(drawn.image, size).round().clip(0, 255).astype(np.uint8)

    assert not keras_answers(drawn.image), f"{drawn.describe()}: refused, Keras answers: {message}"
    height, width = drawn.image.shape[:2]
    size = (max(height, low_h), max(width, low_w))
    assert keras_answers(sized(size)), f"{drawn.describe()}: minimum {size} is not enough"
    # And it is the minimum: one pixel less in the direction that was too small fails.
    smaller = (size[0] - 1, size[1]) if height < low_h else (size[0], size[1] - 1)
    assert not keras_answers(sized(smaller)), f"{drawn.describe()}: {smaller} works too"
    return sized(size)


def check(drawn: Drawn, keras: Any, *, explorers: bool = True) -> dict[str, int]:
    """Every check on one generated model; raises AssertionError naming the model and the view.

    Returns counts of what was compared (layers, Grad-CAM oracles) for the soak figures.
    """
    import cnnviz_widgets as cv
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.engine.adapter import ModelAdapter
    from cnnviz_widgets.errors import ImageError
    from cnnviz_widgets.images import resize_image

    model, image = drawn.model, drawn.image
    adapter = ModelAdapter(model)
    try:
        prepared = adapter.prepare(image)
    except ImageError as error:
        image = _smallest_accepted(drawn, adapter, str(error))
        prepared = adapter.prepare(image)
        counts_refused = 1
    else:
        counts_refused = 0
    batch = adapter.model_input(prepared)
    counts = {"layers": 0, "gradcam_oracles": 0, "refusals_checked": counts_refused}
    paths = adapter.layer_paths
    maps = adapter.feature_maps(prepared, paths)
    for path, ours in zip(paths, maps, strict=True):
        _close(
            ours, keras_activations(model, batch, path, keras)[0], f"{drawn.describe()} · {path}"
        )
        counts["layers"] += 1
    dense = model.get_layer("head")
    binary = dense.units == 1 and dense.activation.__name__ == "sigmoid"
    top_level = [p for p in paths if "/" not in p]
    layer = cv.default_cam_layer(adapter)
    cells = {p: m.shape[0] * m.shape[1] for p, m in zip(paths, maps, strict=True)}
    if top_level:
        deepest = next((p for p in reversed(top_level) if cells[p] > 1), None)
        if deepest is not None:
            # The class the package explains for class_index=0, by the same rule.
            want = keras_grad_cam(model, batch, deepest, 0, keras, binary=binary)
            if want is not None:
                got = cv.grad_cam(adapter, prepared, 0, layer=deepest)
                full = np.maximum(resize_image(want.astype(np.float32), prepared.size)
                                  if want.shape != prepared.size else want, 0.0)  # fmt: skip
                peak = full.max()
                if peak > 1e-3 * max(1e-12, float(np.abs(want).max())):
                    _close(got, full / peak, f"{drawn.describe()} · Grad-CAM at {deepest}")
                counts["gradcam_oracles"] += 1
    sal = cv.saliency(adapter, prepared, 0)
    assert np.isfinite(sal).all() and sal.shape == prepared.size, drawn.describe()
    if explorers:
        cache = ActivationCache()
        activations = cv.ActivationExplorer(adapter, image, cache=cache)
        assert activations.png[:8] == b"\x89PNG\r\n\x1a\n", drawn.describe()
        cam = cv.CamExplorer(adapter, image, cache=cache)
        assert cam.wait(60) and cam.error == "", (drawn.describe(), cam.error)
        assert cam.png[:8] == b"\x89PNG\r\n\x1a\n"
        assert layer in (cam.layer, cam.layer.split("/")[-1]) or cam.layer == layer
        cam.close()
    return counts
