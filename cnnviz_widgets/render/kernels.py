"""Convolution kernels as pictures, and a network whose kernels you write by hand.

- :func:`kernel_weights` reads a Conv2D / DepthwiseConv2D / SeparableConv2D layer's kernels
  from any Keras model (nested sub-models included) in one layout, (kh, kw, in, out).
- :func:`kernel_grid` draws them: first-layer RGB kernels in colour, every other kernel slice
  in a diverging colormap, and — on small kernels — the numbers written on the cells, the way a
  lesson prints a 4×4 edge filter's ±1 values.
- :func:`handmade_filter_model` builds conv → ReLU → pool with kernels given by hand (edge
  detectors by default), to see what those three steps do to a photo in the
  :class:`~cnnviz_widgets.ActivationExplorer`.

Rendering is pure numpy (digits come from a tiny built-in bitmap font, so drawing a grid costs
milliseconds and looks the same everywhere). Keras is imported inside functions only.

Examples
--------
>>> import numpy as np
>>> from cnnviz_widgets.kernels import DEFAULT_FILTERS, kernel_grid
>>> kernels = np.stack(list(DEFAULT_FILTERS.values()), axis=-1)[:, :, None, :]
>>> kernels.shape
(4, 4, 1, 6)
>>> kernel_grid(kernels).dtype
dtype('uint8')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import CnnVizError, LayerError
from .core import apply_colormap

__all__ = [
    "DEFAULT_FILTERS",
    "handmade_filter_model",
    "kernel_grid",
    "kernel_weights",
]

_CONV_CLASSES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")


# ============================================================================================
# reading kernels
# ============================================================================================


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

    from ..engine.adapter import adapter_for

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
        hint = f" Convolution layers nearby: {nearby}."
    else:
        hint = " This model has no Conv2D, DepthwiseConv2D or SeparableConv2D layer."
    return (
        f"Layer {path!r} ({class_name}) has no convolution kernels to show: kernels belong to "
        f"Conv2D, DepthwiseConv2D and SeparableConv2D layers.{hint}"
    )


# ============================================================================================
# a tiny bitmap font for the numbers
# ============================================================================================

# 3×5 glyphs, rows top to bottom, '#' = ink. Enough for compact numbers: digits, sign, point.
_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    "-": ("...", "...", "###", "...", "..."),
    "+": ("...", ".#.", "###", ".#.", "..."),
    ".": ("...", "...", "...", "...", ".#."),
    "e": ("...", "###", "#.#", "##.", "###"),
}
_GLYPH_W, _GLYPH_H = 3, 5


def _text_mask(text: str, scale: int = 1) -> np.ndarray:
    """Boolean ink mask of ``text`` in the bitmap font, one blank column between glyphs."""
    columns = []
    for i, char in enumerate(text):
        glyph = np.array([[c == "#" for c in row] for row in _GLYPHS[char]], dtype=bool)
        if i:
            columns.append(np.zeros((_GLYPH_H, 1), bool))
        columns.append(glyph)
    mask = np.concatenate(columns, axis=1) if columns else np.zeros((_GLYPH_H, 0), bool)
    return np.kron(mask, np.ones((scale, scale), bool)).astype(bool)


def _format_value(value: float) -> str:
    """A number in at most 4 characters: "1", "-1", ".25", "-.05", "1.5", "-12", "3e2"."""
    if not math.isfinite(value):
        return ""
    if value == round(value) and abs(value) < 1000:
        return str(round(value))
    magnitude = abs(value)
    if magnitude < 0.005:
        return "0"
    if magnitude < 0.995:
        text = f"{value:.2f}"
        text = text.replace("0.", ".", 1)
        return text if len(text) <= 4 else text[:4]
    if magnitude < 9.95:
        return f"{value:.1f}"
    if magnitude < 999.5:
        return f"{value:.0f}"
    exponent = math.floor(math.log10(magnitude))
    mantissa = round(value / 10**exponent)
    return f"{mantissa}e{exponent}"


# ============================================================================================
# drawing kernels
# ============================================================================================


def _symmetric_scale(values: np.ndarray) -> float:
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    return peak if peak > 0 and math.isfinite(peak) else 1.0


def _tiles_grid(tiles: list[np.ndarray], columns: int, pad: int, pad_value: int) -> np.ndarray:
    th, tw = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    out = np.full(
        (pad + rows * (th + pad), pad + columns * (tw + pad), 3), pad_value, dtype=np.uint8
    )
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = pad + r * (th + pad), pad + c * (tw + pad)
        out[y : y + th, x : x + tw] = tile
    return out


def _draw_numbers(tile: np.ndarray, values: np.ndarray, cell: int, scale: int) -> None:
    """Write each value centred on its cell, black on light cells and white on dark ones."""
    for (r, c), value in np.ndenumerate(values):
        text = _format_value(float(value))
        if not text:
            continue
        mask = _text_mask(text, scale)
        mh, mw = mask.shape
        if mw > cell - 2:  # never let a number spill into the next cell
            continue
        y0, x0 = r * cell + (cell - mh) // 2, c * cell + (cell - mw) // 2
        region = tile[y0 : y0 + mh, x0 : x0 + mw]
        luminance = region.reshape(-1, 3).mean(axis=0) @ np.array([0.299, 0.587, 0.114])
        ink = 0 if luminance > 140 else 255
        region[mask] = ink


def _font_scale(cell: int) -> int:
    # Four glyphs ("-.05") take 4*3 + 3 = 15 font pixels across; keep a margin of 2 each side.
    return max(1, (cell - 4) // 15)


def kernel_grid(
    kernels: Any,
    layer: str | None = None,
    *,
    inputs: Sequence[int] | None = None,
    outputs: Sequence[int] | None = None,
    color: bool | None = None,
    numbers: bool | None = None,
    normalize: str = "layer",
    cmap: str = "RdBu_r",
    cell: int | None = None,
    columns: int | None = None,
    pad: int = 2,
    pad_value: int = 255,
) -> np.ndarray:
    """Draw convolution kernels as a picture: uint8 RGB (H, W, 3).

    Parameters
    ----------
    kernels : np.ndarray or keras.Model
        A (kh, kw, in, out) array (see :func:`kernel_weights`), or a model with ``layer``.
    layer : str, optional
        With a model: the convolution layer whose kernels to draw.
    inputs, outputs : sequence of int, optional
        Which input / output channels to show (default: the first 16 inputs and 64 outputs).
    color : bool, optional
        Draw each kernel's 3 input channels as one RGB tile (grey = 0). Default: when the
        kernels have exactly 3 inputs (a first layer on RGB images).
    numbers : bool, optional
        Write each weight on its cell. Default: for kernels up to 5×5, on single-channel
        (non-colour) tiles; a colour cell holds three weights, so it gets none.
    normalize : {"layer", "kernel"}
        Colour scale symmetric around 0 shared by all kernels drawn ("layer", so tiles compare
        and agree with the numbers), or per output kernel ("kernel", shows weak ones' shapes).
    cmap : str
        Diverging colormap for single-channel tiles: 0 is its middle colour (white for
        ``"RdBu_r"``: red positive, blue negative).
    cell : int, optional
        Side in pixels of one kernel cell (nearest-neighbour upscaling). Default 36 with
        numbers (room for "-.05"), 12 without.
    columns : int, optional
        Tiles per row for colour or single-input kernels (default: about square). Other
        kernels are laid out one row per output channel, one column per input channel.
    pad, pad_value : int
        Gap between tiles and its grey level.

    Returns
    -------
    np.ndarray
        uint8 RGB image.

    Examples
    --------
    >>> edge = np.array([[-1, -1, 1, 1]] * 4, np.float32)[:, :, None, None]
    >>> picture = kernel_grid(edge)  # one 4×4 tile with "-1" and "1" written on the cells
    >>> picture.shape
    (148, 148, 3)
    """
    if layer is not None or not isinstance(kernels, np.ndarray):
        if layer is None:
            raise CnnVizError(
                "kernel_grid needs kernels (a (kh, kw, in, out) array) or a model and a layer: "
                "kernel_grid(model, 'conv1')."
            )
        kernels = kernel_weights(kernels, layer)
    array = np.asarray(kernels, dtype=np.float32)
    if array.ndim != 4 or 0 in array.shape:
        raise CnnVizError(
            f"kernels must be a non-empty (kh, kw, in, out) array, got shape {array.shape}. "
            "Use kernel_weights(model, layer) to get one."
        )
    if normalize not in ("layer", "kernel"):
        raise CnnVizError(f"normalize must be 'layer' or 'kernel', got {normalize!r}.")
    kh, kw, n_in, n_out = array.shape
    inputs = list(range(min(n_in, 16))) if inputs is None else [int(i) for i in inputs]
    outputs = list(range(min(n_out, 64))) if outputs is None else [int(o) for o in outputs]
    for what, chosen, count in (("inputs", inputs, n_in), ("outputs", outputs, n_out)):
        bad = [i for i in chosen if not 0 <= i < count]
        if bad or not chosen:
            raise CnnVizError(
                f"{what} {bad or chosen} out of range: the kernels have {count} {what[:-1]} "
                f"channels (0–{count - 1})."
            )
    color = (n_in == 3) if color is None else bool(color)
    if color and n_in != 3:
        raise CnnVizError(
            f"color=True needs kernels with 3 input channels (RGB), these have {n_in}."
        )
    numbers = (not color and max(kh, kw) <= 5) if numbers is None else bool(numbers)
    if numbers and color:
        raise CnnVizError("numbers are drawn on single-channel tiles only; use color=False.")
    cell = (36 if numbers else 12) if cell is None else int(cell)
    if cell < 1:
        raise CnnVizError(f"cell must be at least 1 pixel, got {cell}.")

    shown = array[:, :, :, outputs] if color else array[:, :, inputs][:, :, :, outputs]
    layer_scale = _symmetric_scale(shown)

    def scale_of(o: int) -> float:
        return layer_scale if normalize == "layer" else _symmetric_scale(shown[..., o])

    tiles: list[np.ndarray] = []
    if color:
        for o in range(shown.shape[3]):
            rgb = 0.5 + shown[:, :, :, o] / (2.0 * scale_of(o))  # 0 -> grey
            rgb = np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
            tiles.append(np.kron(rgb, np.ones((cell, cell, 1), np.uint8)))
        per_row = columns or math.ceil(math.sqrt(len(tiles)))
        return _tiles_grid(tiles, per_row, pad, pad_value)

    font = _font_scale(cell)
    for o in range(shown.shape[3]):
        for i in range(shown.shape[2]):
            values = shown[:, :, i, o]
            tile = apply_colormap(0.5 + values / (2.0 * scale_of(o)), cmap)
            tile = np.ascontiguousarray(np.kron(tile, np.ones((cell, cell, 1), np.uint8)))
            if numbers:
                _draw_numbers(tile, values, cell, font)
            tiles.append(tile)
    if shown.shape[2] == 1:
        per_row = columns or math.ceil(math.sqrt(len(tiles)))
    else:
        per_row = shown.shape[2]  # one row per output kernel, its inputs side by side
    return _tiles_grid(tiles, per_row, pad, pad_value)


# ============================================================================================
# a network with hand-written kernels
# ============================================================================================

_EDGE = np.array([[-1, -1, 1, 1]] * 4, dtype=np.float32)
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)


def _pad_to(kernel: np.ndarray, size: int) -> np.ndarray:
    # Zeros at the bottom/right keep a 3×3 kernel *centred* where a 'same' convolution with a
    # 4×4 kernel looks: TensorFlow pads an even kernel by 1 before and 2 after, so output pixel
    # (y, x) reads rows y-1..y+2, and kernel row 1 lines up with row y — as the middle row of
    # a 3×3 kernel does. The zero-padded Sobel gives exactly the 3×3 'same' result.
    out = np.zeros((size, size), np.float32)
    out[: kernel.shape[0], : kernel.shape[1]] = kernel
    return out


#: The default hand-made filters: the four ±1 edge filters of the classic 4×4 lesson example
#: (dark-to-light left→right, its negative, and both turned 90°) and the Sobel pair, zero-padded
#: from 3×3 to 4×4 (see ``_pad_to``) so all six share one Conv2D.
DEFAULT_FILTERS: dict[str, np.ndarray] = {
    "vertical_dark_to_light": _EDGE,
    "vertical_light_to_dark": -_EDGE,
    "horizontal_dark_to_light": _EDGE.T.copy(),
    "horizontal_light_to_dark": -_EDGE.T,
    "sobel_x": _pad_to(_SOBEL_X, 4),
    "sobel_y": _pad_to(_SOBEL_X.T, 4),
}


def handmade_filter_model(
    kernels: Mapping[str, Any] | Sequence[Any] | np.ndarray | None = None,
    *,
    names: Sequence[str] | None = None,
    input_channels: int = 1,
) -> Any:
    """A Keras model ``image → edges (Conv2D, kernels by hand) → relu → pool (2×2 max)``.

    Feed it a grayscale photo and open it in the ActivationExplorer to see, filter by filter,
    what convolution, ReLU and max pooling each do.

    Parameters
    ----------
    kernels : dict, sequence or array, optional
        The 2-D filters: a ``{name: kernel}`` dict, a list of 2-D arrays, or an array
        (k, k, n). Smaller kernels are zero-padded at the bottom/right to the largest (exact
        for 3×3 in 4×4; otherwise the output shifts by up to a pixel). Default
        :data:`DEFAULT_FILTERS`: four ±1 4×4 edge filters and the Sobel x / y pair.
    names : sequence of str, optional
        One name per filter (default: the dict keys, or ``filter_0``, ...). Kept as the model's
        ``filter_names`` attribute, in channel order.
    input_channels : int
        1 for grayscale images (the default). With 3, each filter is applied to the mean of
        R, G and B (its weights divided by 3 on every input channel).

    Returns
    -------
    keras.Model
        Named ``handmade_filters``, input ``(None, None, input_channels)`` 0–255 pixels;
        layers ``edges`` (Conv2D, no bias, 'same' padding), ``relu`` and ``pool``.

    Examples
    --------
    >>> import cnnviz_widgets as cv
    >>> model = handmade_filter_model()                                # doctest: +SKIP
    >>> gray = cv.sample_image("coffee").mean(axis=2).astype("uint8")  # doctest: +SKIP
    >>> cv.ActivationExplorer(model, gray)                             # doctest: +SKIP
    """
    import keras

    if kernels is None:
        kernels = DEFAULT_FILTERS
    if isinstance(kernels, Mapping):
        default_names = [str(k) for k in kernels]
        planes = [np.asarray(v, dtype=np.float32) for v in kernels.values()]
    elif isinstance(kernels, np.ndarray) and kernels.ndim == 3:
        planes = [kernels[:, :, i].astype(np.float32) for i in range(kernels.shape[2])]
        default_names = [f"filter_{i}" for i in range(len(planes))]
    else:
        planes = [np.asarray(k, dtype=np.float32) for k in kernels]
        default_names = [f"filter_{i}" for i in range(len(planes))]
    if not planes or any(p.ndim != 2 or p.shape[0] != p.shape[1] or p.size == 0 for p in planes):
        raise CnnVizError(
            "kernels must be square 2-D filters, e.g. {'edge': [[-1, 1], [-1, 1]]} or an array "
            f"(k, k, n); got shapes {[p.shape for p in planes]}."
        )
    if not all(np.isfinite(p).all() for p in planes):
        raise CnnVizError("kernels contain NaN or infinite values; use finite numbers.")
    names = default_names if names is None else [str(n) for n in names]
    if len(names) != len(planes):
        raise CnnVizError(f"Got {len(names)} names for {len(planes)} filters; give one each.")
    if input_channels not in (1, 3) or isinstance(input_channels, bool):
        raise CnnVizError(f"input_channels must be 1 or 3, got {input_channels!r}.")
    size = max(p.shape[0] for p in planes)
    stack = np.stack([_pad_to(p, size) for p in planes], axis=-1)  # (k, k, n)
    weights = np.repeat(stack[:, :, None, :] / input_channels, input_channels, axis=2)

    image = keras.Input((None, None, input_channels), name="image")
    conv = keras.layers.Conv2D(len(planes), size, padding="same", use_bias=False, name="edges")
    x = conv(image)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    model = keras.Model(image, x, name="handmade_filters")
    conv.set_weights([weights.astype(np.float32)])
    model.filter_names = tuple(names)
    return model
