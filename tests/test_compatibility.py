"""The compatibility matrix (issue 6): every view on every ``keras.applications`` family we name,
and on every model shape we claim to support.

Each cell of the matrix is one test, ``test_view[<model>-<view>]``, and checks *values*, not
just that the call returned: shapes, finite numbers, maps in [0, 1] and not constant, and —
wherever an independent computation exists — equality with it. The independent computation is
plain Keras: a ``keras.Model`` cut out of the user's model (or, for nested bases, out of the
base), run eagerly under a ``GradientTape``; the class logits are recomputed from the head's own
kernel and bias. That checks the package's graph replay, its logits (softmax removed on the fly)
and its gradients at once.

Each model is built once per module (a module-scoped, parametrised fixture), with
``weights=None`` (no network here) and a small input that keeps a spatial map deeper than 1×1
(64 px; InceptionV3 75, Xception 71). Architectures whose preprocessing is not inside the model
get their own ``preprocess_input`` as ``preprocess=``, as a user would pass it. Building and
tracing is the cost, not the images: every view is its own traced graph, so the module takes
minutes. Run it alone with ``pytest -m compat``.

A complete run (every cell has a result) rewrites ``docs/compatibility.md`` from the results: the
table is what this machine just measured, never edited by hand.

Known package problems are listed in :data:`KNOWN_ISSUES`: those cells must fail exactly as
described (strict: once the package is fixed they fail the run until the entry is removed, so
the table cannot go stale).
"""

from __future__ import annotations

import datetime
import gc
import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from widget_comm import recording_comms  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.compat,
    # Keras's own legacy .h5 writer under NumPy 2 (not this package).
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "compatibility.md"

SIZE = 64  # input side for every model whose architecture allows it
ASCENT_STEPS = 3
SCORECAM_CHANNELS = 8
SMOOTHGRAD_SAMPLES = 4

# --------------------------------------------------------------------------------------------
# the views (columns of the table)
# --------------------------------------------------------------------------------------------
VIEWS = {
    "activations": "Activations + grid",
    "logits": "Class scores",
    "filter_ascent": "Filter ascent",
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "scorecam": "Score-CAM",
    "layercam": "LayerCAM",
    "vanilla": "Saliency",
    "smoothgrad": "SmoothGrad",
    "guided_backprop": "Guided backprop",
    "guided_gradcam": "Guided Grad-CAM",
    "deconvnet": "Deconvnet",
}
CAM_VIEWS = ("gradcam", "gradcam++", "scorecam", "layercam")
SALIENCY_VIEWS = ("vanilla", "smoothgrad", "guided_backprop", "guided_gradcam")


# --------------------------------------------------------------------------------------------
# known package problems: (model, view) -> (exception type name, message regex, footnote)
# --------------------------------------------------------------------------------------------
# Fixed since this matrix first ran (commit 4602252): MobileNetV3Small and ConvNeXtTiny, whose
# bare keras.ops nodes broke the adapter, and filter ascent on a never-built Sequential model.
# An entry looks like
#   ("MobileNetV3Small", "gradcam"): ("AttributeError", r"no attribute 'weights'", "footnote")
KNOWN_ISSUES: dict[tuple[str, str], tuple[str, str, str]] = {}

# Cells that are ✗ by design: the view refuses the model with a clear error (asserted).
_SUBCLASSED_TEXT = (
    r"Net 'net' is a subclassed Keras model: it has no layer graph to read intermediate outputs "
    r"from\. Rebuild it as a functional model \(x = keras\.Input\(shape\); y = layer\(x\) \.\.\.; "
    r"keras\.Model\(x, y\)\) or a keras\.Sequential, reusing the same layer objects, and pass that\."
)


# --------------------------------------------------------------------------------------------
# results -> docs/compatibility.md
# --------------------------------------------------------------------------------------------
@dataclass
class Cell:
    mark: str  # "✓", "✗" or "FAIL"
    note: str = ""
    seconds: float = 0.0


_RESULTS: dict[tuple[str, str], Cell] = {}


