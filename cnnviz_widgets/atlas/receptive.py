"""Receptive fields: which input pixels a unit of a feature map can see, read from the model.

Every convolution and pooling maps a cell of its output to a window of its input. Walking the
model's steps forward from the input and composing those windows gives, for every tensor, three
numbers per axis (Dumoulin & Visin, "A guide to convolution arithmetic", 2016; Araujo et al.,
"Computing receptive fields of convolutional neural networks", Distill 2019):

- ``jump``: input pixels between two neighbouring cells;
- ``size``: the side of the window one cell sees;
- ``start``: where cell 0's window begins (negative where it reaches into the padding).

Cell ``i`` sees input pixels ``[start + i·jump, start + i·jump + size)``. ``"same"`` padding
pads ``total // 2`` before, as TensorFlow does, so ``start`` depends on the input size: fields
are computed for one input (height, width). Branches that meet (``Add``, ``Concatenate``) give
the union of their windows; a branch reduced to one cell by global pooling (squeeze-excite
gating) is context, not location, and is left out of the union. A layer whose geometry is not
known here and that changes the map's size makes the field the whole image (``size`` infinite).

The layer-size arithmetic is the forward twin of :mod:`cnnviz_widgets.engine.geometry`, which
walks the same steps backwards to find the smallest input a model takes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.graph import Alias, LayerCall, read_model, top_ref

__all__ = ["ReceptiveField", "crop_box", "receptive_fields"]


@dataclass(frozen=True)
class ReceptiveField:
    """The input window of the cells of one feature map, per axis (height, width).

    Attributes
    ----------
    size : (float, float)
        Side of the window one cell sees, in input pixels (``inf``: the whole image).
    jump : (float, float)
        Input pixels between neighbouring cells.
    start : (float, float)
        First input pixel of cell (0, 0)'s window (negative inside the padding).
    map_size : (int, int)
        The feature map's (height, width) for this input.

    Examples
    --------
    >>> rf = ReceptiveField(size=(5.0, 5.0), jump=(2.0, 2.0), start=(-1.0, -1.0), map_size=(8, 8))
    >>> rf.window(3, 0)
    (5, -1, 10, 4)
    """

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]
    map_size: tuple[int, int]

    @property
    def is_global(self) -> bool:
        """True when a cell sees the whole image (a layer of unknown geometry on the way)."""
        return math.isinf(self.size[0]) or math.isinf(self.size[1])

    def window(self, y: int, x: int) -> tuple[int, int, int, int]:
        """Cell (y, x)'s window as (top, left, bottom, right), bottom/right exclusive.

        Not clipped to the image: parts outside it lie in the padding.
        """
        top = math.floor(self.start[0] + y * self.jump[0])
        left = math.floor(self.start[1] + x * self.jump[1])
        return (top, left, top + round(self.size[0]), left + round(self.size[1]))


def crop_box(
    field: ReceptiveField, y: int, x: int, image_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The part of an image (height, width) to show for cell (y, x): its window, kept inside.

    Along an axis where the window is at least as large as the image the whole axis is taken;
    otherwise the window keeps its size and is moved inside the image where it reaches into
    the padding (padding holds no picture). Returns (top, left, bottom, right).
    """
    box = []
    for axis, cell in ((0, y), (1, x)):
        side = image_size[axis]
        if field.is_global or field.size[axis] >= side:
            box.append((0, side))
            continue
        size = round(field.size[axis])
        begin = math.floor(field.start[axis] + cell * field.jump[axis])
        begin = min(max(begin, 0), side - size)
        box.append((begin, begin + size))
    (top, bottom), (left, right) = box
    return (top, left, bottom, right)


# ------------------------------------------------------------------------------ the walk
@dataclass(frozen=True)
class _Field:
    size: tuple[int, int]
    jump: tuple[float, float]
    rf: tuple[float, float]
    start: tuple[float, float]


