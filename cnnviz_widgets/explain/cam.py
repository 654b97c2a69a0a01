"""Why did the network say "cat"? Class activation maps, gradient saliency and deconvnet.

Every view here answers the question for one image and one class (or one channel), on any Keras 3
CNN the :class:`~cnnviz_widgets.model_adapter.ModelAdapter` can read, nested sub-models included:

* :func:`predict_top` — the classes the model ranks highest, with probabilities;
* :func:`grad_cam` — where in the image the evidence for a class lies: Grad-CAM (Selvaraju et
  al. 2017), Grad-CAM++ (Chattopadhay et al. 2018), Score-CAM (Wang et al. 2020) and LayerCAM
  (Jiang et al. 2021);
* :func:`saliency` — which pixels the class score is most sensitive to: vanilla gradients
  (Simonyan et al. 2014), SmoothGrad (Smilkov et al. 2017), guided backpropagation (Springenberg
  et al. 2015) and guided Grad-CAM;
* :func:`deconvnet` — what one channel of one layer responds to, projected back to pixels
  (Zeiler & Fergus 2014); :func:`normalize_signed` turns such signed arrays into pictures.

Gradients are always taken of the **logits** (the scores before the head's softmax or sigmoid,
which the adapter leaves out on the fly): after a saturated softmax they would all but vanish.
Maps come back at the resolution of the image *as the caller gave it*, covering the whole image,
so they can be laid over it directly.

Each view runs as one ``tf.function`` kept by the adapter per (layer, method, output), with the
image batch and the class index as tensor arguments: new images, new classes and (for models
that take any size) new image sizes reuse the traced graph instead of retracing.

TensorFlow is imported inside the functions only, so importing this module stays cheap.

Examples
--------
>>> import cnnviz_widgets as cv
>>> from cnnviz_widgets.class_activation import grad_cam, predict_top
>>> model, cat = cv.load_default_model(), cv.sample_image("chelsea")
>>> predict_top(model, cat, k=1)                        # doctest: +SKIP
[(285, 'Egyptian cat', 0.468...)]
>>> grad_cam(model, cat).shape                          # same size as the photo
(300, 451)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.adapter import ModelAdapter, Preprocess, adapter_for
from ..errors import CnnVizError, LayerError, close_matches
from ..images import resize_image

__all__ = [
    "CAM_METHODS",
    "SALIENCY_METHODS",
    "deconvnet",
    "deconvnet_relu",
    "default_cam_layer",
    "grad_cam",
    "guided_relu",
    "normalize_signed",
    "predict_top",
    "saliency",
]

#: Methods of :func:`grad_cam`.
CAM_METHODS = ("gradcam", "gradcam++", "scorecam", "layercam")
#: Methods of :func:`saliency`.
SALIENCY_METHODS = ("vanilla", "smoothgrad", "guided_backprop", "guided_gradcam")

#: Score-CAM runs one forward pass per channel; a 1280-channel layer would take ~10 s on a laptop
#: CPU. By default the channels whose maps vary most over the image are kept (a flat map masks
#: the image uniformly and says nothing about *where*), as in "Faster Score-CAM".
SCORECAM_CHANNELS = 128
#: Masked (Score-CAM) or noisy (SmoothGrad) copies of the image sent through the model per call:
#: large enough to keep both CPU cores busy, small enough for the activation memory of a 224 px
#: EfficientNet to stay in the hundreds of MB.
SCORECAM_BATCH = 32
SMOOTHGRAD_BATCH = 16

# Keys of this module's entries in ModelAdapter.traced (shared with any other user of the adapter).
_KEY = "class_activation"


# --------------------------------------------------------------------------------------------
# validation and bookkeeping (plain Python; cached on the adapter where it costs anything)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Head:
    """The class-score output chosen by ``output=``: its layer, class count and activation."""

    index: int  # the output's position, as forward(output=) takes it
    name: str
    classes: int | None
    activation: str  # "softmax" or "sigmoid"


def _adapter(model: Any, preprocess: Preprocess | None) -> ModelAdapter:
    if isinstance(model, ModelAdapter):
        if preprocess is not None and preprocess is not model.preprocess:
            raise CnnVizError(
                "preprocess= was given together with a ModelAdapter, which has its own "
                "preprocessing. Pass it when making the adapter: ModelAdapter(model, "
                "preprocess=...), or pass the Keras model here instead of the adapter."
            )
        return model
    return adapter_for(model, preprocess=preprocess)


def _head(adapter: ModelAdapter, output: int | str | None) -> _Head:
    """Check the class output once per adapter and output (raises the adapter's ModelError)."""

    def build() -> _Head:
        # head_activation() finds the head exactly as forward() will, and raises the clear
        # error for several outputs without output=, or an output that is no class vector.
        activation = adapter.head_activation(output)
        names = adapter.output_names
        if output is None:
            index = 0
        elif isinstance(output, str):
            index = next(i for i, n in enumerate(names) if output in (n, n.rsplit("/", 1)[-1]))
        else:
            index = int(output)
        classes = adapter.layer_info(names[index]).output_shape[-1]
        return _Head(index, names[index], classes, activation)

    if isinstance(output, np.integer):
        output = int(output)
    if not isinstance(output, (int, str, type(None))) or isinstance(output, bool):
        raise CnnVizError(
            f"output must be an output index (int) or name (str), or None; got {output!r}."
        )
    return adapter.traced((_KEY, "head", output), build)


def _class_index(class_index: Any, head: _Head) -> int:
    """The class as an int, -1 for "the top class" (resolved inside the traced function)."""
    if class_index is None:
        return -1
    if isinstance(class_index, (bool, np.bool_)) or not isinstance(class_index, (int, np.integer)):
        raise CnnVizError(
            f"class_index must be an int (a class number) or None for the top class; got "
            f"{class_index!r} of type {type(class_index).__name__}."
        )
    index = int(class_index)
    n = head.classes
    if index < 0 or (n is not None and index >= n):
        range_text = f"the model has {n} classes (0–{n - 1})" if n is not None else "it is < 0"
        raise CnnVizError(
            f"class_index {index} is out of range: {range_text}. Pass a class number in that "
            "range, or class_index=None for the top class (see predict_top)."
        )
    return index


def _check_method(method: Any, methods: Sequence[str], function: str) -> str:
    if method not in methods:
        matches = close_matches(str(method).lower(), methods) if isinstance(method, str) else []
        hint = f" Did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""
        raise CnnVizError(
            f"Unknown {function} method {method!r}.{hint} Choose one of "
            f"{', '.join(repr(m) for m in methods)}."
        )
    return method


def _spatial_size(adapter: ModelAdapter, path: str) -> tuple[int | None, int | None]:
    shape = adapter.layer_info(path).output_shape
    return (shape[0], shape[1])


def _is_flat(size: tuple[int | None, int | None]) -> bool:
    """True for a 1×1 map (after global pooling with keepdims): it cannot show *where*."""
    return size[0] == 1 and size[1] == 1


def default_cam_layer(model: Any, *, preprocess: Preprocess | None = None) -> str:
    """The layer :func:`grad_cam` explains by default: the deepest one with a spatial map.

    Layers whose output is 1×1 (a global pooling kept as a 4-D tensor) are skipped: a class map
    drawn from them would be a single flat value. Nested sub-models are looked through, so for
    the default model this is ``"backbone/top_activation"``.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
    preprocess : callable, optional
        As for :func:`grad_cam` (selects the shared adapter).

    Returns
    -------
    str
        A layer path.

    Raises
    ------
    LayerError
        If no layer has a spatial output larger than 1×1.

    Examples
    --------
    >>> default_cam_layer(cv.load_default_model())      # doctest: +SKIP
    'backbone/top_activation'
    """
    adapter = _adapter(model, preprocess)
    return _default_layer(adapter)


def _default_layer(adapter: ModelAdapter) -> str:
    def build() -> str:
        for path in reversed(adapter.layer_paths):
            if not _is_flat(_spatial_size(adapter, path)):
                return path
        raise LayerError(
            f"Model {adapter.model.name!r} has no layer with a spatial (height × width > 1) "
            "feature map, so there is no map of *where* to draw. Class activation maps need a "
            "convolutional network; use saliency(model, image) for a pixel-level view instead."
        )

    return adapter.traced((_KEY, "default_layer"), build)


def _cam_layer(adapter: ModelAdapter, layer: str | None) -> str:
    """Resolve ``layer`` to a path with a spatial map larger than 1×1, or say which to use."""
    if layer is None:
        return _default_layer(adapter)
    path = adapter.resolve_layer(layer, spatial=False)  # unknown names: LayerError with matches
    info = adapter.layer_info(path)
    if info.spatial and not _is_flat(_spatial_size(adapter, path)):
        return path
    suggestion = _default_layer(adapter)
    why = (
        "a 1×1 spatial map (typically after global pooling)"
        if info.spatial
        else f"output shape {info.output_shape}: no spatial map left (it comes after global "
        "pooling or flattening)"
    )
    raise LayerError(
        f"Layer {path!r} ({info.class_name}) has {why}, so a class activation map cannot show "
        f"where the evidence lies. Pick a convolutional layer before the pooling, e.g. the "
        f"deepest one with a spatial map: {suggestion!r}."
    )


def _to_unit(heatmap: np.ndarray) -> np.ndarray:
    """Scale a non-negative map so that its maximum is 1 (an all-zero map stays zero)."""
    heatmap = np.nan_to_num(heatmap, nan=0.0, posinf=0.0, neginf=0.0)
    np.maximum(heatmap, 0.0, out=heatmap)  # bilinear resampling can undershoot a little
    peak = float(heatmap.max())
    if peak > 0.0:
        heatmap *= np.float32(1.0 / peak)
    return np.clip(heatmap, 0.0, 1.0, out=heatmap).astype(np.float32, copy=False)


def _to_size(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return resize_image(array, size) if array.shape[:2] != tuple(size) else array


# --------------------------------------------------------------------------------------------
# TensorFlow pieces (only ever called while a tf.function traces)
# --------------------------------------------------------------------------------------------
def _pick_class(logits: Any, class_index: Any) -> Any:
    """Per example: ``class_index``, or the top class when it is negative. Shape (N,) int32."""
    import tensorflow as tf

    top = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(class_index < 0, top, tf.fill(tf.shape(top), class_index))


def _score(logits: Any, target: Any) -> Any:
    """The logit of each example's target class, (N,)."""
    import tensorflow as tf

    return tf.gather(logits, target, axis=1, batch_dims=1)


def _probabilities(logits: Any, activation: str) -> Any:
    import tensorflow as tf

    return tf.sigmoid(logits) if activation == "sigmoid" else tf.nn.softmax(logits, axis=-1)


def _no_gradient(adapter: ModelAdapter, path: str, head: _Head, batch: Any) -> LayerError:
    """The error for a layer the class scores do not depend on, naming one they do depend on.

    Called while tracing, so finding the layers that feed the head costs graph building only
    (the trace is abandoned by the error, nothing runs).
    """
    import tensorflow as tf

    candidates = [p for p in adapter.layer_paths if not _is_flat(_spatial_size(adapter, p))]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        features, logits = adapter.forward(
            batch, candidates, logits=True, output=head.index, watch=tape.watch
        )
        total = tf.reduce_sum(logits)
    grads = tape.gradient(total, features)
    feeding = [p for p, g in zip(candidates, grads, strict=True) if g is not None]
    hint = (
        f"Pick a layer on the way to that output, e.g. {feeding[-1]!r} (the deepest one)."
        if feeding
        else "None of its layers with a spatial map feeds that output."
    )
    return LayerError(
        f"The class scores of output {head.name!r} do not depend on layer {path!r}, so it "
        f"cannot explain them. {hint} Pass it as layer=, or choose another output with output=."
    )


def _function(fn: Callable[..., Any], signature: list[Any]) -> Any:
    """``tf.function`` with a fixed signature: every image size, class and seed, one trace.

    AutoGraph is off: the loops that run per call are explicit ``tf.while_loop``/``tf.map_fn``,
    Python loops over layers must stay Python, and our errors raised while tracing (a layer that
    does not feed the head) then reach the caller as they are, not wrapped in a StagingError.
    """
    import tensorflow as tf

    function = tf.function(fn, input_signature=signature, autograph=False)
    # TF's "frequent retracing" warning groups tf.functions by their Python code, so the
    # functions made for different layers and methods (each traced once) would look like one
    # function retracing when a user switches layers a few times. Each of ours traces once.
    function._omit_frequent_tracing_warning = True
    return function


def _relu_value(x: Any, max_value: float | None) -> Any:
    import tensorflow as tf

    y = tf.nn.relu(x)
    return y if max_value is None else tf.minimum(y, tf.cast(max_value, y.dtype))


def guided_relu(x: Any, max_value: float | None = None) -> Any:
    """ReLU (or ReLU6) whose backward pass is guided backpropagation's.

    Springenberg et al. (2015): the gradient goes back only where the forward input was positive
    (the ordinary ReLU gradient) **and** the incoming gradient is positive (the deconvnet part),
    so only evidence *for* the output survives. For ReLU6 also only where the input is below 6,
    where the ordinary gradient of the cap is zero too. Pass it as ``relu=`` to
    :meth:`ModelAdapter.forward`.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def rule(x: Any) -> Any:
        def backward(dy: Any) -> Any:
            # relu(dy) keeps the positive incoming gradient; ReluGrad / Relu6Grad then pass it
            # where 0 < x (< 6): TF's own fused kernels, one pass each over the tensor.
            if max_value is None:
                return tf.raw_ops.ReluGrad(gradients=tf.nn.relu(dy), features=x)
            if float(max_value) == 6.0:
                return tf.raw_ops.Relu6Grad(gradients=tf.nn.relu(dy), features=x)
            passes = tf.logical_and(x > 0, x < tf.cast(max_value, x.dtype))
            return tf.where(passes, tf.nn.relu(dy), tf.zeros_like(dy))

        return _relu_value(x, max_value), backward

    return rule(x)


def deconvnet_relu(x: Any, max_value: float | None = None) -> Any:
    """ReLU (or ReLU6) whose backward pass is Zeiler & Fergus's deconvnet rectification.

    The deconvnet reconstructs with the *signal coming back* rectified, whatever the forward
    pass did: ``g_out = relu(g_in)``. The forward sign is ignored (and so is the ReLU6 cap).
    """
    import tensorflow as tf

    @tf.custom_gradient
    def rule(x: Any) -> Any:
        def backward(dy: Any) -> Any:
            return tf.nn.relu(dy)

        return _relu_value(x, max_value), backward

    return rule(x)


def _cam_from(features: Any, grads: Any, method: str) -> Any:
    """Combine feature maps (N, h, w, K) and the class-score gradients into maps (N, h, w)."""
    import tensorflow as tf

    if method == "gradcam":
        # Channel weight: the gradient averaged over positions (global-average-pooled).
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
    if method == "layercam":
        # Weight every position by its own positive gradient: fine detail, and a region whose
        # activations cannot reach the score gets nothing at all.
        return tf.nn.relu(tf.reduce_sum(tf.nn.relu(grads) * features, axis=-1))
    if method == "gradcam++":
        # Chattopadhay et al., eq. 19 with the exponential trick: for Y = exp(S) the 2nd and 3rd
        # derivatives of Y are exp(S)·g² and exp(S)·g³, and exp(S) cancels in alpha (and is a
        # common positive factor in the weights, which normalisation removes).
        g2 = tf.square(grads)
        g3 = g2 * grads
        total = tf.reduce_sum(features, axis=(1, 2), keepdims=True)
        denominator = 2.0 * g2 + total * g3
        alpha = tf.math.divide_no_nan(g2, denominator)
        weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
    raise AssertionError(method)  # pragma: no cover


def _build_gradient_cam(adapter: ModelAdapter, path: str, method: str, head: _Head) -> Any:
    import tensorflow as tf

    output = head.index

    def cam(batch: Any, class_index: Any) -> tuple[Any, Any]:
        # Only the ops after the feature map are recorded: the backward pass stops there.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            (features,), logits = adapter.forward(
                batch, [path], logits=True, output=output, watch=tape.watch
            )
            target = _pick_class(logits, class_index)
            score = _score(logits, target)
        grads = tape.gradient(score, features)
        if grads is None:
            raise _no_gradient(adapter, path, head, batch)
        # Mixed precision computes the features (and so their gradients) in float16.
        features = tf.cast(features, tf.float32)
        grads = tf.cast(grads, tf.float32)
        return _cam_from(features, grads, method), target

    return _function(cam, [adapter.input_spec(), tf.TensorSpec((), tf.int32)])


def _build_score_cam(
    adapter: ModelAdapter, path: str, head: _Head, max_channels: int | None, batch_size: int
) -> Any:
    import tensorflow as tf

    output = head.index
    channels = adapter.layer_info(path).channels
    if channels is None:
        raise LayerError(
            f"Layer {path!r} has an unknown number of channels; Score-CAM needs it. Pick "
            f"another layer, e.g. {_default_layer(adapter)!r}."
        )
    kept = channels if max_channels is None else min(channels, max_channels)
    # Equal chunks (e.g. 100 masks → 4 × 25, not 3 × 32 + 4) so that one traced loop body fits
    # all, with at most chunks-1 padding masks.
    chunks = math.ceil(kept / batch_size)
    per_chunk = math.ceil(kept / chunks)
    padded = chunks * per_chunk

    def probability(inputs: Any, target: Any) -> Any:
        _, logits = adapter.forward(inputs, logits=True, output=output)
        return tf.gather(_probabilities(logits, head.activation), target, axis=1)

    def cam(batch: Any, class_index: Any) -> tuple[Any, Any]:
        batch = batch[:1]  # one image: the masked copies are the batch
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            (features,), logits = adapter.forward(
                batch, [path], logits=True, output=output, watch=tape.watch
            )
        # Only a trace-time check that the layer feeds the head: the gradient is never used,
        # so tf.function prunes it from the graph.
        if tape.gradient(logits, features) is None:
            raise _no_gradient(adapter, path, head, batch)
        target = _pick_class(logits, class_index)
        maps = tf.cast(features[0], tf.float32)  # (h, w, K)
        if kept < channels:
            spread = tf.math.reduce_std(maps, axis=(0, 1))
            maps = tf.gather(maps, tf.math.top_k(spread, k=kept).indices, axis=-1)
        # (chunks, per_chunk, h, w, 1): one mask per channel; zero maps pad the last chunk.
        stacked = tf.transpose(maps, (2, 0, 1))[..., tf.newaxis]
        stacked = tf.pad(stacked, [[0, padded - kept], [0, 0], [0, 0], [0, 0]])
        stacked = tf.reshape(stacked, tf.concat([[chunks, per_chunk], tf.shape(stacked)[1:]], 0))
        size = tf.shape(batch)[1:3]

        def masked_scores(chunk: Any) -> Any:
            # Bilinear upsampling to the model input (the same half-pixel-centre bilinear
            # resize_image uses when enlarging; PIL cannot run inside the graph).
            upsampled = tf.image.resize(chunk, size, method="bilinear")
            low = tf.reduce_min(upsampled, axis=(1, 2, 3), keepdims=True)
            high = tf.reduce_max(upsampled, axis=(1, 2, 3), keepdims=True)
            masks = tf.math.divide_no_nan(upsampled - low, high - low)  # each in [0, 1]
            # Masks multiply the model input (after any preprocess=), so a masked-out pixel is
            # whatever 0 means to the model: black for raw pixels, the mean for centred inputs.
            return probability(batch * masks, target)[:, 0]

        scores = tf.map_fn(
            masked_scores,
            stacked,
            fn_output_signature=tf.TensorSpec((per_chunk,), tf.float32),
            parallel_iterations=1,  # one chunk in memory at a time
        )
        scores = tf.reshape(scores, (-1,))[:kept]
        # Wang et al.: the channel's weight is the increase in the class's probability over
        # the baseline input (everything masked out).
        baseline = probability(tf.zeros_like(batch), target)[0, 0]
        weights = scores - baseline
        return tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))[tf.newaxis], target

    return _function(cam, [adapter.input_spec(), tf.TensorSpec((), tf.int32)])


def _cam_function(
    adapter: ModelAdapter,
    path: str,
    method: str,
    head: _Head,
    max_channels: int | None = None,
    batch_size: int = SCORECAM_BATCH,
) -> Any:
    """The traced map function for (layer, method, output), made once per adapter."""
    if method == "scorecam":
        key = (_KEY, "cam", path, method, head.index, max_channels, batch_size)
        return adapter.traced(
            key, lambda: _build_score_cam(adapter, path, head, max_channels, batch_size)
        )
    key = (_KEY, "cam", path, method, head.index)
    return adapter.traced(key, lambda: _build_gradient_cam(adapter, path, method, head))


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------
def predict_top(
    model: Any,
    image: Any,
    k: int = 5,
    labels: Sequence[str] | None = None,
    *,
    output: int | str | None = None,
    preprocess: Preprocess | None = None,
) -> list[tuple[int, str, float]]:
    """The ``k`` classes the model ranks highest for ``image``, with their probabilities.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
        A classifier. Its head may output logits or probabilities: probabilities are always
        computed from the logits with the head's own softmax (or sigmoid for multi-label heads;
        a head without either is read as logits for a softmax).
    image : array, path or PIL image
        Anything :func:`cnnviz_widgets.load_image` accepts.
    k : int
        How many classes, 1 to the number of classes.
    labels : sequence of str, optional
        Class names by index. By default the ImageNet-1k names for a 1000-class head, else
        ``"class 7"``.
    output : int or str, optional
        Which output is the class head, for models with several outputs.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see :class:`ModelAdapter`).

    Returns
    -------
    list of (int, str, float)
        ``(class index, label, probability)``, most probable first.

    Examples
    --------
    >>> predict_top(cv.load_default_model(), cv.sample_image("chelsea"), k=2)  # doctest: +SKIP
    [(285, 'Egyptian cat', 0.468...), (282, 'tiger cat', 0.156...)]
    """
    adapter = _adapter(model, preprocess)
    prepared = adapter.prepare(image)
    head = _head(adapter, output)
    n = head.classes
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise CnnVizError(f"k must be an int (how many classes to list); got {k!r}.")
    if n is not None and not 1 <= int(k) <= n:
        raise CnnVizError(
            f"k={int(k)} is out of range: the model has {n} classes, so k must be 1–{n}."
        )
    names = _labels(labels, n)

    def build() -> Any:
        key = head.index

        def probabilities(batch: Any) -> Any:
            _, logits = adapter.forward(batch, logits=True, output=key)
            return _probabilities(logits, head.activation)

        return _function(probabilities, [adapter.input_spec()])

    function = adapter.traced((_KEY, "probabilities", head.index), build)
    probs = np.asarray(function(adapter.model_input(prepared))[0], dtype=np.float64)
    top = np.argsort(-probs, kind="stable")[: int(k)]
    return [(int(i), names(int(i)), float(probs[i])) for i in top]


def _labels(labels: Sequence[str] | None, n: int | None) -> Callable[[int], str]:
    if labels is None:
        if n == 1000:
            from ..engine.models import imagenet_labels

            table = imagenet_labels()
            return table.__getitem__
        return lambda i: f"class {i}"
    table = list(labels)
    if n is not None and len(table) != n:
        raise CnnVizError(
            f"labels has {len(table)} names but the model has {n} classes. Pass one name per "
            "class, in class-index order (or labels=None for 'class <i>')."
        )
    return lambda i: str(table[i])


def grad_cam(
    model: Any,
    image: Any,
    class_index: int | None = None,
    *,
    layer: str | None = None,
    method: str = "gradcam",
    output: int | str | None = None,
    preprocess: Preprocess | None = None,
    max_channels: int | None = SCORECAM_CHANNELS,
    batch_size: int = SCORECAM_BATCH,
) -> np.ndarray:
    """Class activation map: where in ``image`` the evidence for a class lies.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
        Any Keras 3 CNN classifier (functional, Sequential, nested sub-models, mixed precision).
    image : array, path or PIL image
        Anything :func:`cnnviz_widgets.load_image` accepts, of any size.
    class_index : int, optional
        The class to explain; ``None`` explains the model's top class.
    layer : str, optional
        The feature map to explain from (a path from ``layer_paths(model)`` or a bare layer
        name). Default: :func:`default_cam_layer`, the deepest spatial map larger than 1×1 —
        the usual choice, coarse but the most class-specific.
    method : {"gradcam", "gradcam++", "scorecam", "layercam"}
        * ``"gradcam"``: channels weighted by their average gradient, ``relu(Σ_k w_k A_k)``.
        * ``"gradcam++"``: weights from positive gradients with per-position coefficients;
          better when the class appears several times.
        * ``"layercam"``: every position weighted by its own positive gradient,
          ``relu(Σ_k relu(g_k) ⊙ A_k)``; sharper, and usable on earlier layers.
        * ``"scorecam"``: gradient-free. Each channel's map, scaled to [0, 1] and upsampled,
          masks the input; the channel's weight is how much that raises the class probability
          over an all-masked input. One forward pass per channel, run ``batch_size`` at a
          time, over at most ``max_channels`` channels.
    output : int or str, optional
        Which output is the class head, for models with several outputs.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see :class:`ModelAdapter`).
    max_channels : int or None
        Score-CAM only: explain with the ``max_channels`` channels whose maps vary most over the
        image (default 128; ``None`` = all — 1280 for EfficientNet's last layer, ~10 s on CPU).
    batch_size : int
        Score-CAM only: masked images per forward pass.

    Returns
    -------
    numpy.ndarray
        float32 ``(H, W)`` with values in [0, 1] (maximum 1, unless the map is all zero), the
        height and width of ``image`` as given: the map covers the whole image, resized from
        the layer's resolution with :func:`~cnnviz_widgets.images.resize_image`.

    Raises
    ------
    CnnVizError
        For a class index out of range or an unknown method.
    LayerError
        For an unknown layer, or one with no spatial map (after global pooling).
    ModelError
        For a model whose output is not a class vector, or several outputs without ``output=``.

    Examples
    --------
    >>> model, cat = cv.load_default_model(), cv.sample_image("chelsea")
    >>> heat = grad_cam(model, cat, 285)                    # "Egyptian cat"
    >>> heat.shape, heat.dtype, float(heat.max())           # doctest: +SKIP
    ((300, 451), dtype('float32'), 1.0)
    >>> sharper = grad_cam(model, cat, method="layercam", layer="block6a_expand_activation")
    """
    _check_method(method, CAM_METHODS, "grad_cam")
    adapter = _adapter(model, preprocess)
    prepared = adapter.prepare(image)
    head = _head(adapter, output)
    index = _class_index(class_index, head)
    path = _cam_layer(adapter, layer)
    if method == "scorecam":
        max_channels = _positive_or_none(max_channels, "max_channels")
        batch_size = _positive(batch_size, "batch_size")
    function = _cam_function(adapter, path, method, head, max_channels, batch_size)
    heatmap, _ = function(adapter.model_input(prepared), index)
    # Resize first, then scale to a maximum of 1: bilinear upsampling lowers peaks a little.
    return _to_unit(_to_size(heatmap[0].numpy(), prepared.size))


def _positive(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise CnnVizError(f"{what} must be a positive int; got {value!r}.")
    if int(value) < 1:
        raise CnnVizError(f"{what} must be at least 1; got {int(value)}.")
    return int(value)


def _positive_or_none(value: Any, what: str) -> int | None:
    return None if value is None else _positive(value, what)


def _build_saliency(
    adapter: ModelAdapter, method: str, head: _Head, batch_size: int, path: str | None
) -> Any:
    import tensorflow as tf

    output = head.index
    rule = guided_relu if method in ("guided_backprop", "guided_gradcam") else None

    def input_gradient(batch: Any, target_or_index: Any, *, pick: bool) -> tuple[Any, Any]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(batch)
            _, logits = adapter.forward(batch, logits=True, output=output, relu=rule)
            target = _pick_class(logits, target_or_index) if pick else target_or_index
            score = _score(logits, target)
        return tf.cast(tape.gradient(score, batch), tf.float32), target

    spec = [adapter.input_spec(), tf.TensorSpec((), tf.int32)]
    if method in ("vanilla", "guided_backprop"):

        def plain(batch: Any, class_index: Any) -> tuple[Any, Any]:
            return input_gradient(batch, class_index, pick=True)

        return _function(plain, spec)

    if method == "guided_gradcam":
        gradcam = _cam_function(adapter, path, "gradcam", head)

        def guided_gradcam(batch: Any, class_index: Any) -> tuple[Any, Any, Any]:
            cam, target = gradcam(batch, class_index)
            grads, _ = input_gradient(batch, target, pick=False)
            return grads, cam, target

        return _function(guided_gradcam, spec)

    def smoothgrad(batch: Any, class_index: Any, samples: Any, noise: Any, seed: Any) -> Any:
        batch = batch[:1]

        def top_class() -> Any:
            _, logits = adapter.forward(batch, logits=True, output=output)
            return tf.argmax(logits[0], output_type=tf.int32)

        # The class is decided on the clean image, not on each noisy copy.
        target = tf.cond(class_index < 0, top_class, lambda: class_index)
        # Smilkov et al.: noise level = sigma / (max - min) of the input.
        sigma = noise * (tf.reduce_max(batch) - tf.reduce_min(batch))
        shape = tf.shape(batch)

        def body(start: Any, total: Any) -> tuple[Any, Any]:
            count = tf.minimum(batch_size, samples - start)
            noisy_shape = tf.concat([[count], shape[1:]], 0)
            # Stateless: the same seed gives the same map, on any thread, in any order.
            noise_values = tf.random.stateless_normal(
                noisy_shape, seed=tf.stack([seed, start]), dtype=tf.float32
            )
            targets = tf.fill([count], target)
            grads, _ = input_gradient(batch + sigma * noise_values, targets, pick=False)
            return start + count, total + tf.reduce_sum(grads, axis=0)

        _, total = tf.while_loop(
            lambda start, total: start < samples,
            body,
            (tf.constant(0), tf.zeros_like(batch[0])),
            parallel_iterations=1,
        )
        return total[tf.newaxis] / tf.cast(samples, tf.float32), target[tf.newaxis]

    scalars = [
        tf.TensorSpec((), tf.int32),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((), tf.int32),
    ]
    return _function(smoothgrad, [*spec, *scalars])


def _saliency_function(
    adapter: ModelAdapter, method: str, head: _Head, batch_size: int, path: str | None
) -> Any:
    key = (_KEY, "saliency", method, head.index, path, batch_size if method == "smoothgrad" else 0)
    return adapter.traced(key, lambda: _build_saliency(adapter, method, head, batch_size, path))


def saliency(
    model: Any,
    image: Any,
    class_index: int | None = None,
    *,
    method: str = "vanilla",
    reduce: bool = True,
    layer: str | None = None,
    samples: int = 25,
    noise: float = 0.15,
    seed: int = 0,
    batch_size: int = SMOOTHGRAD_BATCH,
    output: int | str | None = None,
    preprocess: Preprocess | None = None,
) -> np.ndarray:
    """Gradient saliency: how much each pixel moves the class score.

    Gradients are of the class logit with respect to the model's input (after ``preprocess``
    if one is given; for models that take raw pixels, the pixels themselves).

    Parameters
    ----------
    model : keras.Model or ModelAdapter
    image : array, path or PIL image
    class_index : int, optional
        The class to explain; ``None`` explains the model's top class.
    method : {"vanilla", "smoothgrad", "guided_backprop", "guided_gradcam"}
        * ``"vanilla"``: the plain gradient.
        * ``"smoothgrad"``: the gradient averaged over ``samples`` copies of the image with
          Gaussian noise of standard deviation ``noise × (max − min)`` of the input, computed
          ``batch_size`` copies at a time; reproducible through ``seed``.
        * ``"guided_backprop"``: every ReLU/ReLU6 passes gradient back only where its input was
          positive and the gradient arriving is positive (Springenberg et al.).
        * ``"guided_gradcam"``: guided backprop × the Grad-CAM map of ``layer`` (default
          :func:`default_cam_layer`), i.e. fine detail limited to the class's region.
    reduce : bool
        True: a 2-D map, the largest absolute value over the colour channels, scaled to [0, 1].
        False: the signed gradient itself, (H, W, C) — the classic colour guided-backprop
        picture; show it with :func:`normalize_signed`.
    layer : str, optional
        ``"guided_gradcam"`` only.
    samples, noise, seed, batch_size
        ``"smoothgrad"`` only (defaults: 25 samples, noise level 0.15, as the paper suggests
        10–20 %).
    output : int or str, optional
        Which output is the class head, for models with several outputs.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see :class:`ModelAdapter`).

    Returns
    -------
    numpy.ndarray
        float32, the height and width of ``image`` as given: (H, W) in [0, 1] when ``reduce``,
        else the signed (H, W, C) gradient.

    Examples
    --------
    >>> model, cat = cv.load_default_model(), cv.sample_image("chelsea")
    >>> saliency(model, cat, method="smoothgrad").shape                 # doctest: +SKIP
    (300, 451)
    >>> rgb = saliency(model, cat, method="guided_backprop", reduce=False)  # doctest: +SKIP
    >>> picture = normalize_signed(rgb)                                 # doctest: +SKIP
    """
    _check_method(method, SALIENCY_METHODS, "saliency")
    if layer is not None and method != "guided_gradcam":
        raise CnnVizError(
            f"layer= is only used by method='guided_gradcam' (got method={method!r}); leave it "
            "out, or use grad_cam(..., layer=...) for a class map of that layer."
        )
    adapter = _adapter(model, preprocess)
    prepared = adapter.prepare(image)
    head = _head(adapter, output)
    index = _class_index(class_index, head)
    path = _cam_layer(adapter, layer) if method == "guided_gradcam" else None
    batch = adapter.model_input(prepared)
    if method == "smoothgrad":
        batch_size = _positive(batch_size, "batch_size")
        samples = _positive(samples, "samples")
        if not isinstance(noise, (int, float, np.floating, np.integer)) or not (
            0.0 <= float(noise) < math.inf
        ):
            raise CnnVizError(f"noise must be a number ≥ 0 (e.g. 0.15); got {noise!r}.")
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise CnnVizError(f"seed must be an int; got {seed!r}.")
        if not 0 <= int(seed) < 2**31:
            raise CnnVizError(f"seed must be in 0 … 2**31 − 1; got {int(seed)}.")
        function = _saliency_function(adapter, method, head, batch_size, None)
        grads, _ = function(batch, index, samples, float(noise), int(seed))
        grads = grads[0].numpy()
    elif method == "guided_gradcam":
        function = _saliency_function(adapter, method, head, 0, path)
        guided, cam, _ = function(batch, index)
        guided = guided[0].numpy()
        # Grad-CAM map brought to the model input with THE resize, scaled to [0, 1].
        grads = guided * _to_unit(_to_size(cam[0].numpy(), guided.shape[:2]))[..., np.newaxis]
    else:
        function = _saliency_function(adapter, method, head, 0, None)
        grads, _ = function(batch, index)
        grads = grads[0].numpy()
    size = prepared.size
    if not reduce:
        return np.ascontiguousarray(_to_size(grads, size), dtype=np.float32)
    # Reduce at the model's resolution (the exact gradients), then resize the one plane.
    return _to_unit(_to_size(np.abs(grads).max(axis=-1), size))


def _build_deconvnet(adapter: ModelAdapter, path: str, keep: str) -> Any:
    import tensorflow as tf

    def project(batch: Any, channel: Any) -> Any:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(batch)
            (features,), _ = adapter.forward(batch, [path], relu=deconvnet_relu)
        activation = tf.cast(features, tf.float32)
        chosen = activation[..., channel]  # (N, h, w)
        if keep == "max":
            # Zeiler & Fergus project single strong activations: keep only the largest one.
            # ReLU6 saturates: dozens of positions can tie at exactly 6, and argmax would take
            # the first in reading order (often a corner). A small share of the 3×3
            # neighbourhood mean breaks ties toward the centre of the strongest region.
            around = tf.nn.avg_pool2d(chosen[..., tf.newaxis], 3, 1, "SAME")[..., 0]
            score = tf.reshape(chosen + 1e-3 * around, (tf.shape(chosen)[0], -1))
            flat = tf.reshape(chosen, (tf.shape(chosen)[0], -1))
            strongest = tf.one_hot(tf.argmax(score, axis=-1), tf.shape(flat)[1], dtype=tf.float32)
            seed_map = tf.nn.relu(tf.reshape(flat * strongest, tf.shape(chosen)))
        else:
            seed_map = tf.nn.relu(chosen)
        # The starting signal: this channel's rectified map, zeros in every other channel.
        onehot = tf.one_hot(channel, tf.shape(activation)[-1], dtype=tf.float32)
        seed = seed_map[..., tf.newaxis] * onehot
        # The backward pass *is* the deconvnet: conv transposes are the gradients of the
        # convolutions (filters flipped and transposed), deconvnet_relu rectifies the signal
        # coming back, and TF's max-pool gradient sends each value to the position that won
        # the forward max — exactly Zeiler & Fergus's "switches".
        return tf.cast(
            tape.gradient(features, batch, output_gradients=tf.cast(seed, features.dtype)),
            tf.float32,
        )

    return _function(project, [adapter.input_spec(), tf.TensorSpec((), tf.int32)])


def deconvnet(
    model: Any,
    image: Any,
    layer: str,
    channel: int,
    *,
    keep: str = "max",
    preprocess: Preprocess | None = None,
) -> np.ndarray:
    """Zeiler & Fergus's deconvnet: one channel's activation projected back to pixel space.

    The channel's feature map (every other channel set to zero) is sent back through the
    network to the input: through each convolution transposed, each max-pooling by its switches
    (where the forward maximum came from), and each ReLU/ReLU6 applied to the *backward* signal
    (``relu(g)``, whatever the forward sign was). The result shows the input pattern that
    drives the channel, at the place it occurs.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
    image : array, path or PIL image
    layer : str
        A layer with a spatial map (path or bare name).
    channel : int
        The channel of ``layer``, 0-based.
    keep : {"max", "map"}
        ``"max"`` (default, as in the paper's figures): project only the channel's strongest
        activation — one clear pattern. ``"map"``: project the whole rectified map — every
        place the channel fires.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see :class:`ModelAdapter`).

    Returns
    -------
    numpy.ndarray
        float32 (H, W, C), signed, the height and width of ``image`` as given (C is the model's
        input channels, 3 for RGB). Show it with :func:`normalize_signed`. All zero when the
        channel is not active anywhere.

    Examples
    --------
    >>> model, cat = cv.load_default_model(), cv.sample_image("chelsea")
    >>> projection = deconvnet(model, cat, "block3a_expand_activation", 5)
    >>> picture = normalize_signed(projection)  # (300, 451, 3) in [0, 1], 0 → 0.5 gray
    """
    if keep not in ("max", "map"):
        raise CnnVizError(f"keep must be 'max' (strongest activation) or 'map'; got {keep!r}.")
    adapter = _adapter(model, preprocess)
    prepared = adapter.prepare(image)
    path = adapter.resolve_layer(layer)
    channels = adapter.layer_info(path).channels
    if isinstance(channel, (bool, np.bool_)) or not isinstance(channel, (int, np.integer)):
        raise CnnVizError(f"channel must be an int; got {channel!r}.")
    if channel < 0 or (channels is not None and channel >= channels):
        raise CnnVizError(
            f"channel {int(channel)} is out of range: layer {path!r} has {channels} channels "
            f"(0–{channels - 1 if channels else 0})."
        )
    function = adapter.traced(
        (_KEY, "deconvnet", path, keep), lambda: _build_deconvnet(adapter, path, keep)
    )
    projection = function(adapter.model_input(prepared), int(channel))[0].numpy()
    return np.ascontiguousarray(_to_size(projection, prepared.size), np.float32)


def normalize_signed(array: Any, *, percentile: float = 99.5) -> np.ndarray:
    """Map a signed array (a gradient, a deconvnet projection) to [0, 1] for display.

    Zero goes to 0.5, and the scale is symmetric so the sign stays visible: values at
    ± the ``percentile``-th percentile of ``|array|`` go to 1 and 0 (beyond it they are clipped;
    a few extreme pixels would otherwise wash the rest out to gray).

    Parameters
    ----------
    array : array_like
        Any shape, e.g. (H, W, 3) from ``saliency(..., reduce=False)`` or :func:`deconvnet`.
    percentile : float
        In (0, 100]; 100 scales by the largest absolute value (nothing clipped).

    Returns
    -------
    numpy.ndarray
        float32, same shape, values in [0, 1]; all 0.5 for an all-zero array.

    Examples
    --------
    >>> normalize_signed(np.array([-2.0, 0.0, 1.0]), percentile=100).tolist()
    [0.0, 0.5, 0.75]
    """
    values = np.asarray(array, dtype=np.float32)
    if not 0.0 < float(percentile) <= 100.0:
        raise CnnVizError(f"percentile must be in (0, 100]; got {percentile!r}.")
    finite = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    magnitude = np.abs(finite)
    scale = float(np.percentile(magnitude, percentile)) if magnitude.size else 0.0
    if scale <= 0.0:
        scale = float(magnitude.max()) if magnitude.size else 0.0
    if scale <= 0.0:
        return np.full(values.shape, 0.5, dtype=np.float32)
    return np.clip(0.5 + finite / (2.0 * scale), 0.0, 1.0).astype(np.float32)
