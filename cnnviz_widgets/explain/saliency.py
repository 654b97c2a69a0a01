"""Gradient saliency: which pixels the class score is most sensitive to.

:func:`saliency` differentiates the class logit with respect to the model input. The methods
are registered :class:`~.registry.Method` objects of kind ``"saliency"``:

* ``"vanilla"`` — Simonyan et al. 2014: the plain gradient;
* ``"smoothgrad"`` — Smilkov et al. 2017: the gradient averaged over noisy copies of the image;
* ``"guided_backprop"`` — Springenberg et al. 2015: every ReLU passes back only positive
  gradient where its input was positive (:func:`~.relu_rules.guided_relu`);
* ``"guided_gradcam"`` — Selvaraju et al. 2017: guided backprop times the Grad-CAM map;
* ``"integrated_gradients"``, ``"occlusion"`` — :mod:`.attribution`.

Input gradients come from one compiled function per output and ReLU rule
(:mod:`.input_gradients`); the batched methods run their batches from Python, so they can be
stopped (``cancel=``) and show progress (``progress=``).

:func:`normalize_signed` turns the signed gradients (and deconvnet projections) into pictures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cache import ActivationCache
from ..engine.adapter import ModelAdapter, Preprocess
from ..errors import CnnVizError, check_index, check_number, check_positive
from ..i18n import gettext_ as _
from ..images import PreparedImage, image_key, load_image
from ..progress import Cancel, bar, check
from . import registry
from .attribution import integrated_gradients, occlusion
from .gradients import layer_gradients
from .input_gradients import gradient_function, resolve_class
from .registry import Method
from .relu_rules import guided_relu
from .targets import Target, adapter_of, cam_layer, explained, to_size, to_unit

__all__ = ["SALIENCY_METHODS", "SMOOTHGRAD_BATCH", "normalize_signed", "saliency"]

#: Noisy copies of the image per forward pass: enough to keep both CPU cores busy, few enough
#: for a 224 px EfficientNet's activations to stay in the hundreds of MB.
SMOOTHGRAD_BATCH = 16


# ------------------------------------------------------------------ methods
@dataclass(frozen=True)
class _PlainGradient:
    """``compute`` of the input gradient through the model's ReLUs, or through ``relu``."""

    name: str
    relu: Callable[..., Any] | None

    def __call__(self, target: Target, **options: Any) -> np.ndarray:
        function = gradient_function(target.adapter, target.head, self.relu, self.name)
        grads, _ = function(target.batch, target.class_index)
        return grads[0].numpy()


def _smoothgrad(
    target: Target,
    *,
    samples: int = 25,
    noise: float = 0.15,
    seed: int = 0,
    batch_size: int = SMOOTHGRAD_BATCH,
    cancel: Cancel = None,
    progress: Any = True,
    **options: Any,
) -> np.ndarray:
    batch_size = check_positive(batch_size, "batch_size")
    samples = check_positive(samples, "samples")
    noise = check_number(noise, "noise", minimum=0.0)
    seed = check_index(seed, 2**31, "seed", _("SmoothGrad's noise generator"), things=_("seeds"))
    function = gradient_function(target.adapter, target.head)
    batch = target.batch[:1]
    class_index = resolve_class(function, batch, target.class_index)
    # The paper's noise level: sigma / (max - min) of the input.
    sigma = np.float32(noise * (float(batch.max()) - float(batch.min())))
    total = np.zeros(batch.shape[1:], np.float64)
    with bar(samples, "SmoothGrad", progress) as shown:
        for start in range(0, samples, batch_size):
            check(cancel, "SmoothGrad")
            count = min(batch_size, samples - start)
            # Seeded per batch: the same seed gives the same map, on any thread, in any order.
            values = np.random.default_rng([seed, start]).standard_normal(
                (count, *batch.shape[1:]), dtype=np.float32
            )
            grads, _scores = function(batch + sigma * values, class_index)
            total += np.asarray(grads, np.float64).sum(axis=0)
            shown.update(count)
    return (total / samples).astype(np.float32)


def _guided_gradcam(target: Target, **options: Any) -> np.ndarray:
    # The Grad-CAM map comes from the cached (features, gradient) pair of the layer, the guided
    # gradient from guided backprop's own function: no graph of its own to trace.
    cache = options.get("cache")
    cache = ActivationCache() if cache is None else cache  # the pair computed once either way
    pair = layer_gradients(target, cache=cache)
    cam = registry.get("cam", "gradcam").compute(target, cache=cache)
    function = gradient_function(target.adapter, target.head, guided_relu, "guided_backprop")
    guided, _ = function(target.batch, pair.class_index)
    guided = guided[0].numpy()
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

