"""Feature visualisation by gradient ascent: what image makes a channel, neuron or class fire?

The image is not optimised pixel by pixel (that gives high-frequency noise which excites a unit
without meaning anything to a person) but through a *parametrisation* and under random
*transformations*, following the recipe of Olah, Mordvintsev and Schubert, "Feature
Visualization" (Distill, 2017):

- **FFT parametrisation** (``param="fft"``): the variables are the 2-D Fourier coefficients of
  each colour plane, scaled by 1/frequency. Gradient steps then change all frequencies at a
  similar *relative* rate instead of letting high frequencies (which have the most pixels'
  worth of gradient) win, which is what makes the result look like a picture.
- **Colour decorrelation** (``decorrelate=True``): the three planes are not R, G, B but the
  principal axes of natural-image colour (luminance first), mixed back to RGB, then squashed
  into [0, 1] by a sigmoid.
- **Transformation robustness**: every step the model sees the image randomly shifted
  (``jitter``), scaled (``scale``) and rotated (``rotate``), grey filling in at the edges, so
  only patterns that survive small moves are reinforced.
- **Total-variation** (``tv``, on by default, mild) and **L2** (``l2``) penalties.
- **Pre-ReLU targets**: for a layer that ends in a ReLU, the objective reads the ReLU's input
  (for ReLU6, capped at 6 plus a little beyond; see ``_ReluRecorder``), so channels that are
  silent on the grey starting image still get a gradient.

Objectives are small composable values: ``channel(layer, i)``, ``neuron(layer, i)`` and
``class_logit(i)`` can be added, weighted and negated, and :func:`optimize_image` maximises any
of them ("class model visualisation" is ``optimize_image(model, class_logit(285))``).
:func:`filter_ascent` does the common case, one image per channel of a layer, all channels in
one batch.

Results are cached per image, in memory and on disk (see :func:`cache_dir`), keyed by a
fingerprint of the model's weights and every setting, so a grid page that mixes seen and new
channels only computes the new ones.

TensorFlow is imported inside functions: importing this module is cheap.

Examples
--------
>>> import cnnviz_widgets as cv
>>> from cnnviz_widgets.filter_ascent import filter_ascent
>>> model = cv.load_default_model()
>>> layer = "backbone/block5c_expand_activation"
>>> images = filter_ascent(model, layer, range(8))  # doctest: +SKIP
>>> images.shape, images.dtype                      # doctest: +SKIP
((8, 128, 128, 3), dtype('float32'))
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import operator
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.adapter import ModelAdapter, Preprocess, adapter_for
from ..errors import CnnVizError, LayerError, ModelError

__all__ = [
    "DEFAULT_STEPS",
    "AscentCancelled",
    "Objective",
    "cache_dir",
    "channel",
    "class_logit",
    "clear_memory_cache",
    "default_steps",
    "filter_ascent",
    "neuron",
    "optimize_image",
    "starting_images",
    "warm_up",
]

#: Optimisation steps when ``steps=None`` (capped by the ``CNNVIZ_MAX_STEPS`` variable).
DEFAULT_STEPS = 256

#: Bump when the algorithm changes so old cache entries are no longer found.
_ALGORITHM_VERSION = 1

#: Square root of the colour covariance of natural (ImageNet) images, columns are its principal
#: axes (luminance, then two colour-opponent axes) — the numbers published with the Distill
#: article's Lucid library. Normalised below so its largest column has unit length.
_COLOR_SQRT_COVARIANCE = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
_COLOR_MIX = _COLOR_SQRT_COVARIANCE / np.max(np.linalg.norm(_COLOR_SQRT_COVARIANCE, axis=0))

#: Standard deviation of the starting parameters: a faint, almost grey image, so the first
#: steps follow the network's gradient instead of fighting loud random noise.
_INIT_STD = 0.01

_PARAMS = ("fft", "pixel")


class AscentCancelled(Exception):
    """Raised by :func:`filter_ascent` when its ``cancel`` event is set; nothing was cached."""


# ============================================================================================
# objectives
# ============================================================================================

_KINDS = ("channel", "neuron", "class_logit")


@dataclass(frozen=True)
class _Term:
    weight: float
    kind: str  # one of _KINDS
    layer: str | None  # layer path (None for class_logit)
    index: int


class Objective:
    """A quantity to maximise, per image: a weighted sum of channel, neuron and logit terms.

    Build them with :func:`channel`, :func:`neuron` and :func:`class_logit`, and combine them
    with ``+``, ``-``, ``*`` by a number and unary ``-``. An objective knows the layer paths it
    needs (:attr:`layers`) and whether it needs the class logits (:attr:`needs_logits`).

    Called on a dict of layer outputs (``{path: (N, H, W, C) tensor}``) and the logits (or
    ``None``), it returns one value per image (N,).

    Examples
    --------
    >>> objective = channel("conv2", 3) - 0.5 * channel("conv2", 5) + class_logit(1)
    >>> objective
    Objective(channel('conv2', 3) - 0.5 * channel('conv2', 5) + class_logit(1))
    >>> objective.layers, objective.needs_logits
    (('conv2',), True)
    """

    __slots__ = ("terms",)

    def __init__(self, terms: Iterable[_Term]) -> None:
        self.terms: tuple[_Term, ...] = tuple(terms)

    # ---------------------------------------------------------------- algebra
    def __add__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + other.terms)

    def __sub__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-other)

    def __mul__(self, factor: float) -> Objective:
        if isinstance(factor, bool) or not isinstance(factor, (int, float, np.number)):
            return NotImplemented
        if not math.isfinite(float(factor)):
            raise CnnVizError(f"An objective can only be scaled by a finite number, got {factor}.")
        return Objective(
            _Term(t.weight * float(factor), t.kind, t.layer, t.index) for t in self.terms
        )

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return self * -1.0

    # ---------------------------------------------------------------- description
    @property
    def layers(self) -> tuple[str, ...]:
        """Layer paths the objective reads, in first-use order (no duplicates)."""
        return tuple(dict.fromkeys(t.layer for t in self.terms if t.layer is not None))

    @property
    def needs_logits(self) -> bool:
        """True when a term reads the class logits (the model then runs to its head)."""
        return any(t.kind == "class_logit" for t in self.terms)

    @property
    def structure(self) -> tuple[tuple[float, str, str | None], ...]:
        """Everything but the indices: objectives that share it are optimised in one batch."""
        return tuple((t.weight, t.kind, t.layer) for t in self.terms)

    @property
    def indices(self) -> tuple[int, ...]:
        """The channel / neuron / class index of each term."""
        return tuple(t.index for t in self.terms)

    def __repr__(self) -> str:
        parts = []
        for i, t in enumerate(self.terms):
            call = (
                f"{t.kind}({t.index})" if t.layer is None else f"{t.kind}({t.layer!r}, {t.index})"
            )
            weight = abs(t.weight)
            text = call if weight == 1.0 else f"{weight:g} * {call}"
            if i == 0:
                parts.append(text if t.weight >= 0 else f"-{text}")
            else:
                parts.append(("+ " if t.weight >= 0 else "- ") + text)
        return f"Objective({' '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Objective) and other.terms == self.terms

    def __hash__(self) -> int:
        return hash(self.terms)

    # ---------------------------------------------------------------- evaluation
    def __call__(self, features: dict[str, Any], logits: Any = None) -> Any:
        """The objective per image, (N,) float32, from layer outputs and logits (tensors)."""
        import tensorflow as tf

        indices = tf.constant([self.indices], tf.int32)
        batch = tf.shape(next(iter(features.values())) if features else logits)[0]
        return _evaluate(self.structure, features, logits, tf.tile(indices, [batch, 1]))

    def _resolved(self, adapter: ModelAdapter) -> Objective:
        """The same objective with full layer paths, every index checked against the model."""
        terms = []
        for t in self.terms:
            if t.kind == "class_logit":
                _check_class_index(adapter, t.index)
                terms.append(t)
                continue
            path = _spatial_layer(adapter, t.layer, t.kind)
            _check_channel_index(adapter, path, t.index)
            terms.append(_Term(t.weight, t.kind, path, t.index))
        return Objective(terms)


def _index(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise CnnVizError(f"{what} must be an integer, got the bool {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise CnnVizError(
            f"{what} must be an integer, got {value!r} ({type(value).__name__}). "
            f"Pass a whole number, e.g. {what}=0."
        ) from None


def _layer_name(layer: Any) -> str:
    if not isinstance(layer, str):
        raise LayerError(
            f"A layer is named by its path, a str such as 'backbone/block3a_expand_activation'; "
            f"got {type(layer).__name__}."
        )
    return layer


def channel(layer: str, index: int) -> Objective:
    """The mean activation of channel ``index`` of ``layer`` over the whole feature map.

    During an ascent, a layer that ends in a ReLU is read before its ReLU (see the module
    notes); called directly on layer outputs, the objective is the plain mean.

    Examples
    --------
    >>> channel("backbone/block4a_expand_activation", 7)
    Objective(channel('backbone/block4a_expand_activation', 7))
    """
    return Objective([_Term(1.0, "channel", _layer_name(layer), _index(index, "index"))])


def neuron(layer: str, index: int) -> Objective:
    """The activation of channel ``index`` of ``layer`` at the centre of the feature map.

    One unit has a limited receptive field, so its image shows one pattern in the middle with
    little structure around it, where :func:`channel` tiles the pattern everywhere.

    Examples
    --------
    >>> neuron("conv2", 0)
    Objective(neuron('conv2', 0))
    """
    return Objective([_Term(1.0, "neuron", _layer_name(layer), _index(index, "index"))])


def class_logit(index: int) -> Objective:
    """The pre-softmax score of class ``index`` (the model's softmax is left out).

    Maximising a logit rather than a probability makes the image look like the class, not
    like "not every other class".

    Examples
    --------
    >>> class_logit(285)  # Egyptian cat, for the default model
    Objective(class_logit(285))
    """
    return Objective([_Term(1.0, "class_logit", None, _index(index, "index"))])


def _evaluate(
    structure: tuple[tuple[float, str, str | None], ...],
    features: dict[str, Any],
    logits: Any,
    indices: Any,
) -> Any:
    """Batched evaluation: image i uses ``indices[i, j]`` for term j. Returns (N,) float32."""
    import tensorflow as tf

    total = None
    for j, (weight, kind, layer) in enumerate(structure):
        idx = indices[:, j]
        if kind == "class_logit":
            value = tf.gather(tf.cast(logits, tf.float32), idx, axis=1, batch_dims=1)
        else:
            maps = tf.cast(features[layer], tf.float32)
            if kind == "channel":
                # Averaging first and gathering second touches (N, C) values, not (N, H, W).
                value = tf.gather(tf.reduce_mean(maps, axis=(1, 2)), idx, axis=1, batch_dims=1)
            else:
                h, w = tf.shape(maps)[1] // 2, tf.shape(maps)[2] // 2
                value = tf.gather(maps[:, h, w, :], idx, axis=1, batch_dims=1)
        term = weight * value
        total = term if total is None else total + term
    return total


def _spatial_layer(adapter: ModelAdapter, layer: str | None, kind: str) -> str:
    path = adapter.resolve_layer(layer, spatial=False)
    info = adapter.layer_info(path)
    if not info.spatial or not info.channels:
        convs = [p for p in adapter.layer_paths if adapter.layer_info(p).channels]
        raise LayerError(
            f"Layer {path!r} ({info.class_name}) has output shape {info.output_shape}: it has no "
            f"channels of a feature map for {kind}() to maximise. Pick a layer with a spatial "
            f"(height, width, channels) output, e.g. {convs[-1]!r}"
            + (", or use class_logit(i) for a class score." if len(info.output_shape) == 1 else ".")
        )
    return path


def _check_channel_index(adapter: ModelAdapter, path: str, index: int) -> None:
    count = adapter.layer_info(path).channels
    if not 0 <= index < count:
        raise CnnVizError(
            f"channel {index} is out of range: layer {path!r} has {count} channels "
            f"(0–{count - 1}). Pick channels between 0 and {count - 1}."
        )


def _check_class_index(adapter: ModelAdapter, index: int) -> None:
    outputs = [adapter.layer_info(p).output_shape for p in adapter.output_names]
    classes = outputs[0][-1] if len(outputs) == 1 and len(outputs[0]) == 1 else None
    if classes is not None and not 0 <= index < classes:
        raise CnnVizError(
            f"class {index} is out of range: model {adapter.model.name!r} has {classes} classes "
            f"(0–{classes - 1}). Pick a class index between 0 and {classes - 1}."
        )


# ============================================================================================
# settings
# ============================================================================================


@dataclass(frozen=True)
class _Settings:
    """Every setting that changes the result (all part of the cache key)."""

    size: int
    steps: int
    seed: int
    lr: float
    param: str
    decorrelate: bool
    jitter: int
    scale: tuple[float, float]
    rotate: float
    tv: float
    l2: float


def _max_steps_from_env() -> int | None:
    raw = os.environ.get("CNNVIZ_MAX_STEPS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise CnnVizError(
            f"The environment variable CNNVIZ_MAX_STEPS={raw!r} is not a whole number. Set it "
            "to a positive integer such as 32, or unset it."
        ) from None
    if value < 1:
        raise CnnVizError(
            f"The environment variable CNNVIZ_MAX_STEPS={value} must be at least 1. Set it to a "
            "positive integer such as 32, or unset it."
        )
    return value


def default_steps() -> int:
    """The number of steps ``steps=None`` means: 256, capped by ``$CNNVIZ_MAX_STEPS`` if set.

    Widgets that show a steps control should start it here rather than at
    :data:`DEFAULT_STEPS`, so that notebooks run in CI honour the cap.

    Examples
    --------
    >>> default_steps() <= DEFAULT_STEPS
    True
    """
    cap = _max_steps_from_env()
    return DEFAULT_STEPS if cap is None else min(DEFAULT_STEPS, cap)


def _finite(value: Any, what: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise CnnVizError(f"{what} must be a number, got {value!r}.")
    number = float(value)
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        floor = "" if minimum is None else f" ≥ {minimum:g}"
        raise CnnVizError(f"{what} must be a finite number{floor}, got {value!r}.")
    return number


def _settings(
    *,
    size: Any,
    steps: Any,
    seed: Any,
    lr: Any,
    param: Any,
    decorrelate: Any,
    jitter: Any,
    scale: Any,
    rotate: Any,
    tv: Any,
    l2: Any,
) -> _Settings:
    size = _index(size, "size")
    if size < 8:
        raise CnnVizError(f"size must be at least 8 pixels, got {size}. Try size=128.")
    steps = default_steps() if steps is None else _index(steps, "steps")
    if steps <= 0:
        raise CnnVizError(
            f"steps must be at least 1, got {steps}. Use steps=None for the default "
            f"({DEFAULT_STEPS}) or a positive number such as 128."
        )
    if param not in _PARAMS:
        raise CnnVizError(
            f"param must be 'fft' (frequency-decorrelated, the default) or 'pixel'; got {param!r}."
        )
    jitter = max(1, round(size / 16)) if jitter is None else _index(jitter, "jitter")
    if jitter < 0 or jitter > size // 2:
        raise CnnVizError(
            f"jitter must be between 0 and size/2 = {size // 2} pixels, got {jitter}."
        )
    if isinstance(scale, (int, float, np.number)) and not isinstance(scale, bool):
        scale = (1.0 / float(scale), float(scale)) if float(scale) >= 1 else (float(scale), 1.0)
    if not (isinstance(scale, (tuple, list)) and len(scale) == 2):
        raise CnnVizError(
            f"scale must be a (smallest, largest) zoom pair such as (0.9, 1.1), got {scale!r}."
        )
    low, high = (_finite(s, "scale", minimum=0.01) for s in scale)
    if low > high:
        raise CnnVizError(f"scale must be (smallest, largest); got ({low}, {high}). Swap them.")
    return _Settings(
        size=size,
        steps=steps,
        seed=_index(seed, "seed"),
        lr=_finite(lr, "lr", minimum=0.0),
        param=param,
        decorrelate=bool(decorrelate),
        jitter=jitter,
        scale=(low, high),
        rotate=_finite(rotate, "rotate", minimum=0.0),
        tv=_finite(tv, "tv", minimum=0.0),
        l2=_finite(l2, "l2", minimum=0.0),
    )


# ============================================================================================
# parametrisation (numpy side: shapes, starting values, random transforms)
# ============================================================================================


def _param_shape(settings: _Settings, planes: int) -> tuple[int, ...]:
    s = settings.size
    if settings.param == "fft":
        # (real/imaginary, planes, rows, rfft columns): real and imaginary parts as two
        # contiguous blocks, which unstack cheaply (slicing a trailing axis of 2, and its
        # gradient, cost more than the FFT itself).
        return (2, planes, s, s // 2 + 1)
    return (s, s, planes)


def _spectrum_scale(size: int) -> np.ndarray:
    """Per-frequency factor (size, size//2 + 1): 1/f, normalised to unit pixel variance.

    Scaling the Fourier coefficients by 1/f gives them natural images' power spectrum, so a
    unit step on every coefficient changes coarse and fine structure alike. The normalisation
    makes unit-variance coefficients give (about) unit-variance pixels, whatever the size.
    """
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    freq = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freq, 1.0 / size)
    # Columns 0 and size/2 of the half spectrum stand for themselves; the others also for
    # their mirror images in the full spectrum.
    count = np.full(scale.shape[1], 2.0)
    count[0] = 1.0
    if size % 2 == 0:
        count[-1] = 1.0
    power = float((scale**2 * count).sum())
    # irfft2d divides by size² and each complex coefficient has two unit-variance halves.
    return (scale * size * size / math.sqrt(2.0 * power)).astype(np.float32)


def _stable_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _image_rngs(settings: _Settings, objective: Objective) -> list[np.random.Generator]:
    """Two independent generators for one image: its starting values, its random transforms.

    Seeded by the objective too: each channel gets its own start and its own transforms, and an
    image never depends on which other images share its batch (so per-image caching holds).
    """
    digest = _stable_hash(objective.structure, objective.indices)
    words = [int(digest[i : i + 8], 16) for i in range(0, 32, 8)]
    seeds = np.random.SeedSequence([settings.seed & 0xFFFFFFFF, settings.seed >> 32, *words])
    return [np.random.default_rng(child) for child in seeds.spawn(2)]


def _start_params(settings: _Settings, objective: Objective, planes: int) -> np.ndarray:
    rng = _image_rngs(settings, objective)[0]
    return (rng.standard_normal(_param_shape(settings, planes)) * _INIT_STD).astype(np.float32)


def _random_draws(settings: _Settings, objective: Objective) -> np.ndarray:
    """(steps, 4) uniform draws in [0, 1) for one image: x shift, y shift, zoom, angle."""
    return _image_rngs(settings, objective)[1].random((settings.steps, 4))


def _transforms(settings: _Settings, draws: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """Per-image projective transforms (N, 8) for ``ImageProjectiveTransformV3``.

    They map each *output* (canvas) pixel to the image pixel it samples: around the centres,
    undo the rotation and zoom, and shift by the jitter; what falls outside the image is grey.
    The canvas is the image's size, or the model's fixed input size (then the image is
    resampled to fill it).
    """
    s = settings.size
    out_h, out_w = canvas
    # Image pixels per canvas pixel for the un-zoomed content area.
    ky, kx = s / out_h, s / out_w
    dx = (draws[:, 0] * 2 - 1) * settings.jitter
    dy = (draws[:, 1] * 2 - 1) * settings.jitter
    lo, hi = settings.scale
    # Uniform in log-zoom, so zooming in and out are equally likely.
    zoom = np.exp(np.log(lo) + draws[:, 2] * (np.log(hi) - np.log(lo)))
    angle = np.deg2rad((draws[:, 3] * 2 - 1) * settings.rotate)
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    a0, a1, b0, b1 = cos * kx, sin * kx, -sin * ky, cos * ky
    cx_out, cy_out = (out_w - 1) / 2, (out_h - 1) / 2
    c_in = (s - 1) / 2
    a2 = c_in + dx - a0 * cx_out - a1 * cy_out
    b2 = c_in + dy - b0 * cx_out - b1 * cy_out
    zeros = np.zeros_like(a0)
    return np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1).astype(np.float32)


# ============================================================================================
# the traced functions (TensorFlow side)
# ============================================================================================


def _to_image(params: Any, settings: _Settings, planes: int) -> Any:
    """Parameters -> images (N, size, size, planes) in [0, 1]."""
    import tensorflow as tf

    s = settings.size
    if settings.param == "fft":
        real, imag = tf.unstack(params * tf.constant(_spectrum_scale(s)), axis=1)
        x = tf.signal.irfft2d(tf.complex(real, imag), fft_length=[s, s])  # (N, planes, s, s)
        if settings.decorrelate and planes == 3:
            x = tf.einsum("npij,rp->nrij", x, tf.constant(_COLOR_MIX))
        x = tf.transpose(x, [0, 2, 3, 1])
    else:
        x = params
        if settings.decorrelate and planes == 3:
            x = tf.einsum("nijp,rp->nijr", x, tf.constant(_COLOR_MIX))
    return tf.sigmoid(x)


def _model_input(adapter: ModelAdapter, images: Any) -> Any:
    """[0, 1] images -> what the model takes: 0–255 pixels, then the adapter's preprocess."""
    import tensorflow as tf

    batch = images * 255.0
    if adapter.preprocess is not None:
        try:
            batch = tf.cast(adapter.preprocess(batch), tf.float32)
        except Exception as exc:
            raise ModelError(
                f"The preprocess function {adapter.preprocess!r} failed on a TensorFlow tensor "
                f"({type(exc).__name__}: {exc}). Filter ascent needs gradients through it, so it "
                "must use TensorFlow or keras.ops operations (keras.applications' preprocess_input "
                "functions do); rewrite it with keras.ops, or fold it into the model as a layer."
            ) from exc
    return batch


#: Weight of the uncapped pre-activation in the surrogate for a ReLU6 output (see below).
_BEYOND_CAP_WEIGHT = 0.1


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
        import tensorflow as tf

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
        import tensorflow as tf

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
    structure: tuple,
    images: Any,
    transforms: Any,
    canvas: Any,
    pre_relu: bool = False,
) -> tuple[Any, Any]:
    """Transform, feed the model; return (features by path, logits or None)."""
    import tensorflow as tf

    if transforms is None:
        warped = images
    else:
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=transforms,
            output_shape=tf.constant(canvas, tf.int32),
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


def _step_function(
    adapter: ModelAdapter, structure: tuple, settings: _Settings, planes: int, canvas: tuple
) -> Any:
    """One Adam step on a batch, traced once per graph-changing setting and kept."""
    # A penalty switched off (weight 0) is left out of the graph: it is not free to compute.
    penalties = (settings.tv > 0, settings.l2 > 0)
    key = (
        "filter_ascent.step",
        structure,
        settings.size,
        settings.param,
        settings.decorrelate,
        planes,
        canvas,
        penalties,
    )

    def build() -> Any:
        import tensorflow as tf

        shape = _param_shape(settings, planes)
        n_terms = len(structure)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        use_tv, use_l2 = penalties

        def step(params, m, v, t, indices, transforms, hyper):
            lr, tv, l2 = hyper[0], hyper[1], hyper[2]
            with tf.GradientTape() as tape:
                tape.watch(params)
                images = _to_image(params, settings, planes)
                features, logits = _forward(
                    adapter, structure, images, transforms, canvas, pre_relu=True
                )
                # Images are independent (inference mode), so one summed loss gives each image
                # exactly its own gradient.
                loss = -tf.reduce_sum(_evaluate(structure, features, logits, indices))
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
            # Adam, written out so the whole state is plain tensors: no tf.Variable to create
            # per batch, no optimizer object, and one trace serves any batch.
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * tf.square(grad)
            # Bias corrections folded into the step size: two scalars instead of two divisions
            # of the whole state (the usual rearrangement; eps is scaled to match).
            correction = tf.sqrt(1 - tf.pow(beta2, t))
            step_size = lr * correction / (1 - tf.pow(beta1, t))
            params = params - step_size * m / (tf.sqrt(v) + eps * correction)
            return params, m, v

        spec = tf.TensorSpec((None, *shape), tf.float32)
        signature = [
            spec,
            spec,
            spec,
            tf.TensorSpec((), tf.float32),
            tf.TensorSpec((None, n_terms), tf.int32),
            tf.TensorSpec((None, 8), tf.float32),
            tf.TensorSpec((3,), tf.float32),
        ]
        # No autograph: the step has no Python control flow on tensors, and our own errors
        # (bad preprocess, empty map) must reach the caller as they are, not as StagingError.
        # functools.partial: TensorFlow counts traces per code object, and one step function
        # per layer is by design, not the accidental retracing it warns about.
        return tf.function(functools.partial(step), input_signature=signature, autograph=False)

    return adapter.traced(key, build)


def _render_function(adapter: ModelAdapter, settings: _Settings, planes: int) -> Any:
    """Parameters -> images, traced once per parametrisation (for frames and the result).

    Kept out of the step: images are needed every ``every`` steps, not every step.
    """
    key = ("filter_ascent.render", settings.size, settings.param, settings.decorrelate, planes)

    def build() -> Any:
        import tensorflow as tf

        spec = tf.TensorSpec((None, *_param_shape(settings, planes)), tf.float32)
        return tf.function(
            functools.partial(_to_image, settings=settings, planes=planes),
            input_signature=[spec],
            autograph=False,
        )

    return adapter.traced(key, build)


# ============================================================================================
# cache
# ============================================================================================

_fingerprints: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_fingerprint_lock = threading.Lock()
_memory: dict[str, np.ndarray] = {}
_memory_order: list[str] = []
_memory_lock = threading.Lock()
_MEMORY_BUDGET_BYTES = 256 * 2**20


def cache_dir() -> Path:
    """Folder of the on-disk result cache.

    ``$CNNVIZ_CACHE_DIR`` if set, else the user cache folder
    (``platformdirs.user_cache_dir("cnnviz_widgets")``, e.g. ``~/.cache/cnnviz_widgets``).
    Ascent images live in its ``filter_ascent/`` sub-folder, one ``.npy`` file per image; delete
    the folder to empty the cache.
    """
    override = os.environ.get("CNNVIZ_CACHE_DIR", "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cnnviz_widgets"))


