"""What a view explains: the model's class head, the class, the layer, and the class score.

Every method answers "why this class, for this image?", so they all need the same bookkeeping
before any TensorFlow runs: the adapter for the model, which output is the class head, the
class (or "the top class"), the layer whose feature map is read. A :class:`Target` carries the
answers to the method's ``compute``. The few tensor functions shared by the methods (picking
the class, reading its score, the head's probabilities) are here too, as are the two steps
every map goes through on its way out (:func:`to_size`, :func:`to_unit`).

Facts that cost anything to find (the head, the default layer) are kept on the adapter with
:meth:`~cnnviz_widgets.engine.adapter.ModelAdapter.traced`, under keys that start with
:data:`KEY`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.adapter import ModelAdapter, Preprocess, adapter_for
from ..engine.backend import tensorflow
from ..errors import CnnVizError, LayerError, check_index, check_int
from ..i18n import gettext_ as _
from ..images import resize_image

__all__ = ["default_cam_layer", "evidence"]

#: First element of every key this package keeps on an adapter (shared with its other users).
KEY = "class_activation"


@dataclass(frozen=True)
class Head:
    """The class-score output chosen by ``output=``.

    Attributes
    ----------
    index : int
        The output's position, as ``ModelAdapter.forward(output=)`` takes it.
    name : str
        The output layer's path.
    classes : int or None
        How many classes (``None`` if the model leaves it open).
    activation : {"softmax", "sigmoid", "linear"}
        How the head turns scores into what is reported (``"linear"``: a regression value).
    binary : bool
        A single sigmoid unit, offered as two classes (0 "negative", 1 "positive").
    score : callable or None
        The caller's own target (see :func:`score_head`): what is explained is
        ``score(scores)``, not a class.
    """

    index: int
    name: str
    classes: int | None
    activation: str
    binary: bool = False
    score: Callable[[Any], Any] | None = None

    @property
    def regression(self) -> bool:
        """A single unit without activation: a value, not a class."""
        return self.activation == "linear"


@dataclass(frozen=True)
class Target:
    """One question put to a method: this image batch, this class of this head, this layer.

    Attributes
    ----------
    adapter : ModelAdapter
    batch : numpy.ndarray
        float32 (1, H, W, C), the model input (``adapter.model_input(prepared)``).
    head : Head
    class_index : int
        The class, or -1 for the top class (decided inside the traced function, per image).
    layer : str or None
        The layer path the method reads, for methods that need one.
    image_key : str or None
        Content key of the prepared image (``PreparedImage.key``), for cache entries; None:
        a key is computed from ``batch``.
    """

    adapter: ModelAdapter
    batch: np.ndarray
    head: Head
    class_index: int
    layer: str | None = None
    image_key: str | None = None


def adapter_of(model: Any, preprocess: Preprocess | None) -> ModelAdapter:
    """The shared adapter of ``model`` (or ``model`` itself when it is one).

    Raises
    ------
    CnnVizError
        When ``preprocess`` comes with a ModelAdapter that has its own preprocessing.
    """
    if isinstance(model, ModelAdapter):
        if preprocess is not None and preprocess is not model.preprocess:
            raise CnnVizError(
                _(
                    "preprocess= was given together with a ModelAdapter, which has its own "
                    "preprocessing. Pass it when making the adapter: ModelAdapter(model, "
                    "preprocess=...), or pass the Keras model here instead of the adapter."
                )
            )
        return model
    return adapter_for(model, preprocess=preprocess)


def class_head(adapter: ModelAdapter, output: int | str | None) -> Head:
    """The class output ``output=`` names, checked once per adapter and output.

    Raises
    ------
    CnnVizError
        For an ``output`` that is neither an int, a str nor None.
    ModelError
        (from the adapter) For several outputs without ``output=``, or an output that is not a
        vector of class scores.
    """

    def build() -> Head:
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
        classes = adapter.class_count(output)
        return Head(index, names[index], classes, activation, binary=activation == "sigmoid"
                    and adapter.layer_info(names[index]).output_shape[-1] == 1)  # fmt: skip

    if isinstance(output, np.integer):
        output = int(output)
    if not isinstance(output, (int, str, type(None))) or isinstance(output, bool):
        raise CnnVizError(
            _(
                "output must be an output index (int) or name (str), or None; got {output!r}."
            ).format(output=output)
        )
    return adapter.traced((KEY, "head", output), build)


def score_head(adapter: ModelAdapter, output: int | str | None, score: Any) -> Head:
    """The head for a caller's own ``target=`` function: any output, any shape.

    ``score`` is called, while a compiled function traces, with the output's scores — float32
    tensor (N, ...) shaped like that output, before a final softmax or sigmoid (logits: after
    a saturated softmax gradients all but vanish) — and returns the value to explain: one per
    image (N,), or any tensor, which is summed per image. This is how a regression value, a
    region of a segmentation map or one unit of a multi-label output is explained (as
    pytorch-grad-cam's model targets do, Gildenblat et al. 2021).

    Raises
    ------
    CnnVizError
        When ``score`` is not callable (naming how to pass a class instead).
    ModelError
        (from the adapter) For an unknown output, or several outputs without ``output=``.
    """
    if not callable(score):
        raise CnnVizError(
            _(
                "target must be a function of the model output's scores, e.g. target=lambda "
                "scores: scores[:, 0]; got {kind} {score!r}. To explain a class, pass "
                "class_index=<number> instead."
            ).format(kind=type(score).__name__, score=score)
        )
    if isinstance(output, np.integer):
        output = int(output)
    index = adapter.output_index(output)
    return Head(index, adapter.output_names[index], None, "custom", score=score)


def explained(
    adapter: ModelAdapter, output: int | str | None, class_index: Any, target: Any
) -> tuple[Head, int]:
    """The head and class a view explains: ``class_index`` of the class head, or ``target``.

    Returns the :func:`class_head` and :func:`class_number`, or for a ``target`` function the
    :func:`score_head` and class −1.

    Raises
    ------
    CnnVizError
        When both ``class_index`` and ``target`` are given, or either is invalid.
    """
    if target is None:
        head = class_head(adapter, output)
        return head, class_number(class_index, head)
    if class_index is not None:
        raise CnnVizError(
            _(
                "Pass either class_index= (a class of the class head) or target= (your own "
                "function of the output's scores), not both; got class_index={class_index!r}."
            ).format(class_index=class_index)
        )
    return score_head(adapter, output, target), -1


def class_number(class_index: Any, head: Head) -> int:
    """``class_index`` checked against the head: an int in range, or -1 for ``None``.

    Raises
    ------
    CnnVizError
        For a non-int, or a class outside 0 … classes − 1; the message names the value and
        the range.
    """
    if class_index is None:
        return -1
    return check_class_index(class_index, head.classes)


def check_class_index(class_index: Any, classes: int | None) -> int:
    """``class_index`` as an int in 0 … classes − 1, else the error (with its fix) that the
    functions and the explorers share."""
    try:
        index = check_int(class_index, "class_index")
        return check_index(index, classes, "class_index", _("the model"), things=_("classes"))
    except CnnVizError as error:
        raise CnnVizError(
            _(
                "{error} Pass a class number in that range, or class_index=None for the top class "
                "(see predict_top)."
            ).format(error=error)
        ) from None


# -------------------------------------------------------------------------------- layers
def _is_flat(adapter: ModelAdapter, path: str) -> bool:
    """True for a 1×1 map (after global pooling with keepdims): it cannot show *where*."""
    shape = adapter.layer_info(path).output_shape
    return len(shape) >= 2 and shape[0] == 1 and shape[1] == 1


def default_cam_layer(model: Any, *, preprocess: Preprocess | None = None) -> str:
    """The layer :func:`~cnnviz_widgets.explain.grad_cam` explains by default.

    The deepest layer with a spatial map larger than 1×1. Layers whose output is 1×1 (a global
    pooling kept as a 4-D tensor) are skipped: a class map drawn from them would be a single
    flat value. Nested sub-models are looked through, so for the default model this is
    ``"backbone/top_activation"``.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
    preprocess : callable, optional
        As for :func:`~cnnviz_widgets.explain.grad_cam` (selects the shared adapter).

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
    return deepest_spatial_layer(adapter_of(model, preprocess))


def deepest_spatial_layer(adapter: ModelAdapter) -> str:
    """:func:`default_cam_layer` for an adapter, found once and kept on it."""

    def build() -> str:
        for path in reversed(adapter.layer_paths):
            if not _is_flat(adapter, path):
                return path
        raise LayerError(
            _(
                "Model {model!r} has no layer with a spatial (height × width > 1) feature map, so "
                "there is no map of *where* to draw. Class activation maps need a convolutional "
                "network; use saliency(model, image) for a pixel-level view instead."
            ).format(model=adapter.model.name)
        )

    return adapter.traced((KEY, "default_layer"), build)


def cam_layer(adapter: ModelAdapter, layer: str | None) -> str:
    """``layer`` as a path with a spatial map larger than 1×1 (``None``: the default one).

    Raises
    ------
    LayerError
        For an unknown layer (with close matches), or one with no spatial map or a 1×1 map,
        naming the layer to use instead.
    """
    if layer is None:
        return deepest_spatial_layer(adapter)
    path = adapter.resolve_layer(layer, spatial=False)
    info = adapter.layer_info(path)
    if info.spatial and not _is_flat(adapter, path):
        return path
    suggestion = deepest_spatial_layer(adapter)
    why = (
        _("a 1×1 spatial map (typically after global pooling)")
        if info.spatial
        else _(
            "output shape {shape}: no spatial map left (it comes after global pooling or "
            "flattening)"
        ).format(shape=info.output_shape)
    )
    raise LayerError(
        _(
            "Layer {path!r} ({kind}) has {why}, so a class activation map cannot show where the "
            "evidence lies. Pick a convolutional layer before the pooling, e.g. the deepest one "
            "with a spatial map: {suggestion!r}."
        ).format(path=path, kind=info.class_name, why=why, suggestion=suggestion)
    )


# -------------------------------------------------------------------------------- maps out
def to_unit(heatmap: np.ndarray) -> np.ndarray:
    """A non-negative map scaled so that its maximum is 1 (an all-zero map stays zero).

    NaN and ±inf become 0, negative values (bilinear resampling undershoots a little) 0.
    Returns float32 of the same shape, values in [0, 1]; may reuse ``heatmap``'s memory.
    """
    heatmap = np.nan_to_num(heatmap, nan=0.0, posinf=0.0, neginf=0.0)
    np.maximum(heatmap, 0.0, out=heatmap)
    peak = float(heatmap.max())
    if peak > 0.0:
        heatmap *= np.float32(1.0 / peak)
    return np.clip(heatmap, 0.0, 1.0, out=heatmap).astype(np.float32, copy=False)


def evidence(heatmap: np.ndarray) -> str:
    """What a class activation map shows: ``"located"``, ``"none"`` or ``"flat"``.

    ``"none"``: the map is zero everywhere — the image gives the class no positive evidence at
    that layer (maps at float-noise level are returned as zeros, see ``cam.below_noise``).
    ``"flat"``: the map is the same everywhere (a constant image, a 1×1 map after resizing): it
    says nothing about *where*. Views say so in words instead of drawing such a map as evidence.
    """
    values = np.asarray(heatmap, dtype=np.float64)
    peak = float(values.max(initial=0.0))
    if not peak > 0.0:
        return "none"
    if float(values.min()) >= peak * (1.0 - 1e-6):
        return "flat"
    return "located"


def to_size(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``array`` (H, W[, C]) resized to ``size`` (height, width) with ``resize_image``."""
    return resize_image(array, size) if array.shape[:2] != tuple(size) else array


# -------------------------------------------------------------------------------- tensors
# Only ever called while a compiled function traces.
def pick_class(logits: Any, class_index: Any) -> Any:
    """Per example: ``class_index``, or the top class when it is negative. (N,) int32."""
    tf = tensorflow()
    top = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(class_index < 0, top, tf.fill(tf.shape(top), class_index))


def class_score(logits: Any, target: Any) -> Any:
    """The logit of each example's ``target`` class: logits (N, classes), target (N,) → (N,)."""
    return tensorflow().gather(logits, target, axis=1, batch_dims=1)


def head_scores(adapter: ModelAdapter, batch: Any, head: Head, paths: Any = (), **options: Any
                ) -> tuple[list[Any], Any]:  # fmt: skip
    """``adapter.forward`` to ``head``'s scores: (outputs at ``paths``, scores).

    For a caller's ``target=`` function the output may have any shape (``any_output``);
    ``options`` go to :meth:`~cnnviz_widgets.engine.adapter.ModelAdapter.forward`.
    """
    return adapter.forward(batch, paths, logits=True, output=head.index,
                           any_output=head.score is not None, **options)  # fmt: skip


def head_score(scores: Any, class_index: Any, head: Head) -> tuple[Any, Any]:
    """What a gradient explains, and the class it is of: ((N,) score, (N,) int32 class).

    For a class head, the logit of ``class_index`` (−1: each image's top class). For a
    caller's ``score`` function (:func:`score_head`), its value summed per image, and class −1.

    Raises
    ------
    CnnVizError
        When the caller's function raises or returns something that is not a float tensor
        (its message and the scores' shape are named).
    """
    tf = tensorflow()
    if head.score is None:
        chosen = pick_class(scores, class_index)
        return class_score(scores, chosen), chosen
    try:
        value = tf.convert_to_tensor(head.score(scores))
        if not value.dtype.is_floating:
            raise TypeError(
                _("it returned a {dtype} tensor, not a float one").format(dtype=value.dtype.name)
            )
    except Exception as exc:  # the user's code: any error is reported as theirs
        raise CnnVizError(
            _(
                "target(scores) failed on the scores of output {name!r}, a float32 tensor of shape "
                "{scores_shape} (batch first, before a final softmax/sigmoid): {kind}: {exc}. "
                "Return a float tensor, one value per image, e.g. target=lambda scores: scores[:, "
                "0]."
            ).format(
                name=head.name,
                scores_shape=tuple(scores.shape),
                kind=type(exc).__name__,
                exc=exc,
            )
        ) from exc
    value = tf.cast(value, tf.float32)
    batch = tf.shape(scores)[0]
    if value.shape.rank == 0:
        # One number for the whole batch: images are independent, so its gradient with
        # respect to each image is that image's own.
        per_image = tf.fill([batch], value / tf.cast(batch, tf.float32))
    else:
        per_image = tf.reduce_sum(tf.reshape(value, [batch, -1]), axis=1)
    return per_image, tf.fill([batch], tf.constant(-1, tf.int32))


def probabilities(logits: Any, activation: str) -> Any:
    """What the head reports from its scores (N, classes), by its own activation.

    Softmax or sigmoid probabilities; for a regression head (``"linear"``) the value itself.
    """
    tf = tensorflow()
    if activation == "linear":
        return logits
    return tf.sigmoid(logits) if activation == "sigmoid" else tf.nn.softmax(logits, axis=-1)


def no_gradient_error(adapter: ModelAdapter, path: str, head: Head, batch: Any) -> LayerError:
    """The error for a layer the class scores do not depend on, naming one they do depend on.

    Called while tracing, so finding the layers that feed the head costs graph building only
    (the trace is abandoned by the error, nothing runs).
    """
    tf = tensorflow()
    candidates = [p for p in adapter.layer_paths if not _is_flat(adapter, p)]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        features, logits = head_scores(adapter, batch, head, candidates, watch=tape.watch)
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