def _record(case: str, view: str, mark: str, note: str = "", seconds: float = 0.0) -> None:
    _RESULTS[(case, view)] = Cell(mark, note, seconds)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _write_table(elapsed: float) -> None:
    import keras
    import tensorflow as tf

    notes: list[str] = []

    def footnote(text: str) -> str:
        if text not in notes:
            notes.append(text)
        return f"<sup>{notes.index(text) + 1}</sup>"

    header = "| Model | " + " | ".join(VIEWS.values()) + " |"
    lines = [header, "|" + "---|" * (len(VIEWS) + 1)]
    for case in CASES:
        cells = []
        for view in VIEWS:
            cell = _RESULTS[(case, view)]
            if cell.mark == "✓":
                cells.append("✓")
            else:
                cells.append(f"{cell.mark}{footnote(cell.note)}")
        lines.append(f"| {CASES[case]} | " + " | ".join(cells) + " |")
    failed = sum(c.mark != "✓" for c in _RESULTS.values())
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = [
        "# Compatibility matrix",
        "",
        "<!-- Generated by tests/test_compatibility.py on a complete run; do not edit by hand. -->",
        "",
        "Every view of `cnnviz_widgets` on the `keras.applications` architectures and on the model",
        "shapes the package supports. Each cell is one test in `tests/test_compatibility.py`, which",
        "checks values, not only that the call returned: shapes, finite numbers, maps in [0, 1]",
        "that are not constant, and — where an independent computation exists — equality with",
        "plain Keras (a sub-model cut out of the user's model, run eagerly under a",
        "`GradientTape`; logits recomputed from the head's kernel and bias).",
        "",
        "✓ works and gives the right values · ✗ does not work (see the footnote) · FAIL an",
        "unexpected failure in this run.",
        "",
        *lines,
        "",
    ]
    for i, note in enumerate(notes, 1):
        text.append(f"{i}. {note}")
    text += [
        "",
        "## How this was measured",
        "",
        f"- Run: {stamp}, {len(_RESULTS)} cells ({failed} not ✓) in {elapsed:.0f} s on "
        f"{os.cpu_count()} CPU core(s) shared with other work, no GPU; resident memory at "
        f"the end {_rss_mb():.0f} MB; Python {platform.python_version()}, "
        f"Keras {keras.__version__}, TensorFlow {tf.__version__}.",
        f"- Architectures: `weights=None` (random weights, no download), `include_top=True`, "
        f"`classes=10`, input {SIZE}×{SIZE}×3 (InceptionV3 75×75, Xception 71×71), the "
        "bundled cat photo; VGG16, ResNet50V2, MobileNetV2, DenseNet121, InceptionV3, Xception "
        "and the nested MobileNet get their `keras.applications.*.preprocess_input` as "
        "`preprocess=` (the others have their preprocessing inside the model).",
        "- Activations: the middle and the deepest layer with a spatial map, equal to a Keras "
        "sub-model's output; layer-path count equal to the model's own layer list; a grid page "
        "drawn by `ActivationExplorer` equal to `render.channel_grid`.",
        "- Class scores: `forward(logits=True)` equals the head's pre-softmax output and "
        "softmax(logits) equals `model(x)`; `predict_top` agrees.",
        f"- Filter ascent: {ASCENT_STEPS} steps, two channels of the middle layer, `cache=False`: "
        "8-bit images in [0, 1] that moved away from the starting image, grey for grayscale "
        "models, the same for a channel alone as in a batch (to a level or two of rounding).",
        "- Grad-CAM, Grad-CAM++, LayerCAM, Score-CAM (`max_channels="
        f"{SCORECAM_CHANNELS}`) and Saliency equal the same map computed from Keras's own "
        "gradients and logits (a map may be all zero only where that reference is: random "
        f"weights can leave a class without positive evidence); SmoothGrad (`samples="
        f"{SMOOTHGRAD_SAMPLES}`) is reproducible and differs from the plain gradient; guided "
        "backprop equals the plain gradient exactly when the model has no ReLU and differs "
        "from it otherwise; guided Grad-CAM is zero wherever Grad-CAM is; deconvnet projects "
        "the strongest channel of the middle layer to a non-zero, finite picture.",
        "",
    ]
    TABLE.parent.mkdir(exist_ok=True)
    TABLE.write_text("\n".join(text), encoding="utf-8")


@pytest.fixture(scope="module", autouse=True)
def _matrix_file():
    """Write the table after the module, only when every cell ran (not for -k or -x runs)."""
    started = time.perf_counter()
    yield
    if all((case, view) in _RESULTS for case in CASES for view in VIEWS):
        _write_table(time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One row of the matrix: a model, the image it is shown, and how to check it."""

    model: Any = None
    image: np.ndarray | None = None
    #: The architecture's own ``preprocess_input`` when it is not inside the model.
    preprocess: Callable[[Any], Any] | None = None
    #: For a never-built Sequential model: a new, unbuilt model for every view.
    fresh: Callable[[], Any] | None = None
    output: int | str | None = None
    #: (model) -> reference(batch, layer path) -> (features, logits), eager Keras.
    reference: Callable[[Any], Callable[[Any, str], tuple[Any, Any]]] | None = None
    #: (model) -> the model's own class-probability output for a batch (numpy).
    probabilities: Callable[[Any, np.ndarray], np.ndarray] | None = None
    #: Expected number of layer paths with a spatial map.
    path_count: Callable[[Any], int] | None = None
    softmax_head: bool = True
    #: Every view must refuse the model with this ModelError text (subclassed models).
    refused: str | None = None
    #: Tolerance on [0, 1] maps compared with the Keras reference (float16 is coarser).
    atol: float = 2e-3
    extra: dict = field(default_factory=dict)

    def new_model(self) -> Any:
        return self.fresh() if self.fresh is not None else self.model


def _photo(size: int, gray: bool = False) -> np.ndarray:
    """The bundled cat photo at the model's input size (so maps come back at that size too)."""
    from PIL import Image

    from cnnviz_widgets.samples import sample_image

    picture = Image.fromarray(sample_image("chelsea")).resize((size, size), Image.BILINEAR)
    return np.asarray(picture.convert("L") if gray else picture, dtype=np.uint8)


def _operations(model) -> list:
    """Every operation (layer or bare ``keras.ops`` call) of a functional/Sequential model."""
    import keras

    graph = model._functional if isinstance(model, keras.Sequential) else model
    return list(graph._operations)


def _output_of(model, name: str):
    """The output tensor of a layer *or* a bare ``keras.ops`` call (``get_layer`` only finds
    layers; ConvNeXt's deepest map is the output of an ``x + y`` op named like "add_26")."""
    for op in _operations(model):
        if op.name == name:
            return op.output
    raise KeyError(name)


def _spatial_count(model) -> int:
    """Independent count of the layer paths with a spatial map: Keras' own operation list,
    nested models recursed into (not the node walk the adapter does)."""
    import keras

    total = 0
    for op in _operations(model):
        if isinstance(op, keras.layers.InputLayer):
            continue
        if isinstance(op, keras.Model):
            total += _spatial_count(op)
        elif len(op.output.shape) == 4:
            total += 1
    return total


def _logits_from_head(head, pre, post):
    """Class logits from a head layer: undo its softmax by recomputing its pre-activation."""
    import keras
    import tensorflow as tf

    if isinstance(head, keras.layers.Dense) and head.activation.__name__ in ("softmax", "sigmoid"):
        kernel = tf.cast(head.kernel, tf.float32)
        return tf.matmul(tf.cast(pre, tf.float32), kernel) + tf.cast(head.bias, tf.float32)
    if isinstance(head, (keras.layers.Activation, keras.layers.Softmax)):
        return tf.cast(pre, tf.float32)
    return tf.cast(post, tf.float32)


def _flat_reference(head_name: str | None = None):
    """Reference forward for a model without nested sub-models: a Keras sub-model."""

    def make(model):
        import keras

        output = model.get_layer(head_name).output if head_name else model.outputs[0]
        head = output._keras_history[0]
        models: dict[str, Any] = {}

        def forward(batch, layer):
            if layer not in models:
                models[layer] = keras.Model(
                    model.inputs[0], [_output_of(model, layer), head.input, output]
                )
            features, pre, post = models[layer](batch, training=False)
            return features, _logits_from_head(head, pre, post)

        return forward

    return make


def _nested_reference(base_name: str, before: tuple[str, ...] = ()):
    """Reference for ``layers before → base → GAP → Dense``: a sub-model of the base itself
    (the path into a nested base is exactly what ``keras.Model(outer.input, ...)`` cannot
    reach: "Graph disconnected")."""

    def make(model):
        import keras

        base = model.get_layer(base_name)
        head = model.layers[-1]
        pool = model.layers[-2]
        models: dict[str, Any] = {}

        def forward(batch, layer):
            prefix, tail = layer.split("/", 1) if "/" in layer else ("", layer)
            assert prefix == base_name, layer
            if tail not in models:
                models[tail] = keras.Model(
                    base.inputs[0], [_output_of(base, tail), base.outputs[0]]
                )
            x = batch
            for name in before:
                x = model.get_layer(name)(x, training=False)
            features, trunk = models[tail](x, training=False)
            pre = pool(trunk)
            return features, _logits_from_head(head, pre, head(pre))

        return forward

    return make


def _probabilities(output_index: int = 0):
    def probs(model, batch):
        out = model(batch, training=False)
        out = out[output_index] if isinstance(out, (list, tuple)) else out
        return np.asarray(out, dtype=np.float64)

    return probs


_APPLICATIONS = {
    # name: (constructor, input side, module whose preprocess_input the model needs, if any)
    "VGG16": ("VGG16", SIZE, "vgg16"),
    "ResNet50V2": ("ResNet50V2", SIZE, "resnet_v2"),
    "MobileNetV2": ("MobileNetV2", SIZE, "mobilenet_v2"),
    "MobileNetV3Small": ("MobileNetV3Small", SIZE, None),  # Rescaling inside the model
    "EfficientNetB0": ("EfficientNetB0", SIZE, None),  # Rescaling + Normalization inside
    "EfficientNetV2B0": ("EfficientNetV2B0", SIZE, None),
    "DenseNet121": ("DenseNet121", SIZE, "densenet"),
    "InceptionV3": ("InceptionV3", 75, "inception_v3"),
    "Xception": ("Xception", 71, "xception"),
    "ConvNeXtTiny": ("ConvNeXtTiny", SIZE, None),  # Normalization inside
}


def _application(name: str) -> Case:
    import keras

    constructor, side, module = _APPLICATIONS[name]
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, constructor)(
        weights=None, include_top=True, classes=10, input_shape=(side, side, 3)
    )
    return Case(
        model=model,
        image=_photo(side),
        preprocess=getattr(keras.applications, module).preprocess_input if module else None,
        reference=_flat_reference(),
        probabilities=_probabilities(),
        path_count=_spatial_count,
        extra={"side": side},
    )