def clear_memory_cache() -> None:
    """Forget the in-memory copies of ascent images (the disk cache is left alone)."""
    with _memory_lock:
        _memory.clear()
        _memory_order.clear()


def _model_fingerprint(adapter: ModelAdapter) -> str:
    """Hash of the architecture (layer paths, classes, shapes) and every weight's bytes.

    Computed once per model and kept (weak reference): a model that is trained in place after
    its first ascent keeps its old fingerprint, as documented.
    """
    model = adapter.model
    with _fingerprint_lock:
        known = _fingerprints.get(model)
        if known is not None:
            return known
        digest = hashlib.sha256()
        for info in adapter.layers:
            digest.update(repr((info.path, info.class_name, info.output_shape)).encode())
        for weight in model.weights:
            array = np.ascontiguousarray(np.asarray(weight.numpy()))
            digest.update(repr((weight.path, array.shape, str(array.dtype))).encode())
            digest.update(array.tobytes())
        value = digest.hexdigest()
        _fingerprints[model] = value
        return value


def _preprocess_id(preprocess: Preprocess | None) -> str | None:
    """A stable name for a preprocess callable (its module, name and code), for cache keys."""
    if preprocess is None:
        return None
    func = getattr(preprocess, "__func__", preprocess)
    name = (
        f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', type(func).__name__)}"
    )
    code = getattr(func, "__code__", None)
    if code is None:
        return name
    cells = [repr(c.cell_contents) for c in (getattr(func, "__closure__", None) or ())]
    parts = (
        code.co_code.hex(),
        repr(code.co_consts),
        cells,
        repr(getattr(func, "__defaults__", None)),
    )
    return f"{name}:{_stable_hash(*parts)[:16]}"


