"""Class activation maps: where in the image the evidence for a class lies.

:func:`grad_cam` reads one layer's feature maps ``A_k`` (k = channel) and weighs them into one
map, ``relu(Σ_k w_k A_k)``. The methods differ only in the weights, so each is a registered
:class:`~.registry.Method` whose ``compute`` says how it weighs channels:

* ``"gradcam"`` — Selvaraju et al. 2017: the class-score gradient averaged over positions;
* ``"gradcam++"`` — Chattopadhay et al. 2018: positive gradients with per-position
  coefficients;
* ``"layercam"`` — Jiang et al. 2021: every position by its own positive gradient;
* ``"scorecam"`` — Wang et al. 2020: gradient-free, how much each channel's map, used as a mask
  on the input, raises the class probability.

Gradients are always taken of the **logits** (the scores before the head's softmax or sigmoid,
which the adapter leaves out on the fly): after a saturated softmax they would all but vanish.
Each (layer, method, output) runs as one compiled function kept by the adapter, with the image
batch and the class as tensor arguments, so new images, classes and (for models that take any
size) image sizes never retrace. TensorFlow is imported inside the functions only.

Examples
--------
>>> import cnnviz_widgets as cv
>>> from cnnviz_widgets.explain import grad_cam
>>> model, cat = cv.load_default_model(), cv.sample_image("chelsea")
>>> grad_cam(model, cat).shape                          # doctest: +SKIP
(300, 451)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.adapter import ModelAdapter, Preprocess
from ..engine.backend import compile, tensorflow
from ..errors import LayerError, check_positive
from . import registry
from .registry import Method
from .targets import (
    KEY,
    Head,
    Target,
    adapter_of,
    cam_layer,
    class_head,
    class_number,
    class_score,
    deepest_spatial_layer,
    no_gradient_error,
    pick_class,
    probabilities,
    to_size,
    to_unit,
)

__all__ = ["CAM_METHODS", "SCORECAM_BATCH", "SCORECAM_CHANNELS", "grad_cam", "gradcam_function"]

#: Score-CAM runs one forward pass per channel; a 1280-channel layer would take ~10 s on a laptop
#: CPU. By default the channels whose maps vary most over the image are kept (a flat map masks
#: the image uniformly and says nothing about *where*), as in "Faster Score-CAM".
SCORECAM_CHANNELS = 128
#: Masked copies of the image per forward pass: enough to keep both CPU cores busy, few enough
#: for a 224 px EfficientNet's activations to stay in the hundreds of MB.
SCORECAM_BATCH = 32


# ------------------------------------------------------------------ gradient-weighted CAMs
# Each takes the feature maps and their class-score gradients, both float32 (N, h, w, K), and
# returns the maps (N, h, w) before scaling.
def _gradcam(features: Any, grads: Any) -> Any:
    tf = tensorflow()
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))


def _gradcam_plus_plus(features: Any, grads: Any) -> Any:
    tf = tensorflow()
    # Eq. 19 with the exponential trick: for Y = exp(S) the 2nd and 3rd derivatives of Y are
    # exp(S)·g² and exp(S)·g³, and exp(S) cancels in alpha (and is a common positive factor in
    # the weights, which the final scaling removes).
    g2 = tf.square(grads)
    g3 = g2 * grads
    total = tf.reduce_sum(features, axis=(1, 2), keepdims=True)
    alpha = tf.math.divide_no_nan(g2, 2.0 * g2 + total * g3)
    weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))


def _layercam(features: Any, grads: Any) -> Any:
    tf = tensorflow()
    # Per-position weights keep fine detail, and a region whose activations cannot reach the
    # score gets nothing at all (Grad-CAM's global weights would spread onto it).
    return tf.nn.relu(tf.reduce_sum(tf.nn.relu(grads) * features, axis=-1))


@dataclass(frozen=True)
class GradientCam:
    """``compute`` of a CAM that weighs the feature maps with their class-score gradients.

    Attributes
    ----------
    name : str
        The method's registered name (part of the compiled function's key).
    combine : callable
        ``combine(features, grads) -> maps``: float32 (N, h, w, K) twice → (N, h, w).
    """

    name: str
    combine: Callable[[Any, Any], Any]

    def function(self, adapter: ModelAdapter, path: str, head: Head) -> Any:
        """The compiled ``(batch, class_index) -> (maps (N, h, w), class (N,), scale (N,))``.

        ``scale`` bounds what the weighted sum could reach at one position (for
        :func:`below_noise`).

        Made once per adapter, layer and output. ``class_index`` −1 means each image's top
        class. Tracing raises :class:`LayerError` if ``path`` does not feed the head.
        """
        key = (KEY, "cam", path, self.name, head.index)
        return adapter.traced(key, lambda: self._build(adapter, path, head))

    def _build(self, adapter: ModelAdapter, path: str, head: Head) -> Any:
        tf = tensorflow()

        def cam(batch: Any, class_index: Any) -> tuple[Any, Any]:
            # Only the ops after the feature map are recorded: the backward pass stops there.
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                (features,), logits = adapter.forward(
                    batch, [path], logits=True, output=head.index, watch=tape.watch
                )
                target = pick_class(logits, class_index)
                score = class_score(logits, target)
            grads = tape.gradient(score, features)
            if grads is None:
                raise no_gradient_error(adapter, path, head, batch)
            # Mixed precision computes the features (and so their gradients) in float16.
            features = tf.cast(features, tf.float32)
            grads = tf.cast(grads, tf.float32)
            maps = self.combine(features, grads)
            # The largest value any of these weighted sums could reach at one position: the map
            # is float noise when it stays a tiny fraction of it (see below_noise).
            scale = tf.reduce_max(tf.reduce_sum(tf.abs(features), axis=-1), axis=(1, 2))
            scale *= tf.reduce_max(tf.abs(grads), axis=(1, 2, 3)) * tf.cast(
                tf.shape(features)[1] * tf.shape(features)[2], tf.float32
            )
            return maps, target, scale

        return compile(cam, [adapter.input_spec(), tf.TensorSpec((), tf.int32)])

    def __call__(self, target: Target, **options: Any) -> np.ndarray:
        function = self.function(target.adapter, target.layer, target.head)
        heatmap, _, scale = function(target.batch, target.class_index)
        return below_noise(heatmap[0].numpy(), float(scale[0]))


#: A map whose peak is below this share of the largest sum it could reach is rounding noise:
#: float32 sums of thousands of terms carry relative errors of ~1e-7 each.
NOISE_FRACTION = 1e-5


def below_noise(heatmap: np.ndarray, scale: float) -> np.ndarray:
    """``heatmap``, or zeros when its peak is at the level of float rounding.

    A dead or nearly dead network (random weights, a class the image gives no evidence for)
    leaves maps of ~1e-9 that scaling to [0, 1] would blow up into confident-looking noise.
    """
    if not float(np.max(heatmap, initial=0.0)) > NOISE_FRACTION * scale:
        return np.zeros_like(heatmap)
    return heatmap


_GRADCAM = GradientCam("gradcam", _gradcam)


def gradcam_function(adapter: ModelAdapter, path: str, head: Head) -> Any:
    """Grad-CAM's compiled function for ``path`` (see :meth:`GradientCam.function`).

    For methods that build on the Grad-CAM map inside their own graph (guided Grad-CAM).
    """
    return _GRADCAM.function(adapter, path, head)


# ------------------------------------------------------------------ Score-CAM
def _score_cam(
    target: Target,
    *,
    max_channels: int | None = SCORECAM_CHANNELS,
    batch_size: int = SCORECAM_BATCH,
    **options: Any,
) -> np.ndarray:
    if max_channels is not None:
        max_channels = check_positive(max_channels, "max_channels")
    batch_size = check_positive(batch_size, "batch_size")
    adapter, path, head = target.adapter, target.layer, target.head
    key = (KEY, "cam", path, "scorecam", head.index, max_channels, batch_size)
    function = adapter.traced(
        key, lambda: _build_score_cam(adapter, path, head, max_channels, batch_size)
    )
    heatmap, _ = function(target.batch, target.class_index)
    return heatmap[0].numpy()


def _build_score_cam(
    adapter: ModelAdapter, path: str, head: Head, max_channels: int | None, batch_size: int
) -> Any:
    tf = tensorflow()
    channels = adapter.layer_info(path).channels
    if channels is None:
        raise LayerError(
            f"Layer {path!r} has an unknown number of channels; Score-CAM needs it. Pick "
            f"another layer, e.g. {deepest_spatial_layer(adapter)!r}."
        )
    kept = channels if max_channels is None else min(channels, max_channels)
    # Equal chunks (e.g. 100 masks → 4 × 25, not 3 × 32 + 4) so that one traced loop body fits
    # all, with at most chunks-1 padding masks.
    chunks = math.ceil(kept / batch_size)
    per_chunk = math.ceil(kept / chunks)
    padded = chunks * per_chunk

    def probability(inputs: Any, target: Any) -> Any:
        _, logits = adapter.forward(inputs, logits=True, output=head.index)
        return tf.gather(probabilities(logits, head.activation), target, axis=1)

    def cam(batch: Any, class_index: Any) -> tuple[Any, Any]:
        batch = batch[:1]  # one image: the masked copies are the batch
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            (features,), logits = adapter.forward(
                batch, [path], logits=True, output=head.index, watch=tape.watch
            )
        # Only a trace-time check that the layer feeds the head: the gradient is never used,
        # so tf.function prunes it from the graph.
        if tape.gradient(logits, features) is None:
            raise no_gradient_error(adapter, path, head, batch)
        target = pick_class(logits, class_index)
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
            # The half-pixel-centre bilinear resize_image uses when enlarging (PIL cannot run
            # inside the graph).
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
        # The weight is the increase over the baseline input (everything masked out), so a
        # channel that masks the class away does not count for it.
        baseline = probability(tf.zeros_like(batch), target)[0, 0]
        weights = scores - baseline
        # Differences at the level of float32 rounding of the scores are no evidence (a dead
        # network's probabilities differ by ~1e-9); they would be stretched into a full map.
        level = tf.maximum(tf.reduce_max(tf.abs(scores)), tf.abs(baseline))
        weights = tf.where(tf.reduce_max(tf.abs(weights)) > 64 * 1.2e-7 * level, weights, 0.0)
        return tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))[tf.newaxis], target

    return compile(cam, [adapter.input_spec(), tf.TensorSpec((), tf.int32)])


# ------------------------------------------------------------------ the registry
def _cam(name: str, label: str, paper: str, compute: Callable[..., np.ndarray]) -> None:
    registry.register(Method(name, label, "cam", True, paper, compute))


_cam(
    "gradcam",
    "Grad-CAM",
    "Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via "
    "Gradient-based Localization",
    _GRADCAM,
)
_cam(
    "gradcam++",
    "Grad-CAM++",
    "Chattopadhay et al. 2018, Grad-CAM++: Generalized Gradient-based Visual Explanations for "
    "Deep Convolutional Networks",
    GradientCam("gradcam++", _gradcam_plus_plus),
)
_cam(
    "scorecam",
    "Score-CAM",
    "Wang et al. 2020, Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural "
    "Networks",
    _score_cam,
)
_cam(
    "layercam",
    "LayerCAM",
    "Jiang et al. 2021, LayerCAM: Exploring Hierarchical Class Activation Maps for Localization",
    GradientCam("layercam", _layercam),
)

#: Names of the :func:`grad_cam` methods, in registration order.
CAM_METHODS = tuple(method.name for method in registry.methods("cam"))


# ------------------------------------------------------------------ public
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
    image : array, path, PIL image or PreparedImage
        Anything :func:`cnnviz_widgets.load_image` accepts, of any size; prepared once.
    class_index : int, optional
        The class to explain; ``None`` explains the model's top class.
    layer : str, optional
        The feature map to explain from (a path from ``layer_paths(model)`` or a bare layer
        name). Default: :func:`~.targets.default_cam_layer`, the deepest spatial map larger
        than 1×1 — the usual choice, coarse but the most class-specific.
    method : {"gradcam", "gradcam++", "scorecam", "layercam"}
        Any name in :data:`CAM_METHODS`.

        * ``"gradcam"`` (Selvaraju et al. 2017): channels weighted by their average gradient,
          ``relu(Σ_k w_k A_k)``.
        * ``"gradcam++"`` (Chattopadhay et al. 2018): weights from positive gradients with
          per-position coefficients; better when the class appears several times.
        * ``"layercam"`` (Jiang et al. 2021): every position weighted by its own positive
          gradient, ``relu(Σ_k relu(g_k) ⊙ A_k)``; sharper, and usable on earlier layers.
        * ``"scorecam"`` (Wang et al. 2020): gradient-free. Each channel's map, scaled to
          [0, 1] and upsampled, masks the input; the channel's weight is how much that raises
          the class probability over an all-masked input. One forward pass per channel, run
          ``batch_size`` at a time, over at most ``max_channels`` channels.
    output : int or str, optional
        Which output is the class head, for models with several outputs.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see :class:`ModelAdapter`).
    max_channels : int or None
        Score-CAM only: explain with the ``max_channels`` channels whose maps vary most over the
        image (default 128; ``None`` = all — 1280 for EfficientNet's last layer, ~10 s on CPU).
    batch_size : int
        Score-CAM only: masked images per forward pass, ≥ 1.

    Returns
    -------
    numpy.ndarray
        float32 ``(H, W)`` with values in [0, 1] (maximum 1, unless the map is all zero), the
        height and width of ``image`` as given: the map covers the whole image, resized from
        the layer's resolution with :func:`~cnnviz_widgets.images.resize_image`.

    Raises
    ------
    CnnVizError
        For a class index out of range, an unknown method (with close matches), or Score-CAM
        options that are not ints ≥ 1.
    LayerError
        For an unknown layer, one with no spatial map (after global pooling), or one the class
        output does not depend on.
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
    chosen = registry.get("cam", method)
    adapter = adapter_of(model, preprocess)
    prepared = adapter.prepare(image)
    head = class_head(adapter, output)
    index = class_number(class_index, head)
    target = Target(adapter, adapter.model_input(prepared), head, index, cam_layer(adapter, layer))
    heatmap = chosen.compute(target, max_channels=max_channels, batch_size=batch_size)
    # Resize first, then scale to a maximum of 1: bilinear upsampling lowers peaks a little.
    return to_unit(to_size(heatmap, prepared.size))
