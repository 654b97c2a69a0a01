"""Integrated gradients and occlusion: two more answers to "which pixels made this class?".

Both are registered :func:`~.saliency.saliency` methods (kind ``"saliency"``), both run their
many passes in batches from Python so they can be stopped (``cancel=``) and show progress
(``progress=``), and both compare the image with a **baseline**: what "no information" means,
by default an all-zero model input (black for models that take raw pixels, the mean for
centred inputs — the same convention Score-CAM's masks use).

* ``"integrated_gradients"`` — Sundararajan et al. 2017: the gradient averaged along the
  straight path from the baseline to the image, times (image − baseline). Its values sum to
  the change of the class logit between the two (completeness), up to the Riemann error.
* ``"occlusion"`` — Zeiler & Fergus 2014: slide a square of baseline over the image and record
  how much the class probability drops; each pixel gets the mean drop of the windows over it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.adapter import ModelAdapter
from ..engine.backend import compile
from ..errors import CnnVizError, check_positive
from ..i18n import gettext_ as _
from ..progress import Cancel, bar, check
from .input_gradients import gradient_function, resolve_class
from .targets import KEY, Head, Target, head_score, head_scores, probabilities

__all__ = ["IG_BATCH", "IG_STEPS", "OCCLUSION_BATCH", "integrated_gradients", "occlusion"]

#: Steps along the path by default: the paper finds 20–300 enough; 32 keeps completeness within
#: a few per cent on CNNs at two SmoothGrad-sized batches.
IG_STEPS = 32
#: Path points per backward pass (as SmoothGrad's noisy copies).
IG_BATCH = 16
#: Occluded copies per forward pass (like Score-CAM's masked copies).
OCCLUSION_BATCH = 32


def _baseline_of(target: Target, baseline: np.ndarray | None) -> np.ndarray:
    return np.zeros_like(target.batch[:1]) if baseline is None else baseline


def integrated_gradients(
    target: Target,
    *,
    steps: int = IG_STEPS,
    baseline: np.ndarray | None = None,
    batch_size: int = IG_BATCH,
    cancel: Cancel = None,
    progress: Any = True,
    **options: Any,
) -> np.ndarray:
    """Integrated gradients (Sundararajan et al. 2017) of the class logit, float32 (H, W, C).

    ``IG(x) = (x − x') ⊙ (1/m) Σ_{k=1..m} ∇F(x' + (k/m)(x − x'))`` — the paper's Riemann sum
    (eq. 3) with ``m = steps``, ``x'`` the baseline (model-input units, (1, H, W, C)) and ``F``
    the class logit. In logit units; ``Σ IG ≈ F(x) − F(x')``.

    Raises
    ------
    CnnVizError
        For ``steps`` or ``batch_size`` not an int ≥ 1.
    Cancelled
        When ``cancel`` asks to stop (checked between batches).
    """
    try:
        steps = check_positive(steps, "steps")
    except CnnVizError as error:
        raise CnnVizError(
            _(
                "{error} Integrated gradients averages the gradient over `steps` points between "
                "the baseline and the image; the paper uses 20–300 (default {ig_steps})."
            ).format(error=error, ig_steps=IG_STEPS)
        ) from None
    batch_size = check_positive(batch_size, "batch_size")
    function = gradient_function(target.adapter, target.head)
    image = target.batch[:1]
    start = _baseline_of(target, baseline)
    class_index = resolve_class(function, image, target.class_index)
    alphas = np.arange(1, steps + 1, dtype=np.float32) / np.float32(steps)
    path = image - start
    total = np.zeros(image.shape[1:], np.float64)
    with bar(steps, "Integrated gradients", progress) as shown:
        for first in range(0, steps, batch_size):
            check(cancel, "integrated gradients")
            chunk = alphas[first : first + batch_size]
            points = start + chunk[:, np.newaxis, np.newaxis, np.newaxis] * path
            grads, _scores = function(points.astype(np.float32), class_index)
            total += np.asarray(grads, np.float64).sum(axis=0)
            shown.update(len(chunk))
    return (path[0] * (total / steps)).astype(np.float32)


# ------------------------------------------------------------------ occlusion
def probability_function(adapter: ModelAdapter, head: Head) -> Any:
    """The compiled ``batch (N, H, W, C) -> what the head reports (N, classes)``.

    Softmax or sigmoid probabilities (a regression head: its value). One per adapter and
    output; a warm function (eager until traced).
    """

    def build() -> Any:
        def reported(batch: Any) -> Any:
            _, logits = head_scores(adapter, batch, head)
            if head.score is not None:  # the caller's own target: one value per image, as column 0
                return head_score(logits, -1, head)[0][:, None]
            return probabilities(logits, head.activation)

        return compile(reported, [adapter.input_spec()], warm=True)

    return adapter.traced((KEY, "probabilities", head.index, head.score), build)


def _starts(length: int, window: int, stride: int) -> list[int]:
    """Window starts every ``stride`` px, plus one flush with the far edge so all is covered."""
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def occlusion(
    target: Target,
    *,
    window: int | None = None,
    stride: int | None = None,
    baseline: np.ndarray | None = None,
    batch_size: int = OCCLUSION_BATCH,
    cancel: Cancel = None,
    progress: Any = True,
    **options: Any,
) -> np.ndarray:
    """Occlusion sensitivity (Zeiler & Fergus 2014), float32 (H, W, C), every channel equal.

    A ``window``×``window`` square of the baseline replaces the image at every ``stride``
    (and flush with the far edges), and the class probability is measured. A pixel's value is
    the mean, over the windows that cover it, of ``p_c(image) − p_c(occluded)``: positive where
    hiding the pixel lowers the class probability (probability units; a regression head: its
    value's units).

    Raises
    ------
    CnnVizError
        For ``window``, ``stride`` or ``batch_size`` not an int ≥ 1, or a window larger than
        the image as the model sees it.
    Cancelled
        When ``cancel`` asks to stop (checked between batches).
    """
    image = target.batch[:1]
    height, width = image.shape[1:3]
    window = max(1, min(height, width) // 8) if window is None else window
    window = check_positive(window, "window")
    stride = max(1, window // 2) if stride is None else stride
    stride = check_positive(stride, "stride")
    batch_size = check_positive(batch_size, "batch_size")
    if window > min(height, width):
        raise CnnVizError(
            _(
                "window={window} is larger than the image as the model sees it ({height}×{width} "
                "px); pass a window of at most {value} px (default: 1/8 of the shorter side)."
            ).format(window=window, height=height, width=width, value=min(height, width))
        )
    start = _baseline_of(target, baseline)
    corners = [(top, left) for top in _starts(height, window, stride)
               for left in _starts(width, window, stride)]  # fmt: skip
    function = probability_function(target.adapter, target.head)
    clean = np.asarray(function(image), np.float64)[0]
    if target.head.score is not None:
        class_index = 0  # the caller's target value
    else:
        class_index = int(np.argmax(clean)) if target.class_index < 0 else target.class_index
    drops = np.zeros((height, width), np.float64)
    covered = np.zeros((height, width), np.float64)
    with bar(len(corners), "Occlusion", progress) as shown:
        for first in range(0, len(corners), batch_size):
            check(cancel, "occlusion")
            chunk = corners[first : first + batch_size]
            occluded = np.repeat(image, len(chunk), axis=0)
            for i, (top, left) in enumerate(chunk):
                box = (slice(top, top + window), slice(left, left + window))
                occluded[(i, *box)] = start[(0, *box)]
            scores = np.asarray(function(occluded), np.float64)[:, class_index]
            for (top, left), score in zip(chunk, scores, strict=True):
                drops[top : top + window, left : left + window] += clean[class_index] - score
                covered[top : top + window, left : left + window] += 1.0
            shown.update(len(chunk))
    mean = (drops / np.maximum(covered, 1.0)).astype(np.float32)
    return np.repeat(mean[..., np.newaxis], image.shape[-1], axis=-1)
