"""Convolution kernels read out of a Keras model, in one layout for every kind of 2-D conv.

The engine is the one place that reads Keras models; :func:`kernel_weights` goes through the
shared model adapter (layer paths, nested sub-models) and hands the renderer a plain float32
array (:func:`cnnviz_widgets.render.kernels.kernel_grid` draws it). Keras is imported inside
the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import LayerError
from ..i18n import gettext_ as _

__all__ = ["kernel_weights"]

_CONV_CLASSES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")


def _layer_object(model: Any, path: str) -> Any:
    """The Keras layer at a layer path, walking nested models with their public get_layer."""
    owner = model
    for part in path.split("/"):
        # A shared layer's second call is listed as "name:2": it is the same layer object.
        owner = owner.get_layer(part.split(":")[0])
    return owner


def _is_conv(layer: Any) -> bool:
    import keras

    return isinstance(
        layer,
        (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D),
    )


def kernel_weights(model: Any, layer: str) -> np.ndarray:
    """The kernels of a 2-D convolution layer, float32, laid out (kh, kw, in, out).

    ``kernels[:, :, i, o]`` is the 2-D filter that output channel ``o`` applies to its input
    channel ``i`` (the layer sums these over ``i``, then adds its bias if it has one).

    - ``Conv2D``: Keras' own layout. With ``groups > 1`` the ``in`` axis counts the input
      channels of one group.
    - ``DepthwiseConv2D`` and the depthwise part of ``SeparableConv2D``: every filter sees a
      single input channel, so ``in`` is 1 and ``out`` is ``channels × depth_multiplier``;
      output ``o`` filters input channel ``o // depth_multiplier``.

    Parameters
    ----------
    model : keras.Model
        Any Keras 3 model, nested sub-models included (or a :class:`ModelAdapter`).
    layer : str
        Layer path (``"backbone/stem_conv"``) or an unambiguous layer name.

    Returns
    -------
    np.ndarray
        A new float32 array (changing it does not change the model).

    Raises
    ------
    LayerError
        If the layer does not exist, or is not one of those convolutions (the message names the
        convolution layers just before and after it).

    Examples
    --------
    >>> import cnnviz_widgets as cv
    >>> kernel_weights(cv.load_default_model(), "backbone/stem_conv").shape  # doctest: +SKIP
    (3, 3, 3, 32)
    >>> kernel_weights(cv.load_default_model(), "block1a_dwconv").shape      # doctest: +SKIP
    (3, 3, 1, 32)
    """
    import keras

    from .adapter import adapter_for

    adapter = adapter_for(model)
    path = adapter.resolve_layer(layer, spatial=False)
    target = _layer_object(adapter.model, path)
    if not _is_conv(target):
        raise LayerError(_not_conv_message(adapter, path, type(target).__name__))
    if isinstance(target, keras.layers.SeparableConv2D):
        kernel = target.depthwise_kernel
    else:
        kernel = target.kernel
    array = np.array(kernel.numpy(), dtype=np.float32)
    if isinstance(target, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
        kh, kw, channels, multiplier = array.shape
        # (kh, kw, in, multiplier) -> (kh, kw, 1, in * multiplier): output o = c * m + j,
        # the order Keras itself uses for a depthwise layer's outputs.
        array = array.reshape(kh, kw, 1, channels * multiplier)
    return array


def _not_conv_message(adapter: Any, path: str, class_name: str) -> str:
    layers = adapter.layers
    order = [info.path for info in layers]
    convs = {info.path for info in layers if info.class_name in _CONV_CLASSES}
    where = order.index(path)
    before = [p for p in order[:where] if p in convs][-2:]
    after = [p for p in order[where + 1 :] if p in convs][:2]
    if before or after:
        nearby = ", ".join(repr(p) for p in before + after)
        hint = _(" Convolution layers nearby: {nearby}.").format(nearby=nearby)
    else:
        hint = _(" This model has no Conv2D, DepthwiseConv2D or SeparableConv2D layer.")
    return _(
        "Layer {path!r} ({kind}) has no convolution kernels to show: kernels belong to "
        "Conv2D, DepthwiseConv2D and SeparableConv2D layers.{hint}"
    ).format(path=path, kind=class_name, hint=hint)