def _mini_zoo(keras, channels: int = 3, *, multi: bool = False, name: str = "mini_zoo"):
    """A small CNN with the layer types that matter for views and saving: Rescaling, strided
    conv, batch norm, ReLU6, depthwise and separable convs, a residual Add, max pooling,
    dropout and a softmax Dense head (or a box + classes pair of heads)."""
    L = keras.layers
    inputs = keras.Input((SIZE, SIZE, channels), name="image")
    x = L.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    stem = L.ReLU(6.0, name="stem_relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(stem)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(6.0, name="dw_relu")(x)
    x = L.Conv2D(16, 1, name="project")(x)
    x = L.Add(name="residual")([stem, x])
    x = L.SeparableConv2D(32, 3, padding="same", activation="relu", name="sep")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu", name="last_conv")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    if multi:
        box = L.Dense(4, name="box")(x)
        classes = L.Dense(10, activation="softmax", name="classes")(x)
        return keras.Model(inputs, [box, classes], name=name)
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="predictions")(x), name=name)


def _nested_in_sequential() -> Case:
    import keras

    keras.utils.set_random_seed(1)
    base = keras.applications.MobileNet(
        include_top=False, weights=None, alpha=0.25, input_shape=(SIZE, SIZE, 3)
    )
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, activation="softmax", name="predictions"),
        ],
        name="transfer_sequential",
    )
    return Case(
        model=model,
        image=_photo(SIZE),
        preprocess=keras.applications.mobilenet.preprocess_input,
        reference=_nested_reference(base.name),
        probabilities=_probabilities(),
        path_count=lambda m: _spatial_count(m.get_layer(base.name)),
        extra={"base": base.name},
    )


def _nested_functional(seed: int = 2):
    import keras

    keras.utils.set_random_seed(seed)
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    inputs = keras.Input((SIZE, SIZE, 3), name="photo")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="transfer_functional")


def _nested_in_functional() -> Case:
    model = _nested_functional()
    return Case(
        model=model,
        image=_photo(SIZE),
        reference=_nested_reference("vgg16", before=("scale",)),
        probabilities=_probabilities(),
        path_count=lambda m: 1 + _spatial_count(m.get_layer("vgg16")),  # + "scale"
        extra={"base": "vgg16"},
    )