def _entry_key(
    fingerprint: str, preprocess: str | None, settings: _Settings, objective: Objective
) -> str:
    return _stable_hash(
        _ALGORITHM_VERSION,
        fingerprint,
        preprocess,
        settings.__dict__,
        objective.structure,
        objective.indices,
    )


def _entry_path(fingerprint: str, key: str, objective: Objective) -> Path:
    # A readable prefix (layer and channel) and the key's hash, which covers everything.
    first = objective.terms[0]
    label = f"{first.kind}-{first.layer or 'logits'}-{first.index}"
    label = re.sub(r"[^A-Za-z0-9_.-]+", ".", label)[:80]
    return cache_dir() / "filter_ascent" / fingerprint[:16] / f"{label}-{key[:24]}.npy"


def _memory_get(key: str) -> np.ndarray | None:
    with _memory_lock:
        return _memory.get(key)


def _memory_put(key: str, value: np.ndarray) -> None:
    with _memory_lock:
        if key not in _memory:
            _memory_order.append(key)
        _memory[key] = value
        total = sum(a.nbytes for a in _memory.values())
        while total > _MEMORY_BUDGET_BYTES and len(_memory_order) > 1:
            old = _memory.pop(_memory_order.pop(0))
            total -= old.nbytes


def _disk_get(path: Path, size: int) -> np.ndarray | None:
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # missing, or damaged (e.g. by another tool): just compute again
    if value.shape != (size, size, 3) or value.dtype != np.uint8:
        return None
    return value


