"""Gradient saliency: which pixels the class score is most sensitive to.

:func:`saliency` differentiates the class logit with respect to the model input. The methods
are registered :class:`~.registry.Method` objects of kind ``"saliency"``:

* ``"vanilla"`` — Simonyan et al. 2014: the plain gradient;
* ``"smoothgrad"`` — Smilkov et al. 2017: the gradient averaged over noisy copies of the image;
* ``"guided_backprop"`` — Springenberg et al. 2015: every ReLU passes back only positive
  gradient where its input was positive (:func:`~.relu_rules.guided_relu`);
* ``"guided_gradcam"`` — Selvaraju et al. 2017: guided backprop times the Grad-CAM map.

:func:`normalize_signed` turns the signed gradients (and deconvnet projections) into pictures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.adapter import ModelAdapter, Preprocess
from ..engine.backend import compile, tensorflow
from ..errors import CnnVizError, check_index, check_number, check_positive
from . import registry
from .cam import below_noise, gradcam_function
from .registry import Method
from .relu_rules import guided_relu
from .targets import (
    KEY,
    Head,
    Target,
    adapter_of,
    cam_layer,
    class_head,
    class_number,
    class_score,
    pick_class,
    to_size,
    to_unit,
)

__all__ = ["SALIENCY_METHODS", "SMOOTHGRAD_BATCH", "normalize_signed", "saliency"]

#: Noisy copies of the image per forward pass: enough to keep both CPU cores busy, few enough
#: for a 224 px EfficientNet's activations to stay in the hundreds of MB.
SMOOTHGRAD_BATCH = 16


def _input_gradient(adapter: ModelAdapter, head: Head, relu: Callable[..., Any] | None) -> Any:
    """While tracing: ``(batch, class, pick) -> (d score / d batch as float32, class (N,))``.

    With ``pick`` the class is ``pick_class`` of a class index (−1: the top class); without,
    it is already the class of each example.
    """
    tf = tensorflow()

    def gradient(batch: Any, class_or_index: Any, *, pick: bool) -> tuple[Any, Any]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(batch)
            _, logits = adapter.forward(batch, logits=True, output=head.index, relu=relu)
            target = pick_class(logits, class_or_index) if pick else class_or_index
            score = class_score(logits, target)
        return tf.cast(tape.gradient(score, batch), tf.float32), target

    return gradient


def _traced(target: Target, method: str, build: Callable[[], Any], batch_size: int = 0) -> Any:
    head = target.head
    key = (KEY, "saliency", method, head.index, target.layer, batch_size)
    return target.adapter.traced(key, build)


def _signature(adapter: ModelAdapter) -> list[Any]:
    tf = tensorflow()
    return [adapter.input_spec(), tf.TensorSpec((), tf.int32)]


# ------------------------------------------------------------------ methods
@dataclass(frozen=True)
class _PlainGradient:
    """``compute`` of the input gradient through the model's ReLUs, or through ``relu``."""

    name: str
    relu: Callable[..., Any] | None

    def __call__(self, target: Target, **options: Any) -> np.ndarray:
        adapter, head = target.adapter, target.head

        def build() -> Any:
            gradient = _input_gradient(adapter, head, self.relu)

            def plain(batch: Any, class_index: Any) -> tuple[Any, Any]:
                return gradient(batch, class_index, pick=True)

            return compile(plain, _signature(adapter))

        grads, _ = _traced(target, self.name, build)(target.batch, target.class_index)
        return grads[0].numpy()