def _never_built() -> Case:
    import keras

    def fresh():
        keras.utils.set_random_seed(7)  # its weights are drawn on first use: the same each time
        L = keras.layers
        model = keras.Sequential(
            [
                L.Rescaling(1 / 255.0, name="scale"),
                L.Conv2D(8, 3, padding="same", name="conv1"),
                L.BatchNormalization(name="bn1"),
                L.ReLU(name="relu1"),
                L.MaxPooling2D(2, name="pool1"),
                L.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
                L.MaxPooling2D(2, name="pool2"),
                L.Conv2D(16, 3, padding="same", activation="relu", name="conv3"),
                L.GlobalAveragePooling2D(name="gap"),
                L.Dense(10, name="logits"),  # a logits head: no softmax to remove
            ],
            name="never_built",
        )
        assert not model.built
        return model

    flat, probabilities = _flat_reference(), _probabilities()

    def built(model):
        # The package reads a never-built model without building it (issue 10). Calling the
        # layers creates their weights if no view has yet; a copy made from their configs then
        # takes those weights and has a graph of its own for the references.
        if model.built:
            return model
        keras.Sequential([keras.Input((SIZE, SIZE, 3)), *model.layers])
        copy = keras.Sequential(
            [keras.Input((SIZE, SIZE, 3))]
            + [type(layer).from_config(layer.get_config()) for layer in model.layers],
            name=model.name,
        )
        for mine, theirs in zip(copy.layers, model.layers, strict=True):
            mine.set_weights(theirs.get_weights())
        return copy

    def reference(model):
        return flat(built(model))

    return Case(
        fresh=fresh,
        image=_photo(SIZE),
        reference=reference,
        probabilities=lambda model, batch: probabilities(built(model), batch),
        path_count=lambda m: 8,  # scale … conv3: every layer before the pooling
        softmax_head=False,
        extra={"mid": "pool1"},
    )


def _mixed_float16() -> Case:
    import keras

    previous = keras.mixed_precision.global_policy().name
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        keras.utils.set_random_seed(3)
        model = _mini_zoo(keras, name="mixed_zoo")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert keras.mixed_precision.global_policy().name == previous
    assert model.get_layer("stem_conv").compute_dtype == "float16"
    return Case(
        model=model,
        image=_photo(SIZE),
        reference=_flat_reference(),
        probabilities=_probabilities(),
        path_count=_spatial_count,
        atol=3e-2,
    )


def _grayscale() -> Case:
    import keras

    keras.utils.set_random_seed(4)
    return Case(
        model=_mini_zoo(keras, channels=1, name="gray_zoo"),
        image=_photo(SIZE, gray=True),  # (H, W): no conversion, no warning
        reference=_flat_reference(),
        probabilities=_probabilities(),
        path_count=_spatial_count,
    )


def _multi_output() -> Case:
    import keras

    keras.utils.set_random_seed(5)
    return Case(
        model=_mini_zoo(keras, multi=True, name="two_heads"),
        image=_photo(SIZE),
        output="classes",
        reference=_flat_reference("classes"),
        probabilities=_probabilities(1),
        path_count=_spatial_count,
    )


def _augmented() -> Case:
    import keras

    keras.utils.set_random_seed(6)
    L = keras.layers
    inputs = keras.Input((SIZE, SIZE, 3))
    x = L.Rescaling(1 / 255.0, name="scale")(inputs)
    x = L.RandomFlip("horizontal_and_vertical", name="flip")(x)
    x = L.RandomRotation(0.25, name="rotate")(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu", name="conv3")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(10, activation="softmax", name="predictions")(x)
    return Case(
        model=keras.Model(inputs, outputs, name="augmented"),
        image=_photo(SIZE),
        reference=_flat_reference(),
        probabilities=_probabilities(),
        path_count=_spatial_count,
        extra={"mid": "rotate"},  # the augmentation's own output: must be its input, unchanged
    )


def _saved(extension: str, folder: Path) -> Case:
    import keras

    original = _nested_functional(seed=7)
    path = folder / f"transfer.{extension}"
    original.save(path)
    loaded = keras.models.load_model(path)
    return Case(
        model=loaded,
        image=_photo(SIZE),
        reference=_nested_reference("vgg16", before=("scale",)),
        probabilities=_probabilities(),
        path_count=lambda m: 1 + _spatial_count(m.get_layer("vgg16")),
        extra={"original": original, "base": "vgg16"},
    )


def _subclassed() -> Case:
    import keras

    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.conv = keras.layers.Conv2D(8, 3, activation="relu", name="conv")
            self.pool = keras.layers.GlobalAveragePooling2D(name="gap")
            self.dense = keras.layers.Dense(10, activation="softmax", name="predictions")

        def call(self, x):
            return self.dense(self.pool(self.conv(x)))

    model = Net()
    model(np.zeros((1, SIZE, SIZE, 3), np.float32))  # built, with weights
    return Case(model=model, image=_photo(SIZE), refused=_SUBCLASSED_TEXT)


_SHAPES: dict[str, Callable[..., Case]] = {
    "nested-Sequential": _nested_in_sequential,
    "nested-functional": _nested_in_functional,
    "never-built": _never_built,
    "mixed_float16": _mixed_float16,
    "grayscale": _grayscale,
    "multi-output": _multi_output,
    "augmentation": _augmented,
    "saved-keras": lambda folder: _saved("keras", folder),
    "saved-h5": lambda folder: _saved("h5", folder),
    "subclassed": _subclassed,
}


#: The rows of the table: test id -> label.
CASES: dict[str, str] = {
    **{name: name for name in _APPLICATIONS},
    "nested-Sequential": "MobileNet base (α 0.25) in a `Sequential`",
    "nested-functional": "VGG16 base in a functional model",
    "never-built": "`Sequential`, never built",
    "mixed_float16": "`mixed_float16` policy",
    "grayscale": "One channel (grayscale)",
    "multi-output": 'Two outputs, `output="classes"`',
    "augmentation": "`Rescaling` + `RandomFlip` + `RandomRotation`",
    "saved-keras": "Loaded from `.keras` (VGG16 base in a functional model)",
    "saved-h5": "Loaded from `.h5` (VGG16 base in a functional model)",
    "subclassed": "Subclassed `keras.Model`",
}

_BUILT: dict[str, Case] = {}


def _build(name: str, folder: Path) -> Case:
    """Each model once while its tests run (the fixture drops it after them; the few tests of
    model shapes below rebuild the small ones they need)."""
    if name not in _BUILT:
        if name in _APPLICATIONS:
            _BUILT[name] = _application(name)
        elif name.startswith("saved-"):
            _BUILT[name] = _SHAPES[name](folder)
        else:
            _BUILT[name] = _SHAPES[name]()
    return _BUILT[name]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("saved_models")


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request, models_dir):
    """One model at a time (pytest groups the tests by it), dropped after its tests."""
    built = _build(request.param, models_dir)
    built.extra["name"] = request.param
    yield built
    _BUILT.pop(request.param, None)
    gc.collect()


