"""Image parametrisations, starting values and the random robustness transforms.

The image is not optimised pixel by pixel (that gives high-frequency noise which excites a unit
without meaning anything to a person) but through a *parametrisation*:

- **FFT** (``param="fft"``): the variables are the 2-D Fourier coefficients of each colour
  plane, scaled by 1/frequency (:func:`spectrum_scale`). Gradient steps then change all
  frequencies at a similar *relative* rate instead of letting high frequencies win.
- **Colour decorrelation** (``decorrelate=True``): the planes are the principal axes of
  natural-image colour (luminance first), mixed back to RGB, then squashed into [0, 1] by a
  sigmoid.
- **Pixel** (``param="pixel"``): the sigmoid of the variables, for comparison.

Every step the model sees the image randomly shifted, zoomed and rotated (:func:`transforms`),
so only patterns that survive small moves are reinforced.

Sources: Olah, Mordvintsev and Schubert, "Feature Visualization", Distill 2017 (transformation
robustness); Mordvintsev, Pezzotti, Schubert and Olah, "Differentiable Image
Parameterizations", Distill 2018 (the FFT spectrum and colour decorrelation; the colour matrix
is the one published with their Lucid library, ``lucid/optvis/param/color.py``).

Everything here is numpy except :func:`to_image`, which runs inside the traced step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..engine import backend
from .objectives import Objective
from .settings import Settings

__all__ = [
    "image_rngs",
    "param_shape",
    "random_draws",
    "spectrum_scale",
    "start_params",
    "to_image",
    "transforms",
]

#: Square root of the colour covariance of natural (ImageNet) images, columns are its principal
#: axes (luminance, then two colour-opponent axes) — the numbers published with Lucid.
#: Normalised below so its largest column has unit length.
_COLOR_SQRT_COVARIANCE = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
COLOR_MIX = _COLOR_SQRT_COVARIANCE / np.max(np.linalg.norm(_COLOR_SQRT_COVARIANCE, axis=0))

#: Standard deviation of the starting parameters: a faint, almost grey image, so the first
#: steps follow the network's gradient instead of fighting loud random noise.
INIT_STD = 0.01


def param_shape(settings: Settings, planes: int) -> tuple[int, ...]:
    """Shape of one image's variables (no batch axis).

    ``(2, planes, size, size // 2 + 1)`` for FFT: real and imaginary parts as two contiguous
    blocks, which unstack cheaply (slicing a trailing axis of 2, and its gradient, cost more
    than the FFT itself). ``(size, size, planes)`` for pixels.
    """
    s = settings.size
    if settings.param == "fft":
        return (2, planes, s, s // 2 + 1)
    return (s, s, planes)


def spectrum_scale(size: int) -> np.ndarray:
    """Per-frequency factor, float32 (size, size // 2 + 1): 1/f, normalised to unit variance.

    Scaling the Fourier coefficients by 1/f (f in cycles per pixel, floored at 1/size) gives
    them natural images' power spectrum, so a unit step on every coefficient changes coarse and
    fine structure alike. The normalisation makes unit-variance coefficients give (about)
    unit-variance pixels, whatever the size.
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


def image_rngs(settings: Settings, objective: Objective) -> list[np.random.Generator]:
    """Two independent generators for one image: its starting values, its random transforms.

    Seeded by ``settings.seed`` and the objective's digest: each channel gets its own start and
    its own transforms, and an image never depends on which other images share its batch (so
    per-image caching holds).
    """
    digest = objective.digest
    words = [int(digest[i : i + 8], 16) for i in range(0, 32, 8)]
    seeds = np.random.SeedSequence([settings.seed & 0xFFFFFFFF, settings.seed >> 32, *words])
    return [np.random.default_rng(child) for child in seeds.spawn(2)]


def start_params(settings: Settings, objective: Objective, planes: int) -> np.ndarray:
    """One image's starting variables, float32 :func:`param_shape`, normal with std 0.01."""
    rng = image_rngs(settings, objective)[0]
    return (rng.standard_normal(param_shape(settings, planes)) * INIT_STD).astype(np.float32)


def random_draws(settings: Settings, objective: Objective) -> np.ndarray:
    """(steps, 4) uniform draws in [0, 1) for one image: x shift, y shift, zoom, angle."""
    return image_rngs(settings, objective)[1].random((settings.steps, 4))


def transforms(settings: Settings, draws: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """Per-image projective transforms, float32 (N, 8), for ``ImageProjectiveTransformV3``.

    Parameters
    ----------
    settings : Settings
        ``size``, ``jitter`` (pixels), ``scale`` (zoom range) and ``rotate`` (degrees).
    draws : np.ndarray
        (N, 4) uniform draws in [0, 1), from :func:`random_draws`.
    canvas : (int, int)
        (height, width) the model sees, pixels: the image's size, or the model's fixed input
        size (the image is then resampled to fill it).

    Returns
    -------
    np.ndarray
        Each row maps an *output* (canvas) pixel to the image pixel it samples: around the
        centres, undo the rotation and zoom, and shift by the jitter; what falls outside the
        image is grey.
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


def to_image(params: Any, settings: Settings, planes: int) -> Any:
    """Variables (N, *param_shape) -> images, float32 tensor (N, size, size, planes) in [0, 1]."""
    tf = backend.tensorflow()

    s = settings.size
    if settings.param == "fft":
        real, imag = tf.unstack(params * tf.constant(spectrum_scale(s)), axis=1)
        x = tf.signal.irfft2d(tf.complex(real, imag), fft_length=[s, s])  # (N, planes, s, s)
        if settings.decorrelate and planes == 3:
            x = tf.einsum("npij,rp->nrij", x, tf.constant(COLOR_MIX))
        x = tf.transpose(x, [0, 2, 3, 1])
    else:
        x = params
        if settings.decorrelate and planes == 3:
            x = tf.einsum("nijp,rp->nijr", x, tf.constant(COLOR_MIX))
    return tf.sigmoid(x)