def _disk_put(path: Path, value: np.ndarray) -> None:
    """Write atomically: a temp file in the same folder, then ``os.replace``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=".tmp-", suffix=".npy", delete=False
        )
    except OSError:
        return  # a read-only or full disk only costs the cache, never the result
    try:
        with handle:
            np.save(handle, value, allow_pickle=False)
        os.replace(handle.name, path)
    except OSError:
        Path(handle.name).unlink(missing_ok=True)  # e.g. disk full: only the cache entry is lost
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)  # never leave a partial file behind
        raise


# ============================================================================================
# the optimisation loop
# ============================================================================================


def _is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if is_set is not None else cancel())


def _canvas(adapter: ModelAdapter, settings: _Settings) -> tuple[int, int]:
    """(height, width) the model sees: the image's own size, or the model's fixed input size.

    No extra border is added around the image (the Lucid recipe pads first): the random shift
    brings grey in at the edges anyway, and the model then runs at exactly ``size``, as cheap
    as a bare ascent step.
    """
    h, w, _ = adapter.input_shape
    return (settings.size if h is None else int(h), settings.size if w is None else int(w))


def _minimum_size(adapter: ModelAdapter, structure: tuple, settings: _Settings) -> int | None:
    """The smallest ``size`` at which the objective's layers have a non-empty map (or None)."""
    import tensorflow as tf

    def works(size: int) -> bool:
        trial = _Settings(**{**settings.__dict__, "size": size, "jitter": settings.jitter})
        canvas = _canvas(adapter, trial)

        def probe(images):
            _forward(adapter, structure, images, None, None)
            return tf.zeros(())

        try:
            tf.function(probe, autograph=False).get_concrete_function(
                tf.TensorSpec((1, canvas[0], canvas[1], 3), tf.float32)
            )
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