def _smoothgrad(
    target: Target,
    *,
    samples: int = 25,
    noise: float = 0.15,
    seed: int = 0,
    batch_size: int = SMOOTHGRAD_BATCH,
    **options: Any,
) -> np.ndarray:
    batch_size = check_positive(batch_size, "batch_size")
    samples = check_positive(samples, "samples")
    noise = check_number(noise, "noise", minimum=0.0)
    seed = check_index(seed, 2**31, "seed", "SmoothGrad's noise generator", things="seeds")
    adapter, head = target.adapter, target.head

    def build() -> Any:
        tf = tensorflow()
        gradient = _input_gradient(adapter, head, None)

        def smoothgrad(batch: Any, class_index: Any, samples: Any, noise: Any, seed: Any) -> Any:
            batch = batch[:1]

            def top_class() -> Any:
                _, logits = adapter.forward(batch, logits=True, output=head.index)
                return tf.argmax(logits[0], output_type=tf.int32)

            # The class is decided on the clean image, not on each noisy copy.
            target = tf.cond(class_index < 0, top_class, lambda: class_index)
            # The paper's noise level: sigma / (max - min) of the input.
            sigma = noise * (tf.reduce_max(batch) - tf.reduce_min(batch))
            shape = tf.shape(batch)

            def body(start: Any, total: Any) -> tuple[Any, Any]:
                count = tf.minimum(batch_size, samples - start)
                noisy_shape = tf.concat([[count], shape[1:]], 0)
                # Stateless: the same seed gives the same map, on any thread, in any order.
                values = tf.random.stateless_normal(
                    noisy_shape, seed=tf.stack([seed, start]), dtype=tf.float32
                )
                grads, _ = gradient(batch + sigma * values, tf.fill([count], target), pick=False)
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
        return compile(smoothgrad, [*_signature(adapter), *scalars])

    function = _traced(target, "smoothgrad", build, batch_size)
    grads, _ = function(target.batch, target.class_index, samples, noise, seed)
    return grads[0].numpy()


def _guided_gradcam(target: Target, **options: Any) -> np.ndarray:
    adapter, head, path = target.adapter, target.head, target.layer

    def build() -> Any:
        gradient = _input_gradient(adapter, head, guided_relu)
        gradcam = gradcam_function(adapter, path, head)

        def guided_gradcam(batch: Any, class_index: Any) -> tuple[Any, Any, Any, Any]:
            cam, chosen, scale = gradcam(batch, class_index)
            grads, _ = gradient(batch, chosen, pick=False)
            return grads, cam, chosen, scale

        return compile(guided_gradcam, _signature(adapter))

    function = _traced(target, "guided_gradcam", build)
    guided, cam, _, scale = function(target.batch, target.class_index)
    guided = guided[0].numpy()
    cam = below_noise(cam[0].numpy(), float(scale[0]))
    # The Grad-CAM map brought to the model input with THE resize, scaled to [0, 1].
    return guided * to_unit(to_size(cam, guided.shape[:2]))[..., np.newaxis]


def _saliency_method(name: str, label: str, paper: str, compute: Any, *, layer: bool) -> None:
    registry.register(Method(name, label, "saliency", layer, paper, compute))


_saliency_method(
    "vanilla",
    "Gradient",
    "Simonyan et al. 2014, Deep Inside Convolutional Networks: Visualising Image "
    "Classification Models and Saliency Maps",
    _PlainGradient("vanilla", None),
    layer=False,
)
_saliency_method(
    "smoothgrad",
    "SmoothGrad",
    "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise",
    _smoothgrad,
    layer=False,
)
_saliency_method(
    "guided_backprop",
    "Guided backprop",
    "Springenberg et al. 2015, Striving for Simplicity: The All Convolutional Net",
    _PlainGradient("guided_backprop", guided_relu),
    layer=False,
)
_saliency_method(
    "guided_gradcam",
    "Guided Grad-CAM",
    "Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via "
    "Gradient-based Localization (guided Grad-CAM)",
    _guided_gradcam,
    layer=True,
)

#: Names of the :func:`saliency` methods, in registration order.
SALIENCY_METHODS = tuple(method.name for method in registry.methods("saliency"))