# --------------------------------------------------------------------------------------------
# helpers shared by the checks
# --------------------------------------------------------------------------------------------
def _adapter(case: Case, model):
    from cnnviz_widgets.engine.adapter import adapter_for

    return adapter_for(model, preprocess=case.preprocess)


def _batch(case: Case, model) -> np.ndarray:
    """The model's input batch for the case's image (after its preprocess_input, if any)."""
    adapter = _adapter(case, model)
    return adapter.model_input(adapter.prepare(case.image))


def _mid_layer(case: Case, model) -> str:
    if "mid" in case.extra:
        return case.extra["mid"]  # a top-level layer: its name is its path
    paths = _adapter(case, model).layer_paths
    return paths[len(paths) // 2]


def _close(actual, expected, atol: float, what: str) -> None:
    """Equal relative to the expected array's own scale (deep random nets can be tiny)."""
    expected = np.asarray(expected, np.float64)
    scale = float(np.abs(expected).max()) or 1.0
    np.testing.assert_allclose(
        np.asarray(actual, np.float64) / scale, expected / scale, atol=atol, err_msg=what
    )


def _unit(values: np.ndarray) -> np.ndarray:
    """What the package promises for a map: negatives cut, scaled to a maximum of 1."""
    values = np.maximum(np.asarray(values, np.float64), 0.0)
    peak = values.max()
    return values / peak if peak > 0 else values


def _resized(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from cnnviz_widgets.images import resize_image

    plane = np.asarray(plane, np.float32)
    return plane if plane.shape[:2] == tuple(shape) else resize_image(plane, shape)


def _check_map(heat: np.ndarray, shape: tuple[int, int], *, constant_ok: bool = False) -> None:
    assert heat.shape == shape, heat.shape
    assert heat.dtype == np.float32
    assert np.isfinite(heat).all()
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    if not constant_ok:
        assert heat.max() == pytest.approx(1.0, abs=1e-6), "map is all zero"
        assert heat.std() > 1e-3, "map is constant"


def _reference_maps(case: Case, model, layer: str, class_index: int | None = None) -> dict:
    """Grad-CAM, Grad-CAM++, LayerCAM and the input gradient from plain Keras, eagerly."""
    import tensorflow as tf

    key = (id(model), layer, class_index)
    store = case.extra.setdefault("reference_maps", {})
    if key in store:
        return store[key]
    forward = case.extra.setdefault(("forward", id(model)), case.reference(model))
    batch = tf.constant(_batch(case, model))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(batch)
        features, logits = forward(batch, layer)
        target = int(np.argmax(logits[0])) if class_index is None else class_index
        score = logits[0, target]
    a = np.asarray(tf.cast(features, tf.float32))[0].astype(np.float64)
    g = np.asarray(tf.cast(tape.gradient(score, features), tf.float32))[0].astype(np.float64)
    gx = np.asarray(tf.cast(tape.gradient(score, batch), tf.float32))[0]
    del tape
    g2, g3 = g * g, g * g * g
    denominator = 2.0 * g2 + a.sum(axis=(0, 1), keepdims=True) * g3
    alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
    maps = {
        "scorecam": _reference_scorecam(forward, layer, batch, a, target),
        "gradcam": np.maximum((g.mean(axis=(0, 1)) * a).sum(-1), 0),
        "layercam": np.maximum((np.maximum(g, 0) * a).sum(-1), 0),
        "gradcam++": np.maximum(((alpha * np.maximum(g, 0)).sum(axis=(0, 1)) * a).sum(-1), 0),
        "input_gradient": gx,
        "target": target,
        "logits": np.asarray(logits[0], np.float64),
    }
    store[key] = maps
    return maps


def _reference_scorecam(forward, layer: str, batch, a: np.ndarray, target: int) -> np.ndarray:
    """Score-CAM (Wang et al.) on the SCORECAM_CHANNELS most varying channels: each upsampled,
    [0, 1]-scaled map masks the input; its weight is how much that raises the class
    probability (softmax of the Keras logits) over an all-masked input."""
    import tensorflow as tf

    order = np.argsort(-a.std(axis=(0, 1)), kind="stable")[:SCORECAM_CHANNELS]
    kept = a[..., order]  # (h, w, k)
    size = tuple(batch.shape[1:3])
    up = np.asarray(
        tf.image.resize(np.transpose(kept, (2, 0, 1))[..., None].astype(np.float32), size),
        np.float64,
    )  # (k, H, W, 1), bilinear
    low = up.min(axis=(1, 2, 3), keepdims=True)
    span = up.max(axis=(1, 2, 3), keepdims=True) - low
    masks = np.divide(up - low, span, out=np.zeros_like(up), where=span > 0)
    masked = (np.asarray(batch, np.float64) * masks).astype(np.float32)

    def probabilities(x):
        # float32 as the package computes them: a dead random network's logits (~1e-11 apart)
        # give exactly equal probabilities, and so an all-zero map, in both.
        logits = np.asarray(forward(tf.constant(x), layer)[1], np.float32)
        p = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (p / p.sum(axis=-1, keepdims=True))[:, target]

    weights = probabilities(masked) - probabilities(np.zeros_like(masked[:1]))[0]
    return np.maximum((kept * weights).sum(-1), 0)


def _same_map_for_the_top_class(top: np.ndarray, explicit: np.ndarray, logits) -> None:
    """class_index=None explains the top class: the map of the explicit argmax, unless random
    weights left the two best logits tied to float precision (then either is the top).

    Equal within rounding: the first call of a view may be answered eagerly while its graph is
    traced (issue 16); the two differ in the last bits (float16 ones under mixed precision)."""
    if not np.allclose(top, explicit, rtol=0.0, atol=5e-3):
        best = np.sort(np.asarray(logits, np.float64))[::-1]
        assert best[0] - best[1] <= 1e-5 * max(1e-30, np.abs(best).max()), "top class differs"


def _has_relu(model) -> bool:
    """Does any layer (nested ones too) apply a ReLU or ReLU6? Read from the layers' configs."""
    import keras

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.ReLU):
            return True
        activation = getattr(layer, "activation", None)
        if getattr(activation, "__name__", "") in ("relu", "relu6"):
            return True
    return False


# --------------------------------------------------------------------------------------------
# the checks, one per view
# --------------------------------------------------------------------------------------------
def check_activations(case: Case, model) -> None:
    from cnnviz_widgets import render
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.engine.adapter import activations
    from cnnviz_widgets.widgets.activations import (
        GRID_COLUMNS,
        GRID_PAGE_SIZE,
        GRID_TILE_MAX_SIDE,
        GRID_TILE_MIN_SIDE,
        ActivationExplorer,
    )

    prep = {"preprocess": case.preprocess}
    if "mid" in case.extra:  # the view's own call first: a never-built model is built by it
        activations(model, case.image, case.extra["mid"], **prep)
    adapter = _adapter(case, model)
    mid = _mid_layer(case, model)
    paths = adapter.layer_paths
    assert len(paths) == case.path_count(model) and len(set(paths)) == len(paths)
    if case.extra.get("base"):
        base = case.extra["base"]
        assert sum(p.startswith(base + "/") for p in paths) == _spatial_count(model.get_layer(base))
    if case.extra.get("name") == "VGG16":
        assert len(paths) == 13 + 5  # its 13 convolutions and 5 poolings
    forward = case.reference(model)
    batch = _batch(case, model)
    for layer in dict.fromkeys((mid, paths[-1])):  # the middle and the deepest spatial layer
        maps = activations(model, case.image, layer, **prep)
        assert maps.shape == adapter.layer_info(layer).output_shape and maps.dtype == np.float32
        assert len(maps.shape) == 3 and np.isfinite(maps).all()
        want = np.asarray(forward(batch, layer)[0], np.float32)[0]
        _close(maps, want, case.atol, f"activations of {layer}")
    maps = activations(model, case.image, mid, **prep)
    assert maps.std() > 0, f"{mid} is constant"
    # The grid page the widget draws, through the real ActivationExplorer (recording comm).
    ex = ActivationExplorer(
        model, case.image, layer=mid, mode="grid", cache=ActivationCache(), **prep
    )
    channels = render.page_channels(maps.shape[-1], 0, GRID_PAGE_SIZE)
    want, layout = render.channel_grid(
        maps, channels, columns=min(GRID_COLUMNS, len(channels)), cmap="viridis",
        tile_min_side=GRID_TILE_MIN_SIDE, tile_max_side=GRID_TILE_MAX_SIDE,
    )  # fmt: skip
    np.testing.assert_array_equal(ex.rgb, render.number_tiles(want, layout))  # tiles numbered
    assert ex.grid_layout == layout and ex.view.value == ex.png and ex.error == ""
    assert len(np.unique(want.reshape(-1, 3), axis=0)) > 2  # tiles, not a blank page
    ex.close()


def check_logits(case: Case, model) -> None:
    import tensorflow as tf

    from cnnviz_widgets.explain import predict_top

    adapter = _adapter(case, model)
    batch = _batch(case, model)
    _, logits = adapter.forward(tf.constant(batch), logits=True, output=case.output)
    logits = np.asarray(logits, np.float64)[0]
    assert logits.shape == (10,) and adapter.class_count(case.output) == 10
    probs = case.probabilities(model, batch)[0]
    _, want = case.reference(model)(tf.constant(batch), _mid_layer(case, model))
    _close(logits, np.asarray(want)[0], case.atol, "logits")
    if case.softmax_head:  # softmax(logits) is what the model outputs
        softmax = np.exp(logits - logits.max())
        np.testing.assert_allclose(softmax / softmax.sum(), probs, atol=case.atol / 2)
        assert abs(logits.sum() - 1.0) > 1e-3 or logits.min() < 0  # not the probabilities
    else:  # a logits head: the logits are the model's output
        np.testing.assert_allclose(logits, probs, atol=case.atol)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
    top = predict_top(model, case.image, k=3, output=case.output, preprocess=case.preprocess)
    shown = np.array([p for _, _, p in top])
    # The three largest probabilities, each listed with its own class (ties in any order).
    np.testing.assert_allclose(shown, np.sort(probs)[::-1][:3], atol=case.atol / 2)
    np.testing.assert_allclose(shown, probs[[i for i, _, _ in top]], atol=case.atol / 2)
    assert [label for _, label, _ in top] == [f"class {i}" for i, _, _ in top]


def check_filter_ascent(case: Case, model) -> None:
    from cnnviz_widgets.ascent import channel, filter_ascent, starting_images

    side = case.extra.get("side", SIZE)
    layer = _mid_layer(case, model)  # a never-built model meets the ascent first
    options = {"size": side, "steps": ASCENT_STEPS, "cache": False, "preprocess": case.preprocess}
    images = filter_ascent(model, layer, [0, 1], **options)
    adapter = _adapter(case, model)
    path = adapter.resolve_layer(layer)
    assert images.shape == (2, side, side, 3) and images.dtype == np.float32
    assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images * 255.0, np.rint(images * 255.0))  # 8-bit levels
    planes = adapter.input_shape[2]
    start = starting_images([channel(path, 0), channel(path, 1)], size=side, planes=planes)
    moved = np.abs(images - np.rint(start * 255) / 255).max(axis=(1, 2, 3))
    assert (moved > 0.02).all(), f"the ascent did not change the images: {moved}"
    assert not np.array_equal(images[0], images[1])
    if planes == 1:  # grayscale models get grey pictures, drawn as RGB
        assert np.array_equal(images[..., 0], images[..., 1])
        assert np.array_equal(images[..., 0], images[..., 2])
    # Seeded per channel: the same image alone as in a batch of two, up to float rounding
    # (a batch of one runs other kernels; Adam divides by sqrt(v), which amplifies the last
    # bits of ~0 gradients, so a few pixels move by one 8-bit level).
    alone = filter_ascent(model, layer, [1], **options)[0]
    assert np.abs(alone - images[1]).max() <= 2.5 / 255
    assert np.abs(alone - images[1]).mean() <= 0.25 / 255