def _call_step(
    adapter: ModelAdapter, structure: tuple, settings: _Settings, planes: int, args: tuple
) -> Any:
    canvas = _canvas(adapter, settings)
    step = _step_function(adapter, structure, settings, planes, canvas)
    try:
        return step(*args)
    except _EmptyMap as exc:
        failure: Exception = exc
    except CnnVizError:
        raise  # already says what is wrong and how to fix it
    except Exception as exc:
        if getattr(step, "experimental_get_tracing_count", lambda: 1)() > 0:
            raise  # a traced function failing at run time is not a size problem
        failure = exc
    minimum = _minimum_size(adapter, structure, settings)
    layers = ", ".join(repr(p) for p in dict.fromkeys(s[2] for s in structure if s[2]))
    what = f"layer {layers}" if layers else "the model's head"
    if minimum is None:
        raise failure
    raise CnnVizError(
        f"size={settings.size} is too small for {what} of model {adapter.model.name!r}: the "
        f"network downsamples a {canvas[0]}×{canvas[1]} input to an empty feature map. Use "
        f"size ≥ {minimum}."
    ) from (None if isinstance(failure, _EmptyMap) else failure)


def _optimise(
    adapter: ModelAdapter,
    objectives: list[Objective],
    settings: _Settings,
    *,
    batch_size: int,
    every: int,
    report: Callable[[int, int, dict[int, np.ndarray] | None], None],
    cancel: Any,
    streaming: bool = True,
) -> list[np.ndarray]:
    """Optimise images for ``objectives`` (one shared structure); return uint8 images."""
    import tensorflow as tf

    planes = 1 if adapter.input_shape[2] == 1 else 3
    if adapter.input_shape[2] not in (1, 3):
        raise ModelError(
            f"Model {adapter.model.name!r} takes {adapter.input_shape[2]}-channel images; feature "
            "visualisation draws RGB (3) or grayscale (1) images. Wrap the model so it takes one "
            "of those."
        )
    structure = objectives[0].structure
    canvas = _canvas(adapter, settings)
    hyper = tf.constant([settings.lr, settings.tv, settings.l2], tf.float32)
    chunks = []
    for start in range(0, len(objectives), batch_size):
        group = objectives[start : start + batch_size]
        params = tf.constant(np.stack([_start_params(settings, o, planes) for o in group]))
        draws = np.stack([_random_draws(settings, o) for o in group], axis=1)  # (steps, n, 4)
        transforms = np.stack([_transforms(settings, d, canvas) for d in draws])
        zeros = tf.zeros_like(params)
        chunks.append(
            {
                "start": start,
                "state": (params, zeros, zeros),
                "indices": tf.constant([o.indices for o in group], tf.int32),
                "transforms": transforms,
            }
        )
    render = _render_function(adapter, settings, planes)
    total = settings.steps
    for step in range(total):
        for chunk in chunks:
            # Checked before every batch step, so a cancel waits at most one step.
            if _is_cancelled(cancel):
                raise AscentCancelled(f"Filter ascent cancelled at step {step} of {total}.")
            params, m, v = chunk["state"]
            args = (
                params,
                m,
                v,
                tf.constant(step + 1, tf.float32),
                chunk["indices"],
                tf.constant(chunk["transforms"][step]),
                hyper,
            )
            chunk["state"] = _call_step(adapter, structure, settings, planes, args)
        done = step + 1
        # Frames are rendered only for someone who listens (render + copy cost a few ms).
        show = streaming and (done == 1 or done == total or done % every == 0)
        frames = None
        if show:
            frames = {}
            for chunk in chunks:
                array = render(chunk["state"][0]).numpy()
                for i in range(array.shape[0]):
                    frames[chunk["start"] + i] = array[i]
        report(done, total, frames)
    results = []
    for chunk in chunks:
        array = render(chunk["state"][0]).numpy()
        if planes == 1:
            array = np.repeat(array, 3, axis=-1)
        # 8-bit levels: exactly what a screen shows, and what the cache stores losslessly.
        results.extend(np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8))
    return results


