"""The traced functions of an ascent: one Adam step on a batch, and variables -> images.

Both are compiled once per graph-changing setting through
:func:`cnnviz_widgets.engine.backend.compile` and kept by the adapter (``adapter.traced``), so
new channels, batch sizes, seeds, learning rates and penalty weights never retrace.

**Pre-ReLU targets**: for a layer that ends in a ReLU, the objective reads the ReLU's input
(for ReLU6, capped at 6 plus a little beyond; see :class:`_ReluRecorder`), so channels that
are silent on the grey starting image still get a gradient (Olah et al., "Feature
Visualization", Distill 2017).

TensorFlow is imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import functools
from typing import Any

from ..engine import backend
from ..engine.adapter import ModelAdapter
from ..errors import CnnVizError, ModelError
from ..i18n import gettext_ as _
from .objectives import Structure, evaluate
from .param import param_shape, to_image
from .settings import Settings

__all__ = ["call_step", "canvas", "render_function", "step_function"]

#: Weight of the uncapped pre-activation in the surrogate for a ReLU6 output (see below).
_BEYOND_CAP_WEIGHT = 0.1

#: Adam's constants (Kingma and Ba, 2015).
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def _model_input(adapter: ModelAdapter, images: Any) -> Any:
    """[0, 1] images -> what the model takes: 0–255 pixels, then the adapter's preprocess."""
    tf = backend.tensorflow()

    batch = images * 255.0
    if adapter.preprocess is not None:
        try:
            batch = tf.cast(adapter.preprocess(batch), tf.float32)
        except Exception as exc:
            raise ModelError(
                _(
                    "The preprocess function {function!r} failed on a TensorFlow tensor "
                    "({kind}: {error}). Filter ascent needs gradients through it, so it must use "
                    "TensorFlow or keras.ops operations (keras.applications' preprocess_input "
                    "functions do); rewrite it with keras.ops, or fold it into the model as a "
                    "layer."
                ).format(function=adapter.preprocess, kind=type(exc).__name__, error=exc)
            ) from exc
    return batch


class _ReluRecorder:
    """A ReLU rule for ``adapter.forward`` that remembers each ReLU's input.

    Forward values are exactly the model's. Afterwards, :meth:`surrogate` turns a requested
    output that came straight out of a ReLU into what the objective maximises instead, because
    through the ReLU itself a channel that is silent on the grey starting image gets no
    gradient and stays grey:

    - plain ReLU: its input, the "pre-ReLU" target of the Distill article;
    - capped ReLU (ReLU6): ``min(x, cap) + 0.1 * x``. The first term rewards every unit only up
      to the cap, so the visible (capped) activation rises across the whole map instead of a
      few units being pushed ever higher; the small second term keeps a gradient once units
      saturate, so the picture goes on sharpening instead of freezing half-formed.
    """

    def __init__(self) -> None:
        self._inputs: dict[int, tuple[Any, Any, float | None]] = {}

    def __call__(self, x: Any, max_value: float | None) -> Any:
        tf = backend.tensorflow()

        # The fused Relu / Relu6 kernels: a clip_by_value here would cost a third of a step
        # (grappler cannot fuse it into the convolution, and its gradient is slower).
        if max_value is None:
            y = tf.nn.relu(x)
        elif max_value == 6.0:
            y = tf.nn.relu6(x)
        else:
            y = tf.minimum(tf.nn.relu(x), max_value)
        self._inputs[id(y)] = (y, x, max_value)  # y kept alive so its id stays unique
        return y

    def surrogate(self, value: Any) -> Any:
        tf = backend.tensorflow()

        found = self._inputs.get(id(value))
        if found is None or found[0] is not value:
            return value
        _, x, cap = found
        if cap is None:
            return x
        return tf.minimum(x, cap) + _BEYOND_CAP_WEIGHT * x


class _EmptyMap(Exception):
    """A layer's feature map is empty at the canvas size (raised while tracing)."""