# ------------------------------------------------------------------ public
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
    image : array, path, PIL image or PreparedImage
        Prepared once; guided Grad-CAM reuses it for its class map.
    class_index : int, optional
        The class to explain; ``None`` explains the model's top class.
    method : {"vanilla", "smoothgrad", "guided_backprop", "guided_gradcam"}
        Any name in :data:`SALIENCY_METHODS`.

        * ``"vanilla"`` (Simonyan et al. 2014): the plain gradient.
        * ``"smoothgrad"`` (Smilkov et al. 2017): the gradient averaged over ``samples`` copies
          of the image with Gaussian noise of standard deviation ``noise × (max − min)`` of the
          input, computed ``batch_size`` copies at a time; reproducible through ``seed``.
        * ``"guided_backprop"`` (Springenberg et al. 2015): every ReLU/ReLU6 passes gradient
          back only where its input was positive and the gradient arriving is positive.
        * ``"guided_gradcam"`` (Selvaraju et al. 2017): guided backprop × the Grad-CAM map of
          ``layer`` (default :func:`~.targets.default_cam_layer`), i.e. fine detail limited to
          the class's region.
    reduce : bool
        True: a 2-D map, the largest absolute value over the colour channels, scaled to [0, 1].
        False: the signed gradient itself, (H, W, C) — the classic colour guided-backprop
        picture; show it with :func:`normalize_signed`.
    layer : str, optional
        Only for methods that read a layer (``"guided_gradcam"``).
    samples, noise, seed, batch_size
        ``"smoothgrad"`` only: ints ≥ 1 (25 samples, 16 a batch by default), a noise level ≥ 0
        (default 0.15, as the paper suggests 10–20 %), a seed in 0 … 2**31 − 1.
    output : int or str, optional
        Which output is the class head, for models with several outputs.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see :class:`ModelAdapter`).

    Returns
    -------
    numpy.ndarray
        float32, the height and width of ``image`` as given: (H, W) in [0, 1] when ``reduce``,
        else the signed (H, W, C) gradient, in logit units per input unit.

    Raises
    ------
    CnnVizError
        For an unknown method (with close matches), ``layer=`` with a method that reads no
        layer, a class index out of range, or SmoothGrad options out of range.
    LayerError, ModelError
        As for :func:`~.cam.grad_cam`.

    Examples
    --------
    >>> model, cat = cv.load_default_model(), cv.sample_image("chelsea")
    >>> saliency(model, cat, method="smoothgrad").shape                 # doctest: +SKIP
    (300, 451)
    >>> rgb = saliency(model, cat, method="guided_backprop", reduce=False)  # doctest: +SKIP
    >>> picture = normalize_signed(rgb)                                 # doctest: +SKIP
    """
    chosen = registry.get("saliency", method)
    if layer is not None and not chosen.needs_layer:
        readers = " or ".join(
            f"method={m.name!r}" for m in registry.methods("saliency") if m.needs_layer
        )
        raise CnnVizError(
            f"layer= is only used by {readers} (got method={method!r}); leave it out, or use "
            "grad_cam(..., layer=...) for a class map of that layer."
        )
    adapter = adapter_of(model, preprocess)
    prepared = adapter.prepare(image)
    head = class_head(adapter, output)
    index = class_number(class_index, head)
    path = cam_layer(adapter, layer) if chosen.needs_layer else None
    target = Target(adapter, adapter.model_input(prepared), head, index, path)
    grads = chosen.compute(target, samples=samples, noise=noise, seed=seed, batch_size=batch_size)
    size = prepared.size
    if not reduce:
        return np.ascontiguousarray(to_size(grads, size), dtype=np.float32)
    # Reduce at the model's resolution (the exact gradients), then resize the one plane.
    return to_unit(to_size(np.abs(grads).max(axis=-1), size))


def normalize_signed(array: Any, *, percentile: float = 99.5) -> np.ndarray:
    """Map a signed array (a gradient, a deconvnet projection) to [0, 1] for display.

    Zero goes to 0.5, and the scale is symmetric so the sign stays visible: values at
    ± the ``percentile``-th percentile of ``|array|`` go to 1 and 0 (beyond it they are clipped;
    a few extreme pixels would otherwise wash the rest out to gray).

    Parameters
    ----------
    array : array_like
        Any shape, e.g. (H, W, 3) from ``saliency(..., reduce=False)`` or
        :func:`~.deconvnet.deconvnet`.
    percentile : float
        In (0, 100]; 100 scales by the largest absolute value (nothing clipped).

    Returns
    -------
    numpy.ndarray
        float32, same shape, values in [0, 1]; all 0.5 for an all-zero array.

    Raises
    ------
    CnnVizError
        For a percentile that is not a number in (0, 100].

    Examples
    --------
    >>> normalize_signed(np.array([-2.0, 0.0, 1.0]), percentile=100).tolist()
    [0.0, 0.5, 0.75]
    """
    values = np.asarray(array, dtype=np.float32)
    if not 0.0 < check_number(percentile, "percentile") <= 100.0:
        raise CnnVizError(f"percentile must be in (0, 100]; got {percentile!r}.")
    finite = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    magnitude = np.abs(finite)
    scale = float(np.percentile(magnitude, percentile)) if magnitude.size else 0.0
    if scale <= 0.0:
        scale = float(magnitude.max()) if magnitude.size else 0.0
    if scale <= 0.0:
        return np.full(values.shape, 0.5, dtype=np.float32)
    return np.clip(0.5 + finite / (2.0 * scale), 0.0, 1.0).astype(np.float32)