def check_cam(method: str):
    def check(case: Case, model) -> None:
        from cnnviz_widgets.explain import default_cam_layer, grad_cam

        options = {"method": method, "output": case.output, "preprocess": case.preprocess,
                   "max_channels": SCORECAM_CHANNELS, "batch_size": SCORECAM_CHANNELS}  # fmt: skip
        top = grad_cam(model, case.image, **options)  # the first call (never-built: builds it)
        layer = default_cam_layer(model, preprocess=case.preprocess)
        assert _adapter(case, model).layer_info(layer).output_shape[:2] != (1, 1)
        reference = _reference_maps(case, model, layer)
        heat = grad_cam(model, case.image, reference["target"], **options)
        _same_map_for_the_top_class(top, heat, reference["logits"])
        shape = case.image.shape[:2]
        want = _unit(_resized(reference[method], shape))
        # Random weights can leave a class with no positive evidence: then all zero, as Keras.
        _check_map(heat, shape, constant_ok=not want.std() > 1e-3)
        np.testing.assert_allclose(heat, want, atol=case.atol * 5)

    return check


def check_saliency(method: str):
    def check(case: Case, model) -> None:
        from cnnviz_widgets.explain import default_cam_layer, grad_cam, saliency

        options = {"method": method, "output": case.output, "preprocess": case.preprocess}
        if method == "smoothgrad":
            options.update(samples=SMOOTHGRAD_SAMPLES, batch_size=2)
        top = saliency(model, case.image, **options)  # the first call (never-built: builds it)
        layer = default_cam_layer(model, preprocess=case.preprocess)
        reference = _reference_maps(case, model, layer)
        target = reference["target"]
        shape = case.image.shape[:2]
        heat = saliency(model, case.image, target, **options)
        _same_map_for_the_top_class(top, heat, reference["logits"])
        _check_map(heat, shape)
        gradient = reference["input_gradient"]
        plain = _unit(np.abs(gradient).max(axis=-1))
        if method == "vanilla":
            np.testing.assert_allclose(heat, plain, atol=case.atol * 5)
            signed = saliency(model, case.image, target, reduce=False, **options)
            assert signed.shape == (*shape, _adapter(case, model).input_shape[2])
            _close(signed, gradient, case.atol * 5, "signed input gradient")
        elif method == "smoothgrad":
            assert np.abs(heat - plain).max() > 1e-3  # the noise changed something
            np.testing.assert_array_equal(saliency(model, case.image, target, **options), heat)
        elif method == "guided_backprop":
            if _has_relu(model):
                assert np.abs(heat - plain).max() > 1e-3  # the ReLUs' backward pass changed
            else:  # nothing to guide: exactly the plain gradient
                np.testing.assert_allclose(heat, plain, atol=case.atol * 5)
        else:  # guided Grad-CAM = guided backprop × the Grad-CAM map (zero where it is zero)
            cam = grad_cam(
                model, case.image, target, output=case.output, preprocess=case.preprocess
            )
            assert (heat[cam == 0] == 0).all()

    return check