def _forward(
    adapter: ModelAdapter,
    structure: Structure,
    images: Any,
    transforms: Any,
    canvas_shape: Any,
    pre_relu: bool = False,
) -> tuple[dict[str, Any], Any]:
    """Transform, feed the model; return (features by path, logits or None)."""
    tf = backend.tensorflow()

    if transforms is None:
        warped = images
    else:
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=transforms,
            output_shape=tf.constant(canvas_shape, tf.int32),
            fill_value=0.5,  # a grey border: the image floats in a neutral surround
            interpolation="BILINEAR",
            fill_mode="CONSTANT",
        )
    channels = adapter.input_shape[2]
    if channels == 1 and warped.shape[-1] == 3:
        warped = tf.reduce_mean(warped, axis=-1, keepdims=True)
    paths = tuple(dict.fromkeys(layer for _, _, layer in structure if layer is not None))
    logits_needed = any(kind == "class_logit" for _, kind, _ in structure)
    recorder = _ReluRecorder() if pre_relu else None
    outputs, logits = adapter.forward(
        _model_input(adapter, warped), paths, logits=logits_needed, relu=recorder
    )
    if recorder is not None:
        outputs = [recorder.surrogate(value) for value in outputs]
    features = dict(zip(paths, outputs, strict=True))
    for path, value in features.items():
        if 0 in tuple(value.shape[1:3]):
            raise _EmptyMap(path)
    return features, logits


def canvas(adapter: ModelAdapter, settings: Settings) -> tuple[int, int]:
    """(height, width) the model sees: the image's own size, or the model's fixed input size.

    No extra border is added around the image (the Lucid recipe pads first): the random shift
    brings grey in at the edges anyway, and the model then runs at exactly ``size``, as cheap
    as a bare ascent step.
    """
    h, w, _ = adapter.input_shape
    return (settings.size if h is None else int(h), settings.size if w is None else int(w))


def step_function(
    adapter: ModelAdapter, structure: Structure, settings: Settings, planes: int
) -> Any:
    """One Adam step on a batch, traced once per graph-changing setting and kept.

    The returned function takes ``(params, m, v, t, indices, transforms, hyper)``: variables
    and Adam's two moments, float32 (N, *param_shape); the step number t ≥ 1, float32 ();
    the objectives' indices, int32 (N, terms); the transforms, float32 (N, 8); and
    ``[lr, tv, l2]``, float32 (3,). It returns the new ``(params, m, v)``.
    """
    shape_of_canvas = canvas(adapter, settings)
    # A penalty switched off (weight 0) is left out of the graph: it is not free to compute.
    penalties = (settings.tv > 0, settings.l2 > 0)
    key = (
        "filter_ascent.step",
        structure,
        settings.size,
        settings.param,
        settings.decorrelate,
        planes,
        shape_of_canvas,
        penalties,
    )

    def build() -> Any:
        tf = backend.tensorflow()
        use_tv, use_l2 = penalties

        def step(params, m, v, t, indices, transforms, hyper):
            lr, tv, l2 = hyper[0], hyper[1], hyper[2]
            with tf.GradientTape() as tape:
                tape.watch(params)
                images = to_image(params, settings, planes)
                features, logits = _forward(
                    adapter, structure, images, transforms, shape_of_canvas, pre_relu=True
                )
                # Images are independent (inference mode), so one summed loss gives each image
                # exactly its own gradient.
                loss = -tf.reduce_sum(evaluate(structure, features, logits, indices))
                if use_tv:
                    # Mean absolute difference to the next pixel down and across, size
                    # independent. Circular (tf.roll) differences: slicing would cost four
                    # times as much to differentiate, and the one extra wrap-around pair per
                    # row and column changes nothing visible.
                    dy = tf.abs(images - tf.roll(images, 1, axis=1))
                    dx = tf.abs(images - tf.roll(images, 1, axis=2))
                    loss += tv * tf.reduce_sum(tf.reduce_mean(dx + dy, axis=(1, 2, 3)))
                if use_l2:
                    # Mean squared distance from grey.
                    spread = tf.reduce_mean(tf.square(images - 0.5), axis=(1, 2, 3))
                    loss += l2 * tf.reduce_sum(spread)
            grad = tape.gradient(loss, params)
            # Adam, written out rather than a keras.optimizers.Adam, for two reasons. Its whole
            # state is plain tensors passed in and out, so one trace serves every batch size
            # (an optimizer keeps tf.Variables of a fixed shape: one set per chunk size, and
            # slot variables to create and reset per request). And keras' Adam places epsilon
            # differently, so switching would change every image's bits, and so every cached
            # image on disk (ALGORITHM_VERSION would have to change). Not re-measured in this
            # refactor: kept as it was.
            m = _BETA1 * m + (1 - _BETA1) * grad
            v = _BETA2 * v + (1 - _BETA2) * tf.square(grad)
            # Bias corrections folded into the step size: two scalars instead of two divisions
            # of the whole state (the usual rearrangement; eps is scaled to match).
            correction = tf.sqrt(1 - tf.pow(_BETA2, t))
            step_size = lr * correction / (1 - tf.pow(_BETA1, t))
            params = params - step_size * m / (tf.sqrt(v) + _EPS * correction)
            return params, m, v

        spec = tf.TensorSpec((None, *param_shape(settings, planes)), tf.float32)
        signature = [
            spec,
            spec,
            spec,
            tf.TensorSpec((), tf.float32),
            tf.TensorSpec((None, len(structure)), tf.int32),
            tf.TensorSpec((None, 8), tf.float32),
            tf.TensorSpec((3,), tf.float32),
        ]
        return backend.compile(step, signature)

    return adapter.traced(key, build)


