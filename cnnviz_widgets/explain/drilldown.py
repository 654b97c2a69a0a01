"""From a spot of the image to the channels behind it ("The Building Blocks of Interpretability").

:func:`channel_attribution` ranks the channels of one layer by how much each contributes to a
class *at one place*: gradient × activation, ``A_k[i, j] · ∂S_c/∂A_k[i, j]`` with ``S_c`` the
class logit and ``(i, j)`` the layer's cell under the chosen pixel (Olah et al., Distill 2018).
Summed over channels and positions this is the first-order estimate of the logit the layer
explains; per cell it says which detectors fire *here* for *this* class.

The gradients are the pair every gradient CAM is made from (:mod:`.gradients`, kept in the
shared cache), so after Grad-CAM of the layer they are already there; :func:`channel_gradients`
returns them for a whole layer, and ranking a point (:func:`rank_channels`) is numpy work on
one row of channels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..cache import ActivationCache
from ..engine.adapter import ModelAdapter, Preprocess
from ..errors import CnnVizError, check_index, check_number, check_positive
from ..i18n import gettext_ as _
from ..images import PreparedImage
from .gradients import layer_gradients
from .targets import Target, adapter_of, cam_layer, class_head, class_number

__all__ = ["channel_attribution", "channel_gradients", "image_cell", "rank_channels"]


def channel_gradients(
    adapter: ModelAdapter,
    image: PreparedImage,
    class_index: int,
    layer: str,
    *,
    output: int | str | None = None,
    cache: ActivationCache | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """A layer's feature maps and their class-logit gradients, float32 (h, w, K) each.

    The pair every gradient CAM is made from (:func:`~.gradients.layer_gradients`), kept in
    ``cache`` (default: the shared one): after Grad-CAM of the same layer and class it is
    already there. ``class_index`` −1 means the top class; the class used is returned third.
    ``layer`` must be a resolved path with a spatial map (see :func:`~.targets.cam_layer`).
    """
    head = class_head(adapter, output)
    target = Target(adapter, adapter.model_input(image), head, class_index, layer,
                    image_key=image.key)  # fmt: skip
    pair = layer_gradients(target, cache=cache)
    return pair.features, pair.grads, pair.class_index


def image_cell(
    point: Any, image_size: tuple[int, int], map_size: tuple[int, int]
) -> tuple[int, int]:
    """The (row, column) of a ``map_size`` feature map under ``point`` (y, x) of the image.

    ``point`` is in the pixels of the image as given (``image_size``); fractions are allowed
    (a click lands between pixels). The map covers the whole image, so cell ``i`` spans image
    rows ``i·H/h`` to ``(i+1)·H/h``.

    Raises
    ------
    CnnVizError
        For a point that is not two numbers, or one outside the image:
        ``point y 300 is out of range: the image has 300 rows (0–299).``
    """
    if isinstance(point, (str, bytes)) or not hasattr(point, "__len__") or len(point) != 2:
        raise CnnVizError(
            _("point must be (y, x), two numbers in image pixels; got {point!r}.").format(
                point=point
            )
        )
    (height, width), (rows, columns) = image_size, map_size
    y, x = (
        check_index(math.floor(check_number(value, what)), count, what, _("the image"),
                    things=things)
        for value, count, what, things in ((point[0], height, _("point y"), _("rows")),
                                           (point[1], width, _("point x"), _("columns")))
    )  # fmt: skip
    return min(rows - 1, y * rows // height), min(columns - 1, x * columns // width)


def rank_channels(
    features: np.ndarray, grads: np.ndarray, cell: tuple[int, int], top: int | None = None
) -> list[tuple[int, float]]:
    """Channels ranked by gradient × activation at ``cell``: ``[(channel, score), …]``.

    Highest score first; equal scores in channel order. ``top`` keeps the first ``top``.
    """
    i, j = cell
    scores = features[i, j].astype(np.float64) * grads[i, j].astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    if top is not None:
        order = order[:top]
    return [(int(k), float(scores[k])) for k in order]


def channel_attribution(
    model: Any,
    image: Any,
    target: int | None = None,
    layer: str | None = None,
    point: Any = None,
    *,
    top: int | None = None,
    output: int | str | None = None,
    preprocess: Preprocess | None = None,
) -> list[tuple[int, float]]:
    """The channels of ``layer`` that carry the evidence for a class at one spot of the image.

    Each channel ``k`` scores ``A_k[i, j] · ∂S/∂A_k[i, j]`` (gradient × activation), with ``S``
    the logit of ``target`` and ``(i, j)`` the layer's cell under ``point``.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
    image : array, path, PIL image or PreparedImage
    target : int, optional
        The class; ``None``: the model's top class.
    layer : str, optional
        A layer with a spatial map (default: the deepest one, as for Grad-CAM).
    point : (y, x)
        In the pixels of ``image`` as given (not the model's input size); fractions allowed.
        Default: the centre of the image.
    top : int, optional
        Keep only the ``top`` best channels.
    output, preprocess
        As for :func:`~cnnviz_widgets.explain.grad_cam`.

    Returns
    -------
    list of (int, float)
        ``(channel, score)``, highest score first.

    Raises
    ------
    CnnVizError
        For a point outside the image or not two numbers, or a class out of range.
    LayerError
        For an unknown layer, or one without a spatial map (after pooling or flattening).

    Examples
    --------
    >>> cv.channel_attribution(model, cat, 285, point=(150, 200))[:2]   # doctest: +SKIP
    [(1012, 0.53...), (87, 0.31...)]
    """
    adapter = adapter_of(model, preprocess)
    prepared = adapter.prepare(image)
    head = class_head(adapter, output)
    index = class_number(target, head)
    path = cam_layer(adapter, layer)
    if point is None:
        point = (prepared.size[0] / 2, prepared.size[1] / 2)
    if top is not None:
        top = check_positive(top, "top")
    image_cell(point, prepared.size, (1, 1))  # a bad point fails before any computation
    features, grads, _ = channel_gradients(adapter, prepared, index, path, output=output)
    return rank_channels(features, grads, image_cell(point, prepared.size, features.shape[:2]), top)