def check_deconvnet(case: Case, model) -> None:
    from cnnviz_widgets.engine.adapter import activations
    from cnnviz_widgets.explain import deconvnet, normalize_signed

    prep = {"preprocess": case.preprocess}
    if "mid" in case.extra:  # the view's own call first: a never-built model is built by it
        deconvnet(model, case.image, case.extra["mid"], 0, **prep)
    layer = _mid_layer(case, model)
    maps = activations(model, case.image, layer, **prep)
    strongest = int(np.argmax(maps.reshape(-1, maps.shape[-1]).max(axis=0)))
    assert maps[..., strongest].max() > 0
    projection = deconvnet(model, case.image, layer, strongest, **prep)
    assert projection.shape == (*case.image.shape[:2], _adapter(case, model).input_shape[2])
    assert projection.dtype == np.float32 and np.isfinite(projection).all()
    assert np.abs(projection).max() > 0, "nothing projected back from an active channel"
    picture = normalize_signed(projection)
    assert picture.min() >= 0.0 and picture.max() <= 1.0 and picture.std() > 0


CHECKS: dict[str, Callable[[Case, Any], None]] = {
    "activations": check_activations,
    "logits": check_logits,
    "filter_ascent": check_filter_ascent,
    **{m: check_cam(m) for m in CAM_VIEWS},
    **{m: check_saliency(m) for m in SALIENCY_VIEWS},
    "deconvnet": check_deconvnet,
}


def _call_view(case: Case, view: str, model) -> None:
    """The view's public entry point alone (for a model every view must refuse)."""
    from cnnviz_widgets.ascent import filter_ascent
    from cnnviz_widgets.explain import deconvnet, grad_cam, predict_top, saliency
    from cnnviz_widgets.widgets.activations import ActivationExplorer

    image = case.image
    if view == "activations":
        ActivationExplorer(model, image)
    elif view == "logits":
        predict_top(model, image)
    elif view == "filter_ascent":
        filter_ascent(model, "conv", [0], size=32, steps=1, cache=False)
    elif view in CAM_VIEWS:
        grad_cam(model, image, method=view)
    elif view in SALIENCY_VIEWS:
        saliency(model, image, method=view)
    else:
        deconvnet(model, image, "conv", 0)