def render_function(adapter: ModelAdapter, settings: Settings, planes: int) -> Any:
    """Variables -> images (:func:`~.param.to_image`), traced once per parametrisation.

    Kept out of the step: images are needed every ``every`` steps, not every step.
    """
    key = ("filter_ascent.render", settings.size, settings.param, settings.decorrelate, planes)

    def build() -> Any:
        tf = backend.tensorflow()
        spec = tf.TensorSpec((None, *param_shape(settings, planes)), tf.float32)
        return backend.compile(
            functools.partial(to_image, settings=settings, planes=planes), [spec]
        )

    return adapter.traced(key, build)


def _minimum_size(adapter: ModelAdapter, structure: Structure, settings: Settings) -> int | None:
    """The smallest ``size`` at which the objective's layers have a non-empty map (or None)."""
    tf = backend.tensorflow()

    def works(size: int) -> bool:
        shape = canvas(adapter, settings.replace(size=size))

        def probe(images):
            _forward(adapter, structure, images, None, None)
            return tf.zeros(())

        spec = tf.TensorSpec((1, shape[0], shape[1], 3), tf.float32)
        try:
            backend.compile(probe, [spec]).get_concrete_function()
        except Exception:
            return False
        return True

    high = max(settings.size, 8)
    while not works(high):
        high *= 2
        if high > 2048:
            return None  # not a size problem (or a model nobody can run here anyway)
    low = max(8, settings.size)
    if works(low):
        return None  # the failure was not about size
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if works(mid) else (mid, high)
    return high


def call_step(
    adapter: ModelAdapter, structure: Structure, settings: Settings, planes: int, args: tuple
) -> Any:
    """Run one step; a size too small for the layer becomes an error that says the minimum.

    Raises
    ------
    CnnVizError
        "size=10 is too small for layer 'deep' ...: Use size ≥ 14." when the network
        downsamples the canvas to an empty feature map.
    """
    step = step_function(adapter, structure, settings, planes)
    try:
        return step(*args)
    except _EmptyMap as exc:
        failure: Exception = exc
    except CnnVizError:
        raise  # already says what is wrong and how to fix it
    except Exception as exc:
        if backend.trace_count(step) > 0:
            raise  # a traced function failing at run time is not a size problem
        failure = exc
    minimum = _minimum_size(adapter, structure, settings)
    layers = ", ".join(repr(p) for p in dict.fromkeys(s[2] for s in structure if s[2]))
    what = _("layer {layers}").format(layers=layers) if layers else _("the model's head")
    if minimum is None:
        raise failure
    height, width = canvas(adapter, settings)
    raise CnnVizError(
        _(
            "size={size} is too small for {what} of model {name!r}: the network downsamples a "
            "{height}×{width} input to an empty feature map. Use size ≥ {minimum}."
        ).format(
            size=settings.size,
            what=what,
            name=adapter.model.name,
            height=height,
            width=width,
            minimum=minimum,
        )
    ) from (None if isinstance(failure, _EmptyMap) else failure)