def _as_objectives(objectives: Objective | Sequence[Objective]) -> list[Objective]:
    if isinstance(objectives, Objective):
        return [objectives]
    items = list(objectives)
    if not items:
        raise CnnVizError("No objectives given: pass at least one, e.g. channel('conv2', 0).")
    for item in items:
        if not isinstance(item, Objective):
            raise CnnVizError(
                f"Expected Objective values (channel(...), neuron(...), class_logit(...)); got "
                f"{type(item).__name__}."
            )
    return items


def optimize_image(
    model: Any,
    objectives: Objective | Sequence[Objective],
    *,
    size: int = 128,
    steps: int | None = None,
    seed: int = 0,
    lr: float = 0.1,
    param: str = "fft",
    decorrelate: bool = True,
    jitter: int | None = None,
    scale: tuple[float, float] | float = (0.8, 1.25),
    rotate: float = 15.0,
    tv: float = 1.0,
    l2: float = 0.0,
    batch_size: int = 16,
    every: int = 8,
    on_step: Callable[[int, int, np.ndarray | None], None] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    preprocess: Preprocess | None = None,
    cache: bool = True,
) -> np.ndarray:
    """Images that maximise objectives: one image per objective, optimised in batches.

    Parameters are those of :func:`filter_ascent`, with ``objectives`` (one
    :class:`Objective` or a list) in place of ``layer`` and ``channels``. Objectives that
    differ only in their indices (``channel(L, 3)``, ``channel(L, 7)``) share batches and one
    traced step; others are optimised group by group.

    Returns
    -------
    np.ndarray
        float32 (N, size, size, 3) in [0, 1], in the order of ``objectives``.

    Examples
    --------
    >>> cat = optimize_image(model, class_logit(285), steps=128)  # doctest: +SKIP
    >>> mix = optimize_image(model, channel(L, 3) + channel(L, 9))  # doctest: +SKIP
    """
    items = _as_objectives(objectives)
    settings = _settings(
        size=size,
        steps=steps,
        seed=seed,
        lr=lr,
        param=param,
        decorrelate=decorrelate,
        jitter=jitter,
        scale=scale,
        rotate=rotate,
        tv=tv,
        l2=l2,
    )
    batch_size = _index(batch_size, "batch_size")
    every = _index(every, "every")
    if batch_size < 1 or every < 1:
        raise CnnVizError(
            f"batch_size and every must be at least 1 (got {batch_size} and {every})."
        )
    adapter = adapter_for(model, preprocess=preprocess)
    # A never-built Sequential model learns its input here: RGB images of the asked size.
    adapter.build_for((settings.size, settings.size, 3))
    resolved = [o._resolved(adapter) for o in items]
    if _is_cancelled(cancel):
        raise AscentCancelled("Filter ascent cancelled before it started.")

    n = len(resolved)
    results: list[np.ndarray | None] = [None] * n
    keys: list[str] = [""] * n
    paths: list[Path | None] = [None] * n
    if cache:
        fingerprint = _model_fingerprint(adapter)
        prep = _preprocess_id(adapter.preprocess)
        for i, objective in enumerate(resolved):
            keys[i] = _entry_key(fingerprint, prep, settings, objective)
            paths[i] = _entry_path(fingerprint, keys[i], objective)
            found = _memory_get(keys[i])
            if found is None:
                found = _disk_get(paths[i], settings.size)
                if found is not None:
                    _memory_put(keys[i], found)
            results[i] = found

    # Each distinct missing objective is computed once, even if requested twice.
    todo: dict[Objective, list[int]] = {}
    for i, objective in enumerate(resolved):
        if results[i] is None:
            todo.setdefault(objective, []).append(i)
    groups: dict[tuple, list[Objective]] = {}
    for objective in todo:
        groups.setdefault(objective.structure, []).append(objective)

    def current(frames_by_slot: dict[int, np.ndarray]) -> np.ndarray:
        out = np.full((n, settings.size, settings.size, 3), 0.5, np.float32)
        for i, value in enumerate(results):
            if value is not None:
                out[i] = value.astype(np.float32) / 255.0
        for i, frame in frames_by_slot.items():
            out[i] = frame  # broadcasting turns a gray (…, 1) frame into RGB
        return out

    group_list = list(groups.values())
    for g, group in enumerate(group_list):

        def report(done: int, total: int, frames: dict[int, np.ndarray] | None, g=g, group=group):
            if on_step is None:
                return
            images = None
            if frames is not None:
                images = current({slot: frames[j] for j, o in enumerate(group) for slot in todo[o]})
            # Several groups run one after another: report one continuous count.
            on_step(g * total + done, len(group_list) * total, images)

        computed = _optimise(
            adapter,
            group,
            settings,
            batch_size=batch_size,
            every=every,
            report=report,
            cancel=cancel,
            streaming=on_step is not None,
        )
        for objective, image in zip(group, computed, strict=True):
            for i in todo[objective]:
                results[i] = image
            if cache:
                i = todo[objective][0]
                _memory_put(keys[i], image)
                _disk_put(paths[i], image)
    if not todo and on_step is not None:
        on_step(settings.steps, settings.steps, current({}))
    return np.stack([r.astype(np.float32) / 255.0 for r in results])