# --------------------------------------------------------------------------------------------
# the matrix
# --------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("recording_comms")
@pytest.mark.parametrize("view", list(VIEWS))
def test_view(case, view):
    from cnnviz_widgets.errors import ModelError

    name = case.extra["name"]
    started = time.perf_counter()
    if case.refused is not None:
        with pytest.raises(ModelError, match=case.refused):
            _call_view(case, view, case.model)
        _record(name, view, "✗", "Subclassed models have no layer graph to read: every view "
                "refuses them with a clear `ModelError` that says how to rebuild the model as a "
                "functional one (by design; asserted).", time.perf_counter() - started)  # fmt: skip
        return
    known = KNOWN_ISSUES.get((name, view))
    model = case.new_model()
    try:
        CHECKS[view](case, model)
    except Exception as exc:
        seconds = time.perf_counter() - started
        if known and type(exc).__name__ == known[0] and re.search(known[1], str(exc)):
            _record(name, view, "✗", known[2], seconds)
            pytest.xfail(f"known package issue: {known[2]}")
        _record(name, view, "FAIL", f"{type(exc).__name__}: {str(exc)[:300]}", seconds)
        raise
    seconds = time.perf_counter() - started
    if known:
        _record(name, view, "FAIL", "listed in KNOWN_ISSUES but works now", seconds)
        pytest.fail(f"{name} × {view} works now: remove it from KNOWN_ISSUES (and the ✗).")
    _record(name, view, "✓", "", seconds)


# --------------------------------------------------------------------------------------------
# model shapes: what the matrix cells cannot say on their own
# --------------------------------------------------------------------------------------------
def test_multi_output_needs_output_with_a_clear_error(models_dir):
    from cnnviz_widgets.errors import ModelError
    from cnnviz_widgets.explain import grad_cam, predict_top, saliency

    case = _build("multi-output", models_dir)
    text = (
        r"Model 'two_heads' has 2 outputs \(0: 'box' \(4,\), 1: 'classes' \(10,\)\)\. Choose the "
        r"class scores with output=<index or name>\."
    )
    for view in (predict_top, grad_cam, saliency):
        with pytest.raises(ModelError, match=text):
            view(case.model, case.image)
    with pytest.raises(
        ModelError, match=r"No output 'scores'; the model's outputs are \['box', 'classes'\]"
    ):
        grad_cam(case.model, case.image, output="scores")
    by_name = grad_cam(case.model, case.image, 3, output="classes")
    np.testing.assert_array_equal(by_name, grad_cam(case.model, case.image, 3, output=1))


def test_inactive_augmentation_is_deterministic_and_passes_its_input_through(models_dir):
    from cnnviz_widgets.engine.adapter import activations
    from cnnviz_widgets.explain import grad_cam

    case = _build("augmentation", models_dir)
    model, image = case.model, case.image
    for layer in ("flip", "rotate", "conv1", "conv3"):
        first = activations(model, image, layer)
        np.testing.assert_array_equal(activations(model, image.copy(), layer), first)
    # Inference mode: flip and rotation hand on the rescaled image, unchanged.
    rescaled = activations(model, image, "scale")
    np.testing.assert_allclose(rescaled, image.astype(np.float32) / 255.0, atol=1e-6)
    np.testing.assert_array_equal(activations(model, image, "flip"), rescaled)
    np.testing.assert_array_equal(activations(model, image, "rotate"), rescaled)
    heat = grad_cam(model, image, 2)
    np.testing.assert_array_equal(grad_cam(model, image.copy(), 2), heat)
    # The same layers in training mode do augment (so the views above really chose inference).
    import keras

    rotate = keras.Model(model.inputs[0], model.get_layer("rotate").output)
    trained = np.asarray(rotate(_batch(case, model), training=True))[0]
    assert np.abs(trained - rescaled).max() > 0.1


@pytest.mark.parametrize("extension", ["keras", "h5"])
def test_loaded_model_gives_the_views_of_the_original(extension, models_dir):
    from cnnviz_widgets.ascent import filter_ascent
    from cnnviz_widgets.engine.adapter import activations, adapter_for
    from cnnviz_widgets.explain import deconvnet, grad_cam, saliency

    case = _build(f"saved-{extension}", models_dir)
    loaded, original, image = case.model, case.extra["original"], case.image
    assert loaded is not original
    assert adapter_for(loaded).layer_paths == adapter_for(original).layer_paths
    layer = "vgg16/block3_conv2"
    np.testing.assert_array_equal(
        activations(loaded, image, layer), activations(original, image, layer)
    )
    for method in ("gradcam", "layercam"):
        np.testing.assert_allclose(
            grad_cam(loaded, image, 4, method=method), grad_cam(original, image, 4, method=method),
            atol=1e-6,
        )  # fmt: skip
    np.testing.assert_allclose(saliency(loaded, image, 4), saliency(original, image, 4), atol=1e-6)
    np.testing.assert_allclose(
        deconvnet(loaded, image, layer, 3), deconvnet(original, image, layer, 3), atol=1e-6
    )
    ascent = {"size": 32, "steps": 2, "cache": False}
    np.testing.assert_array_equal(
        filter_ascent(loaded, layer, [0, 5], **ascent),
        filter_ascent(original, layer, [0, 5], **ascent),
    )


def test_mixed_float16_policy_was_restored(models_dir):
    import keras

    from cnnviz_widgets.engine.adapter import activations

    case = _build("mixed_float16", models_dir)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert case.model.get_layer("last_conv").compute_dtype == "float16"
    assert activations(case.model, case.image, "last_conv").dtype == np.float32


def test_subclassed_model_error_names_the_fix(models_dir):
    from cnnviz_widgets.engine.adapter import ModelAdapter, layer_paths
    from cnnviz_widgets.errors import ModelError

    case = _build("subclassed", models_dir)
    for make in (ModelAdapter, layer_paths):
        with pytest.raises(ModelError, match=_SUBCLASSED_TEXT):
            make(case.model)
