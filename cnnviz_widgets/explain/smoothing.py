"""Smoothing for every class activation map: eigen smoothing and test-time augmentation.

Both follow pytorch-grad-cam (Gildenblat et al. 2021), which offers them for every CAM:

* **eigen smoothing** (``eigen_smooth=True``): instead of summing the weighted feature maps
  ``w_k · A_k`` over channels, take their first principal component (as Eigen-CAM does with the
  raw maps, Muhammad & Yeasin 2020): the dominant spatial pattern, with less channel noise;
* **test-time augmentation** (``aug_smooth=True``): compute the map on flipped and zoomed
  copies of the image, undo each transform on its map, and average. Peaks that move with the
  image survive; artefacts of one view average out.

Zooms keep the model's input size (so fixed-size models take them): a zoom by ``s > 1``
enlarges the image and keeps its centre, ``s < 1`` shrinks it and pads the border by
repeating edge pixels. A map is averaged only where its view saw the image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from ..images import resize_image

__all__ = ["AUG_FLIPS", "AUG_SCALES", "augmentations", "principal_projection", "smooth_over_views"]

#: Horizontal flips tried by ``aug_smooth`` (False = as it is).
AUG_FLIPS = (False, True)
#: Zoom factors tried by ``aug_smooth``: the image, 10 % smaller and 10 % larger.
AUG_SCALES = (1.0, 0.9, 1.1)


def principal_projection(weighted: np.ndarray) -> np.ndarray:
    """The first principal component of (h, w, K) maps, as one (h, w) map.

    The K-vectors at the h·w positions are centred (their mean subtracted) and projected on the
    first right singular vector. A singular vector's sign is arbitrary; it is chosen so that the
    projection correlates positively with the channel sum (where the maps are large, the
    projection is large), so that ``relu`` keeps the evidence and not its mirror image.

    Returns float32 (h, w); zeros for maps that are constant over positions.
    """
    height, width, channels = weighted.shape
    rows = weighted.reshape(height * width, channels).astype(np.float64)
    centred = rows - rows.mean(axis=0, keepdims=True)
    if not np.any(centred):
        return np.zeros((height, width), np.float32)
    # The top eigenvector of the smaller Gram matrix instead of an SVD, on one BLAS thread:
    # OpenBLAS's threads spin, and on a busy 2-core machine a 49 × 1280 SVD took 0.6–2.5 s
    # where this takes ~1 ms. Both give centred @ v₁ (= σ₁ u₁).
    with _one_blas_thread():
        if channels <= height * width:
            _, vectors = np.linalg.eigh(centred.T @ centred)
            projection = centred @ vectors[:, -1]
        else:
            values, vectors = np.linalg.eigh(centred @ centred.T)
            projection = vectors[:, -1] * np.sqrt(max(float(values[-1]), 0.0))
    if float(projection @ rows.sum(axis=1)) < 0.0:
        projection = -projection
    return projection.reshape(height, width).astype(np.float32)


def _find_blas_libraries(found: Future) -> None:
    try:
        from threadpoolctl import ThreadpoolController

        found.set_result(ThreadpoolController())
    except Exception as exc:  # handed to the first Eigen-CAM, which re-raises it
        found.set_exception(exc)


# The loaded BLAS libraries, found once on a background thread started when this module is first
# imported (by the first class-activation map): finding them stats every shared library of the
# process (~300 with TensorFlow), 60–90 ms, which the first Eigen-CAM would otherwise wait for
# (bench/suite_first_answers.py). A kept controller then sets the limit in ~20 µs, where
# threadpool_limits() searches again on every call.
_BLAS_LIBRARIES: Future = Future()
threading.Thread(
    target=_find_blas_libraries, args=(_BLAS_LIBRARIES,), name="cnnviz-find-blas", daemon=True
).start()


def _one_blas_thread() -> Any:
    return _BLAS_LIBRARIES.result().limit(limits=1, user_api="blas")


def augmentations() -> list[tuple[bool, float]]:
    """Every (flip, scale) ``aug_smooth`` computes a map for, the untouched image first."""
    return [(flip, scale) for scale in AUG_SCALES for flip in AUG_FLIPS]


def _zoom(array: np.ndarray, scale: float, pad: str) -> tuple[np.ndarray, np.ndarray]:
    """``array`` (H, W[, C]) zoomed by ``scale`` about its centre, at the same size.

    Returns the zoomed array and a (H, W) mask of the positions that came from ``array``
    (False where ``pad`` filled the border: ``"edge"`` repeats edge values, ``"zero"`` fills 0).
    """
    height, width = array.shape[:2]
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    out = resize_image(array, size)
    seen = np.ones(size, bool)
    for axis, full in ((0, height), (1, width)):
        have = out.shape[axis]
        if have >= full:
            start = (have - full) // 2
            out = np.take(out, range(start, start + full), axis=axis)
            seen = np.take(seen, range(start, start + full), axis=axis)
        else:
            before = (full - have) // 2
            widths = [(0, 0)] * out.ndim
            widths[axis] = (before, full - have - before)
            out = np.pad(out, widths, mode="edge" if pad == "edge" else "constant")
            seen = np.pad(seen, widths[:2], mode="constant")
    return out, seen


def augment(batch: np.ndarray, flip: bool, scale: float) -> np.ndarray:
    """One augmented copy of a model-input batch of one, float32 (1, H, W, C)."""
    image = batch[0]
    if scale != 1.0:
        image, _ = _zoom(image, scale, "edge")
    if flip:
        image = image[:, ::-1]
    return np.ascontiguousarray(image[np.newaxis], dtype=np.float32)


def _undo(heatmap: np.ndarray, flip: bool, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A map (H, W) of an augmented image brought back onto the image, with where it is known."""
    if flip:
        heatmap = heatmap[:, ::-1]
    if scale == 1.0:
        return np.ascontiguousarray(heatmap, np.float32), np.ones(heatmap.shape, bool)
    return _zoom(heatmap, 1.0 / scale, "zero")


def smooth_over_views(
    batch: np.ndarray, size: tuple[int, int], cam_of: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Test-time augmentation: the mean of the views' maps, each undone onto the image.

    Parameters
    ----------
    batch : numpy.ndarray
        The model input, float32 (1, H, W, C).
    size : (int, int)
        (H, W): the maps are brought to the model input's resolution and averaged there.
    cam_of : callable
        ``cam_of(batch) -> map`` (h, w), ≥ 0, for an augmented batch.

    Returns
    -------
    numpy.ndarray
        float32 (H, W), ≥ 0. Each view's map is scaled to a maximum of 1 first (as
        pytorch-grad-cam does), so no view outweighs the others; positions a view did not see
        are averaged over the views that did.
    """
    total = np.zeros(size, np.float64)
    count = np.zeros(size, np.float64)
    for flip, scale in augmentations():
        heatmap = np.maximum(cam_of(augment(batch, flip, scale)), 0.0)
        heatmap = resize_image(heatmap, size) if heatmap.shape != tuple(size) else heatmap
        heatmap = np.maximum(heatmap, 0.0)
        peak = float(heatmap.max(initial=0.0))
        if peak > 0.0:
            heatmap = heatmap / peak
        undone, seen = _undo(heatmap, flip, scale)
        total += np.where(seen, undone, 0.0)
        count += seen
    return (total / np.maximum(count, 1.0)).astype(np.float32)
