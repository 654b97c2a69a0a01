"""Should you trust this map? Two checks from the literature, as functions.

* :func:`faithfulness` — Petsiuk et al. 2018, "RISE: Randomized Input Sampling for Explanation
  of Black-box Models": the deletion and insertion scores. Pixels are removed (deletion) or
  revealed (insertion) in the order the map ranks them, and the class probability is read after
  every step; the score is the area under that curve. A map that points at the evidence makes
  the probability fall fast when its pixels go (low deletion score) and rise fast when they come
  back (high insertion score). The same score for a seeded random map says what "no better than
  chance" looks like for this image.
* :func:`randomization_check` — Adebayo et al. 2018, "Sanity Checks for Saliency Maps": the
  layers of a *copy* of the model are re-initialised from the top down, one block at a time,
  and each new map is compared with the original one by Spearman rank correlation. A map that
  stays the same while the network it claims to explain is destroyed explains the image, not
  the model (guided backprop's edges are the known case); such a method is flagged.

The user's model is never modified: the randomisation check works on ``clone_model`` with the
weights copied in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..engine.adapter import ModelAdapter, Preprocess
from ..engine.backend import compile
from ..errors import CnnVizError, ImageError, check_choice, check_positive
from ..i18n import gettext_ as _
from ..images import resize_image
from ..progress import Cancel, bar, check
from .randomization import FLAG_CORRELATION, RandomizationCheck, randomization_check, spearman
from .targets import KEY, Head, adapter_of, class_head, class_number, probabilities

__all__ = [
    "FLAG_CORRELATION",
    "Faithfulness",
    "RandomizationCheck",
    "faithfulness",
    "randomization_check",
    "spearman",
]

METRICS = ("deletion", "insertion")
BASELINES = ("blur", "zero")
#: Images per forward pass of the deletion/insertion curves.
TRUST_BATCH = 16
#: The blurred baseline is the image shrunk to 1/BLUR_FACTOR of its size and enlarged back.
BLUR_FACTOR = 16


# ------------------------------------------------------------------------------ faithfulness
class Faithfulness(float):
    """A deletion or insertion score: a float in [0, 1] that also carries its curves.

    It is the area under the class-probability curve, so it compares and prints like a float;
    the extra attributes say how it was reached and what a random map scores.

    Attributes
    ----------
    metric : {"deletion", "insertion"}
    fractions : numpy.ndarray
        The share of pixels removed (deletion) or revealed (insertion) at each step, 0 … 1.
    curve : numpy.ndarray
        The class probability at each step.
    random : float or None
        The same score for a seeded random map (``None`` with ``random_baseline=False``).
    random_curve : numpy.ndarray or None
    class_index : int
        The class whose probability was read.
    """

    metric: str
    fractions: np.ndarray
    curve: np.ndarray
    random: float | None
    random_curve: np.ndarray | None
    class_index: int

    def __new__(cls, auc: float, **attributes: Any) -> Faithfulness:
        score = super().__new__(cls, auc)
        for name, value in attributes.items():
            setattr(score, name, value)
        return score

    @property
    def better_than_random(self) -> bool | None:
        """Whether the map beats the random map (lower deletion, higher insertion score)."""
        if self.random is None:
            return None
        return float(self) < self.random if self.metric == "deletion" else float(self) > self.random

    def __repr__(self) -> str:
        random = "" if self.random is None else f", random={self.random:.4f}"
        return f"Faithfulness({self.metric}={float(self):.4f}{random})"


def _area(fractions: np.ndarray, curve: np.ndarray) -> float:
    """Trapezoid area under ``curve`` over ``fractions`` (0 … 1)."""
    return float(np.sum((curve[1:] + curve[:-1]) * np.diff(fractions)) / 2.0)


def blurred(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (H, W, C) with its detail gone: shrunk 16× (antialiased) and enlarged back."""
    h, w = pixels.shape[:2]
    small = (max(1, round(h / BLUR_FACTOR)), max(1, round(w / BLUR_FACTOR)))
    return resize_image(resize_image(pixels, small), (h, w))


def _unit_heatmap(heatmap: Any, size: tuple[int, int]) -> np.ndarray:
    """``heatmap`` as a finite float32 (h, w) map at the model's input ``size``."""
    array = np.asarray(heatmap)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2 or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        raise ImageError(
            _(
                "heatmap must be a 2-D map of numbers (H, W), as grad_cam and saliency return; got "
                "shape {shape} of dtype {dtype}."
            ).format(shape=array.shape, dtype=array.dtype)
        )
    if not np.isfinite(array).all():
        raise ImageError(_("heatmap contains NaN or infinite values; pass a finite map."))
    return resize_image(array.astype(np.float32), size)