_GLOBAL = math.inf


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _window(field: _Field, kernel, stride, dilation, padding: str) -> _Field:
    size, jump, rf, start = [], [], [], []
    for i in range(2):
        n, k_eff = field.size[i], (kernel[i] - 1) * dilation[i] + 1
        if padding == "same":
            out = -(-n // stride[i])
            before = max((out - 1) * stride[i] + k_eff - n, 0) // 2
        else:
            out, before = (n - k_eff) // stride[i] + 1, 0
        size.append(max(out, 0))
        jump.append(field.jump[i] * stride[i])
        rf.append(field.rf[i] + (k_eff - 1) * field.jump[i])
        start.append(field.start[i] - before * field.jump[i])
    return _Field(tuple(size), tuple(jump), tuple(rf), tuple(start))


def _through(layer: Any, field: _Field, out_shape: tuple) -> _Field | None:
    """The field after ``layer`` (one spatial input); None when its output is not spatial."""
    if len(out_shape) != 3:
        return None
    name = type(layer).__name__
    if name in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        return _window(
            field,
            _pair(layer.kernel_size),
            _pair(layer.strides),
            _pair(getattr(layer, "dilation_rate", 1)),
            layer.padding,
        )
    if name in ("MaxPooling2D", "AveragePooling2D"):
        strides = layer.strides if layer.strides is not None else layer.pool_size
        return _window(field, _pair(layer.pool_size), _pair(strides), (1, 1), layer.padding)
    if name == "ZeroPadding2D":
        (top, bottom), (left, right) = layer.padding
        return _Field(
            (field.size[0] + top + bottom, field.size[1] + left + right),
            field.jump,
            field.rf,
            (field.start[0] - top * field.jump[0], field.start[1] - left * field.jump[1]),
        )
    if name == "Cropping2D":
        (top, bottom), (left, right) = layer.cropping
        return _Field(
            (field.size[0] - top - bottom, field.size[1] - left - right),
            field.jump,
            field.rf,
            (field.start[0] + top * field.jump[0], field.start[1] + left * field.jump[1]),
        )
    if name in ("UpSampling2D", "Conv2DTranspose", "Resizing"):
        # Finer cells over the same input: the jump shrinks, the window stays about the same.
        out = _known_size(out_shape, field.size, layer)
        jump = tuple(field.jump[i] * field.size[i] / max(out[i], 1) for i in range(2))
        return _Field(out, jump, field.rf, field.start)
    out = _known_size(out_shape, field.size, layer)
    if out != field.size:  # a layer we cannot read that changes the map's size
        return _Field(out, field.jump, (_GLOBAL, _GLOBAL), (0.0, 0.0))
    return field  # element-wise layers, normalisation, activations, dropout


def _known_size(out_shape: tuple, size: tuple[int, int], layer: Any) -> tuple[int, int]:
    h, w = out_shape[0], out_shape[1]
    if h is not None and w is not None:
        return (int(h), int(w))
    name = type(layer).__name__
    if name == "UpSampling2D":
        factor = _pair(layer.size)
        return (size[0] * factor[0], size[1] * factor[1])
    if name == "Conv2DTranspose":
        stride = _pair(layer.strides)
        return (size[0] * stride[0], size[1] * stride[1])
    return size


def _union(fields: Sequence[_Field]) -> _Field:
    """Branches meeting: the largest maps count (1×1 gating branches are context)."""
    largest = max(f.size[0] * f.size[1] for f in fields)
    local = [f for f in fields if f.size[0] * f.size[1] == largest]
    start = tuple(min(f.start[i] for f in local) for i in range(2))
    end = tuple(max(f.start[i] + f.rf[i] for f in local) for i in range(2))
    return _Field(
        local[0].size,
        tuple(max(f.jump[i] for f in local) for i in range(2)),
        tuple(end[i] - start[i] for i in range(2)),
        start,
    )


def receptive_fields(
    adapter: Any, layers: Sequence[str], input_size: tuple[int, int]
) -> dict[str, ReceptiveField]:
    """The receptive field of every layer path in ``layers`` for an input of ``input_size``.

    Parameters
    ----------
    adapter : ModelAdapter
        The model's adapter (:func:`~cnnviz_widgets.engine.adapter.adapter_for`), built.
    layers : sequence of str
        Resolved spatial layer paths.
    input_size : (int, int)
        The (height, width) the model is fed at.

    Examples
    --------
    >>> fields = receptive_fields(adapter_for(model), ["conv2"], (16, 16))  # doctest: +SKIP
    >>> fields["conv2"].size                                                # doctest: +SKIP
    (8.0, 8.0)
    """
    read = read_model(adapter.model, (*input_size, adapter.input_shape[2]))
    fields: dict[Any, _Field | None] = {
        top_ref(read.graph.inputs[0]): _Field(
            (int(input_size[0]), int(input_size[1])), (1.0, 1.0), (1.0, 1.0), (0.0, 0.0)
        )
    }
    wanted = set(layers)
    found: dict[str, ReceptiveField] = {}
    for step in read.steps:
        if isinstance(step, Alias):
            for src, dst in zip(step.input_ids, step.output_ids, strict=True):
                fields[dst] = fields.get(src)
        else:
            _step(step, fields)
        info = step.info
        if info is not None and info.path in wanted:
            field = fields.get(step.output_ids[0])
            if field is not None:
                found[info.path] = ReceptiveField(field.rf, field.jump, field.start, field.size)
    return found


def _step(step: LayerCall, fields: dict[Any, _Field | None]) -> None:
    inputs = [fields.get(ref) for ref in step.input_ids]
    spatial = [f for f in inputs if f is not None]
    out_shape = step.info.output_shape
    if not spatial:
        field = None
    elif len(inputs) == 1:
        field = _through(step.operation, spatial[0], out_shape)
    else:
        field = _union(spatial) if len(out_shape) == 3 else None
    for ref in step.output_ids:
        fields[ref] = field