_saliency_method(
    "integrated_gradients",
    "Integrated gradients",
    "Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks",
    integrated_gradients,
    layer=False,
)
_saliency_method(
    "occlusion",
    "Occlusion",
    "Zeiler and Fergus 2014, Visualizing and Understanding Convolutional Networks (occlusion "
    "sensitivity)",
    occlusion,
    layer=False,
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
    steps: int = 32,
    baseline: Any = None,
    window: int | None = None,
    stride: int | None = None,
    output: int | str | None = None,
    target: Callable[[Any], Any] | None = None,
    preprocess: Preprocess | None = None,
    cancel: Cancel = None,
    progress: Any = True,
    cache: ActivationCache | None = None,
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
    method : {"vanilla", "smoothgrad", "guided_backprop", "guided_gradcam", \
"integrated_gradients", "occlusion"}
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
        * ``"integrated_gradients"`` (Sundararajan et al. 2017): ``(x − x') ⊙`` the gradient
          averaged over ``steps`` points of the straight path from the baseline ``x'`` to the
          image ``x`` (right Riemann sum); sums to the logit's change from ``x'`` to ``x``.
        * ``"occlusion"`` (Zeiler & Fergus 2014): a ``window`` square of the baseline slides
          over the image every ``stride`` px; each pixel gets the mean drop of the class
          probability over the windows covering it (probability units, not a gradient).
    reduce : bool
        True: a 2-D map, the largest absolute value over the colour channels, scaled to [0, 1].
        False: the signed gradient itself, (H, W, C) — the classic colour guided-backprop
        picture; show it with :func:`normalize_signed`.
    layer : str, optional
        Only for methods that read a layer (``"guided_gradcam"``).
    samples, noise, seed, batch_size
        ``"smoothgrad"`` only: ints ≥ 1 (25 samples, 16 a batch by default), a noise level ≥ 0
        (default 0.15, as the paper suggests 10–20 %), a seed in 0 … 2**31 − 1. ``batch_size``
        is also the batch of integrated gradients and occlusion.
    steps : int
        ``"integrated_gradients"``: points along the path, ≥ 1 (default 32).
    baseline : image, optional
        ``"integrated_gradients"`` and ``"occlusion"``: what "no information" looks like, an
        image of the same height and width as ``image``, prepared like it (resized,
        ``preprocess``); default ``None``, an all-zero model input.
    window, stride : int, optional
        ``"occlusion"``: side of the occluding square and its step, in model-input pixels
        (default: 1/8 of the shorter side, and half the window).
    cancel : threading.Event or callable, optional
        SmoothGrad, integrated gradients, occlusion: checked between batches; when set, the
        work stops and :class:`~cnnviz_widgets.errors.Cancelled` is raised.
    progress : bool
        The same methods: a progress bar once the work takes over a second.
    cache : ActivationCache, optional
        Keep the result (and guided Grad-CAM's layer pair) there and look it up first, as
        the explorers do; None (default): computed afresh, nothing kept — weights changed in
        place between calls are always seen.
    output : int or str, optional
        Which output is the class head, for models with several outputs (with ``target``:
        the output ``target`` reads, of any shape).
    target : callable, optional
        Explain your own score instead of a class (not with ``class_index``): a function of
        the output's scores (N, ...), before a final softmax/sigmoid, returning one value per
        image — see :func:`~.cam.grad_cam`. Guided Grad-CAM uses it for both halves.
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
        layer, a class index out of range, ``class_index`` with ``target`` or a bad ``target``,
        SmoothGrad / integrated-gradients / occlusion options out of range (``steps=0``, a
        window larger than the image), or a baseline of another size than the image.
    Cancelled
        When ``cancel`` asks to stop.
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
        readers = _(" or ").join(
            f"method={m.name!r}" for m in registry.methods("saliency") if m.needs_layer
        )
        raise CnnVizError(
            _(
                "layer= is only used by {readers} (got method={method!r}); leave it out, or use "
                "grad_cam(..., layer=...) for a class map of that layer."
            ).format(readers=readers, method=method)
        )
    adapter = adapter_of(model, preprocess)
    prepared = adapter.prepare(image)
    head, index = explained(adapter, output, class_index, target)
    if head.score is not None:
        cache = None  # a caller's function is no key that outlives the call
    path = cam_layer(adapter, layer) if chosen.needs_layer else None
    question = Target(adapter, adapter.model_input(prepared), head, index, path, prepared.key)
    start = _baseline(adapter, prepared, baseline)
    options = dict(samples=samples, noise=noise, seed=seed, batch_size=batch_size, steps=steps,
                   window=window, stride=stride)  # fmt: skip
    # With a cache (the explorers'), asked again is a lookup; the pair guided Grad-CAM reads
    # is kept there too.
    key = (adapter.identity, prepared.key, "saliency", method, head.index, index, path,
           None if start is None else image_key(start), tuple(sorted(options.items())))  # fmt: skip
    grads = None if cache is None else cache.get(key)
    if grads is None:
        grads = chosen.compute(question, baseline=start, cancel=cancel, progress=progress,
                               cache=cache, **options)  # fmt: skip
        grads = np.asarray(grads, np.float32)
        if cache is not None:
            grads = cache.put(key, grads)
    size = prepared.size
    if not reduce:
        return np.ascontiguousarray(to_size(grads, size), dtype=np.float32)
    # Reduce at the model's resolution (the exact gradients), then resize the one plane.
    return to_unit(to_size(np.abs(grads).max(axis=-1), size))


def _baseline(adapter: ModelAdapter, prepared: PreparedImage, baseline: Any) -> Any:
    """The baseline image as a model input (1, H, W, C), prepared exactly like the image."""
    if baseline is None:
        return None
    pixels = load_image(baseline)
    if pixels.shape[:2] != tuple(prepared.size):
        (height, width), (got_h, got_w) = prepared.size, pixels.shape[:2]
        raise CnnVizError(
            _(
                "baseline must be an image of the same size as the image ({height}×{width} px); "
                "got {got_h}×{got_w} px. Pass an image of that size, or baseline=None for an "
                "all-zero model input (black for models that take raw pixels)."
            ).format(height=height, width=width, got_h=got_h, got_w=got_w)
        )
    return adapter.model_input(adapter.prepare(pixels))


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
        raise CnnVizError(
            _("percentile must be in (0, 100]; got {percentile!r}.").format(percentile=percentile)
        )
    finite = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    magnitude = np.abs(finite)
    scale = float(np.percentile(magnitude, percentile)) if magnitude.size else 0.0
    if scale <= 0.0:
        scale = float(magnitude.max()) if magnitude.size else 0.0
    if scale <= 0.0:
        return np.full(values.shape, 0.5, dtype=np.float32)
    return np.clip(0.5 + finite / (2.0 * scale), 0.0, 1.0).astype(np.float32)