def _random_grid(random_grid: Any, heatmap: Any) -> tuple[int, int]:
    """The (rows, cols) of the random map: ``random_grid``, else the heatmap's own shape."""
    if random_grid is None:
        return tuple(np.shape(heatmap)[:2])  # a malformed heatmap is refused by _unit_heatmap
    if not (isinstance(random_grid, (tuple, list)) and len(random_grid) == 2):
        raise CnnVizError(
            _(
                "random_grid must be (rows, cols), two ints ≥ 1 such as (7, 7); got {value!r}."
            ).format(value=random_grid)
        )
    rows, cols = (check_positive(n, "random_grid") for n in random_grid)
    return rows, cols


def _probability_function(adapter: ModelAdapter, head: Head) -> Any:
    """Compiled ``batch -> probabilities (N, classes)``, kept on the adapter."""

    def build() -> Any:
        def forward(batch: Any) -> Any:
            _, logits = adapter.forward(batch, logits=True, output=head.index)
            return probabilities(logits, head.activation)

        return compile(forward, [adapter.input_spec()])

    return adapter.traced((KEY, "trust", "probabilities", head.index), build)


def _model_batch(adapter: ModelAdapter, pixels: np.ndarray) -> np.ndarray:
    """A batch of 0–255 pixels (N, H, W, C) as the model takes it (after ``preprocess``)."""
    if adapter.preprocess is None:
        return pixels
    return np.asarray(adapter.preprocess(pixels.copy()), dtype=np.float32)


def _steps_images(
    start: np.ndarray, end: np.ndarray, order: np.ndarray, counts: np.ndarray
) -> Iterator[np.ndarray]:
    """``start`` with its first ``counts[k]`` pixels in ``order`` taken from ``end``, per k."""
    current = start.reshape(-1, start.shape[-1]).copy()
    source = end.reshape(-1, end.shape[-1])
    done = 0
    for count in counts:
        chosen = order[done:count]
        current[chosen] = source[chosen]
        done = count
        yield current.reshape(start.shape).copy()


def _curve(
    probability: Any,
    adapter: ModelAdapter,
    images: Iterator[np.ndarray],
    total: int,
    class_index: int,
    batch_size: int,
    tick: Any,
    cancel: Cancel,
) -> np.ndarray:
    values: list[float] = []
    pending: list[np.ndarray] = []

    def flush() -> None:
        check(cancel, "the faithfulness check")
        batch = _model_batch(adapter, np.stack(pending).astype(np.float32))
        probs = np.asarray(probability(batch), dtype=np.float64)
        values.extend(probs[:, class_index].tolist())
        tick.update(len(pending))
        pending.clear()

    for image in images:
        pending.append(image)
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    if len(values) != total:  # pragma: no cover - a broken generator
        raise AssertionError(f"{len(values)} of {total} curve points")
    return np.asarray(values)