def filter_ascent(
    model: Any,
    layer: str,
    channels: int | Iterable[int],
    *,
    size: int = 128,
    steps: int | None = None,
    seed: int = 0,
    lr: float = 0.1,
    param: str = "fft",
    decorrelate: bool = True,
    jitter: int | None = None,
    scale: tuple[float, float] | float = (0.8, 1.25),
    rotate: float = 15.0,
    tv: float = 1.0,
    l2: float = 0.0,
    batch_size: int = 16,
    every: int = 8,
    on_step: Callable[[int, int, np.ndarray | None], None] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    preprocess: Preprocess | None = None,
    cache: bool = True,
) -> np.ndarray:
    """Synthesise, for each channel, the image that excites it most (activation maximisation).

    All channels are optimised together, ``batch_size`` images per traced step; image ``i``
    maximises the mean activation of channel ``channels[i]``.

    Parameters
    ----------
    model : keras.Model
        Any Keras 3 CNN, nested sub-models included; or a :class:`ModelAdapter`.
    layer : str
        Layer path (``"backbone/block4a_expand_activation"``) or unambiguous layer name.
    channels : int or iterable of int
        Channel indices of ``layer``.
    size : int
        Side of the square images, in pixels: the size the model sees them at (fixed-size
        models see them resampled to their input size).
    steps : int, optional
        Adam steps. ``None`` means :data:`DEFAULT_STEPS` (256), capped by the environment
        variable ``CNNVIZ_MAX_STEPS`` if set (notebooks in CI set it).
    seed : int
        Seeds the starting image and the random transforms: the same seed gives the same
        images, bit for bit.
    lr : float
        Adam learning rate.
    param : {"fft", "pixel"}
        Image parametrisation: 1/f-scaled Fourier coefficients (clean, picture-like) or raw
        pixels (noisier; for comparison).
    decorrelate : bool
        Optimise in decorrelated colour space (see the module notes).
    jitter : int, optional
        Largest random shift each step, in pixels (grey comes in at the edges). Default
        ``size / 16``.
    scale : (float, float) or float
        Range of the random zoom each step; a single ``s`` means ``(1/s, s)``.
    rotate : float
        Largest random rotation each step, in degrees.
    tv, l2 : float
        Weights of the total-variation penalty (mean absolute neighbour difference) and of the
        L2 penalty (mean squared distance from grey), against the mean activation.
    batch_size : int
        Images per step; more channels are split into batches that advance together.
    every : int
        ``on_step`` receives images after the first step, every ``every`` steps, and at the end.
    on_step : callable, optional
        ``on_step(step, total, images)`` after every step; ``images`` is a float32 (N, size,
        size, 3) array on the steps above, else ``None``.
    cancel : threading.Event or callable, optional
        Checked before every batch step: once set (or returning True) the run stops and raises
        :class:`AscentCancelled`. Nothing of a cancelled run is cached.
    preprocess : callable, optional
        For models whose preprocessing is outside them: applied to the 0–255 batch inside the
        optimisation, so it must use TensorFlow / ``keras.ops`` operations.
    cache : bool
        Read and write the result cache (memory and :func:`cache_dir`).

    Returns
    -------
    np.ndarray
        float32 (len(channels), size, size, 3), values in [0, 1] on 8-bit levels (k / 255).

    Raises
    ------
    CnnVizError
        A channel out of range, ``steps`` < 1, or a ``size`` too small for the layer.
    LayerError
        An unknown layer, or one without a spatial feature map.
    AscentCancelled
        When ``cancel`` was set.

    Examples
    --------
    >>> layer = "backbone/block5c_expand_activation"
    >>> images = filter_ascent(model, layer, [0, 1, 2])  # doctest: +SKIP
    >>> images.shape                                      # doctest: +SKIP
    (3, 128, 128, 3)
    """
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, bool):
        channels = [int(channels)]
    indices = [_index(c, "channel") for c in channels]
    if not indices:
        raise CnnVizError("No channels given: pass at least one channel index, e.g. [0, 1, 2].")
    layer = _layer_name(layer)
    return optimize_image(
        model,
        [channel(layer, c) for c in indices],
        size=size,
        steps=steps,
        seed=seed,
        lr=lr,
        param=param,
        decorrelate=decorrelate,
        jitter=jitter,
        scale=scale,
        rotate=rotate,
        tv=tv,
        l2=l2,
        batch_size=batch_size,
        every=every,
        on_step=on_step,
        cancel=cancel,
        preprocess=preprocess,
        cache=cache,
    )


