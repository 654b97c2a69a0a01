"""Image sizes: the size an image is fed at, the smallest image a model can take, and the
shape of every layer's output for one image size.

Convolutions and poolings without padding shrink a feature map (``out = (in - k) // s + 1``);
below some input size a map becomes empty and everything after it is NaN or an error deep in
TensorFlow. Walking the layers backwards from "every map has at least one cell" gives that size
exactly, before any tensor is computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import ImageError
from ..i18n import gettext_ as _
from .graph import Alias, LayerCall, Ref

__all__ = [
    "DEFAULT_SHORTER_SIDE",
    "check_big_enough",
    "minimum_input_size",
    "model_image_size",
    "output_shapes",
]

#: Images for models that take any size are scaled down to this shorter side by default: the
#: scale ImageNet networks were trained at (a 4000 px photo would be slow and look tiny to them).
DEFAULT_SHORTER_SIDE = 224


def model_image_size(
    size: tuple[int, int],
    fixed: tuple[int | None, int | None],
    image_size: int | tuple[int, int] | None,
) -> tuple[int, int]:
    """The (height, width) an image of ``size`` is fed to the model at.

    ``fixed`` is the model's input (height, width) (``None`` where any size is taken): a fixed
    size wins, the whole image resized to it. Otherwise ``image_size`` decides: a pair is the
    size, an int the shorter side (aspect kept), ``None`` shrinks photos whose shorter side is
    over :data:`DEFAULT_SHORTER_SIDE` to it and leaves smaller ones as they are.
    """
    if fixed[0] is not None and fixed[1] is not None:
        return (int(fixed[0]), int(fixed[1]))
    h, w = int(size[0]), int(size[1])
    if isinstance(image_size, tuple):
        return (int(image_size[0]), int(image_size[1]))
    shorter = image_size if image_size is not None else min(DEFAULT_SHORTER_SIDE, h, w)
    scale = shorter / min(h, w)
    return (max(1, round(h * scale)), max(1, round(w * scale)))


def check_big_enough(model_name: str, size: tuple[int, int], minimum: tuple[int, int]) -> None:
    """Refuse an image ``size`` below the model's ``minimum``, naming both and the fix.

    Raises
    ------
    ImageError
    """
    low_h, low_w = minimum
    if size[0] >= low_h and size[1] >= low_w:
        return
    side = max(low_h, low_w)
    raise ImageError(
        _(
            "The image is {h}×{w} px as model {model!r} sees it, but the model needs at least "
            "{low_h}×{low_w} px: its convolutions and poolings shrink a smaller image to an empty "
            "feature map. Pass a larger image, or let the adapter enlarge it: ModelAdapter(model, "
            "image_size={side}) scales the shorter side to {side} px."
        ).format(h=size[0], w=size[1], model=model_name, low_h=low_h, low_w=low_w, side=side)
    )


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _window_input(need: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Smallest input side whose windowed output has ``need`` cells."""
    if padding == "same":  # out = ceil(in / stride)
        return (need - 1) * stride + 1
    return (need - 1) * stride + (kernel - 1) * dilation + 1  # "valid"


def _input_need(layer: Any, need: tuple[int, int]) -> tuple[int, int]:
    """The input (height, width) ``layer`` needs to give an output of at least ``need``."""
    name = type(layer).__name__
    if name in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        kernel = _pair(layer.kernel_size)
        stride = _pair(layer.strides)
        dilation = _pair(getattr(layer, "dilation_rate", 1))
        return tuple(  # type: ignore[return-value]
            _window_input(need[i], kernel[i], stride[i], dilation[i], layer.padding)
            for i in range(2)
        )
    if name in ("MaxPooling2D", "AveragePooling2D"):
        pool = _pair(layer.pool_size)
        stride = _pair(layer.strides if layer.strides is not None else layer.pool_size)
        return tuple(  # type: ignore[return-value]
            _window_input(need[i], pool[i], stride[i], 1, layer.padding) for i in range(2)
        )
    if name == "Cropping2D":
        (top, bottom), (left, right) = layer.cropping
        return (need[0] + top + bottom, need[1] + left + right)
    if name == "ZeroPadding2D":
        (top, bottom), (left, right) = layer.padding
        return (max(1, need[0] - top - bottom), max(1, need[1] - left - right))
    if name == "UpSampling2D":
        size = _pair(layer.size)
        return (math.ceil(need[0] / size[0]), math.ceil(need[1] / size[1]))
    if name in ("Resizing", "Conv2DTranspose"):
        return (1, 1)  # any input size gives a non-empty output
    return need  # element-wise layers, merges, normalisation, activations


def minimum_input_size(steps: Sequence[LayerCall | Alias], input_ref: Ref) -> tuple[int, int]:
    """The smallest (height, width) for which no feature map of the model is empty."""
    one = (1, 1)
    need: dict[Ref, tuple[int, int]] = {}

    def require(ref: Ref, size: tuple[int, int]) -> None:
        old = need.get(ref, one)
        need[ref] = (max(old[0], size[0]), max(old[1], size[1]))

    for step in reversed(steps):
        outputs = [need.get(ref, one) for ref in step.output_ids]
        wanted = (max(h for h, _ in outputs), max(w for _, w in outputs)) if outputs else one
        if isinstance(step, Alias):
            for src, dst in zip(step.input_ids, step.output_ids, strict=True):
                require(src, need.get(dst, one))
            continue
        size = _input_need(step.operation, wanted)
        for ref in step.input_ids:
            require(ref, size)
    return need.get(input_ref, one)


def output_shapes(adapter: Any, image: Any) -> dict[str, tuple[int, ...]] | None:
    """``{layer path: (H, W, C)}`` of every spatial layer for ``image``, computing no value.

    The replay is traced once at the image's exact input shape and the static shapes are read
    off the graph, which is then dropped: a fraction of a second and no feature map held,
    where a real pass holds every layer's maps at once (~100 MiB for the default model at
    224×337). A symbolic Keras call would be cheaper still but records a new node on every
    layer of the user's model (after which ``layer.output`` refuses to answer).

    Returns None when the trace fails or leaves a dimension unknown: the caller then computes
    the maps, and a real error surfaces there, where the user sees it.
    """
    from .backend import compile, tensorflow

    tf = tensorflow()
    paths = tuple(adapter.layer_paths)
    batch = adapter.model_input(image)

    def features(inputs: Any) -> list[Any]:
        return adapter.forward(inputs, paths)[0]

    try:
        traced = compile(features, [tf.TensorSpec(batch.shape, tf.float32)])
        outputs = traced.get_concrete_function().structured_outputs
    except Exception:  # any failure: fall back to computing, which reports it properly
        return None
    shapes = {path: tuple(out.shape[1:]) for path, out in zip(paths, outputs, strict=True)}
    if any(d is None for shape in shapes.values() for d in shape):
        return None
    return {path: tuple(int(d) for d in shape) for path, shape in shapes.items()}