def faithfulness(
    model: Any,
    image: Any,
    heatmap: Any,
    target: int | None = None,
    *,
    metric: str = "deletion",
    steps: int = 32,
    baseline: str = "blur",
    random_baseline: bool = True,
    random_grid: tuple[int, int] | None = None,
    seed: int = 0,
    batch_size: int = TRUST_BATCH,
    output: int | str | None = None,
    preprocess: Preprocess | None = None,
    progress: bool = True,
    cancel: Cancel = None,
) -> Faithfulness:
    """Deletion or insertion score of ``heatmap`` (Petsiuk et al. 2018): a float in [0, 1].

    The image's pixels (at the size the model sees it) are ranked by the map, highest first.
    *Deletion* replaces the top 0, 1/steps, 2/steps, … of them by the baseline; *insertion*
    starts from the baseline and puts them back. After each step the model's probability of
    ``target`` is read (``steps + 1`` images, ``batch_size`` per forward pass), and the score is
    the area under that curve over the fraction of pixels, 0 to 1. Lower is better for
    deletion, higher for insertion.

    The baseline is what a removed pixel becomes. ``"blur"`` (default) is the image shrunk 16×
    and enlarged back: the detail the map points at goes, colours and layout stay, so the
    probability falls for losing evidence and not for the sight of black holes (an
    out-of-distribution pattern that lowers most classes whatever the map says; RISE itself
    blurs for insertion for this reason). ``"zero"`` sets pixels to 0, black, as RISE's
    deletion does.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
        A classifier (softmax or sigmoid head).
    image : array, path, PIL image or PreparedImage
    heatmap : array (H, W)
        The map to score, any size (resized to the model's input); higher = more important.
    target : int, optional
        The class; ``None``: the model's top class for the image.
    metric : {"deletion", "insertion"}
    steps : int
        Points of the curve after the first, ≥ 1.
    baseline : {"blur", "zero"}
    random_baseline : bool
        Also score a seeded uniform random map the same way (``result.random``).
    random_grid : (rows, cols), optional
        The random map's own resolution before it is resized to the model's input, as the
        heatmap is. ``None`` (default): the heatmap's shape as given. A class-activation map
        is as coarse as its layer (7×7 cells, say), and removing pixels in 7×7 blocks hurts a
        model differently from removing scattered single pixels; so compare it with a random
        map of its layer's grid (the class-activation view does), or pass the coarse map.
    seed : int
        Seed of the random map.
    batch_size : int
        Images per forward pass, ≥ 1.
    output, preprocess
        As for :func:`~cnnviz_widgets.explain.grad_cam`.
    progress, cancel
        See :mod:`cnnviz_widgets.progress`.

    Returns
    -------
    Faithfulness
        The area under the curve (a ``float`` subclass), with ``.curve``, ``.fractions``,
        ``.random`` and ``.random_curve``.

    Raises
    ------
    CnnVizError
        For an unknown metric or baseline, ``steps``/``batch_size`` not ≥ 1, a ``random_grid``
        that is not two ints ≥ 1, a class out of range, or a regression head (a value, not a
        probability, has no area in [0, 1]).
    ImageError
        For a heatmap that is not a finite 2-D map.

    Examples
    --------
    >>> heat = cv.grad_cam(model, cat, 285)
    >>> cv.faithfulness(model, cat, heat, 285, metric="insertion")      # doctest: +SKIP
    Faithfulness(insertion=0.6120, random=0.3011)
    """
    metric = check_choice(metric, METRICS, _("faithfulness metric"))
    baseline = check_choice(baseline, BASELINES, _("faithfulness baseline"))
    steps = check_positive(steps, "steps")
    batch_size = check_positive(batch_size, "batch_size")
    grid = _random_grid(random_grid, heatmap)
    adapter = adapter_of(model, preprocess)
    prepared = adapter.prepare(image)
    head = class_head(adapter, output)
    if head.regression:
        raise CnnVizError(
            _(
                "Output {name!r} is a regression value, not a class probability, so deletion and "
                "insertion scores (areas under a probability curve) are not defined for it."
            ).format(name=head.name)
        )
    index = class_number(target, head)
    pixels = np.asarray(prepared.pixels, dtype=np.float32)
    size = pixels.shape[:2]
    heat = _unit_heatmap(heatmap, size)
    probability = _probability_function(adapter, head)
    if index < 0:
        first = np.asarray(probability(_model_batch(adapter, pixels[np.newaxis])))[0]
        index = int(np.argmax(first))
    empty = blurred(pixels) if baseline == "blur" else np.zeros_like(pixels)
    start, end = (pixels, empty) if metric == "deletion" else (empty, pixels)
    n_pixels = size[0] * size[1]
    counts = np.round(np.arange(steps + 1) * n_pixels / steps).astype(np.int64)
    fractions = counts / n_pixels
    maps = [heat]
    if random_baseline:
        cells = np.random.default_rng(seed).random(grid, dtype=np.float32)
        maps.append(resize_image(cells, size))
    curves = []
    with bar(len(maps) * (steps + 1), f"{metric} curve", progress) as tick:
        for values in maps:
            order = np.argsort(-values.ravel(), kind="stable")
            images = _steps_images(start, end, order, counts)
            curves.append(
                _curve(probability, adapter, images, steps + 1, index, batch_size, tick, cancel)
            )
    random_curve = curves[1] if random_baseline else None
    return Faithfulness(
        _area(fractions, curves[0]),
        metric=metric,
        fractions=fractions,
        curve=curves[0],
        random=None if random_curve is None else _area(fractions, random_curve),
        random_curve=random_curve,
        class_index=index,
    )