def starting_images(
    objectives: Objective | Sequence[Objective],
    *,
    size: int = 128,
    seed: int = 0,
    param: str = "fft",
    decorrelate: bool = True,
    planes: int = 3,
) -> np.ndarray:
    """The images an ascent starts from (step 0) for these objectives and settings.

    Useful as the baseline when measuring how much an ascent raised its objective.

    Examples
    --------
    >>> starting_images(channel("conv2", 0), size=32).shape
    (1, 32, 32, 3)
    """
    import tensorflow as tf

    settings = _settings(
        size=size,
        steps=1,
        seed=seed,
        lr=0.0,
        param=param,
        decorrelate=decorrelate,
        jitter=None,
        scale=(1.0, 1.0),
        rotate=0.0,
        tv=0.0,
        l2=0.0,
    )
    items = _as_objectives(objectives)
    params = tf.constant(np.stack([_start_params(settings, o, planes) for o in items]))
    images = _to_image(params, settings, planes).numpy()
    return np.repeat(images, 3, axis=-1) if planes == 1 else images


def warm_up(
    model: Any,
    layer: str,
    *,
    size: int = 128,
    param: str = "fft",
    decorrelate: bool = True,
    tv: float = 1.0,
    l2: float = 0.0,
    preprocess: Preprocess | None = None,
    cache: bool = True,
) -> None:
    """Trace the ascent step for ``layer`` now, so the first real request starts at once.

    Tracing a deep model's forward and backward pass, and TensorFlow's optimisation of the
    graph on its first run, take about a second; a widget can pay that in a background thread
    when it opens. Pass the settings the requests will use that change the graph: ``size``,
    ``param``, ``decorrelate`` and whether ``tv`` and ``l2`` are 0 (their values, like steps,
    seed, lr, jitter, scale, rotate and the channels, do not matter). With ``cache`` the
    model's weight fingerprint is computed now too.

    Examples
    --------
    >>> layer = "backbone/top_activation"
    >>> threading.Thread(target=warm_up, args=(model, layer)).start()  # doctest: +SKIP
    """
    import tensorflow as tf

    adapter = adapter_for(model, preprocess=preprocess)
    objective = channel(layer, 0)._resolved(adapter)
    settings = _settings(
        size=size,
        steps=1,
        seed=0,
        lr=0.0,
        param=param,
        decorrelate=decorrelate,
        jitter=None,
        scale=(1.0, 1.0),
        rotate=0.0,
        tv=tv,
        l2=l2,
    )
    if cache:
        _model_fingerprint(adapter)
    planes = 1 if adapter.input_shape[2] == 1 else 3
    params = tf.constant(_start_params(settings, objective, planes)[np.newaxis])
    transforms = _transforms(settings, np.full((1, 4), 0.5), _canvas(adapter, settings))
    # One real step on one image: traces, and also lets TensorFlow optimise the graph, which
    # it does on the first run, not at trace time.
    _call_step(
        adapter,
        objective.structure,
        settings,
        planes,
        (
            params,
            tf.zeros_like(params),
            tf.zeros_like(params),
            tf.constant(1.0),
            tf.constant([objective.indices], tf.int32),
            tf.constant(transforms),
            tf.constant([0.0, 0.0, 0.0]),
        ),
    )
    _render_function(adapter, settings, planes)(params).numpy()
