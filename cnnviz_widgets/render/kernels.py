"""Convolution kernels as pictures, and the hand-made edge filters of the classic lesson.

- :func:`kernel_grid` draws kernels laid out (kh, kw, in, out): first-layer RGB kernels in
  colour, every other kernel slice in a diverging colormap, and — on small kernels — the numbers
  written on the cells, the way a lesson prints a 4×4 edge filter's ±1 values.
- :data:`DEFAULT_FILTERS` are the hand-made edge filters (four ±1 4×4 filters and the Sobel
  pair) that :func:`cnnviz_widgets.engine.models.handmade_filter_model` puts in a network.

Pure numpy: digits come from a tiny built-in bitmap font, so drawing a grid costs milliseconds
and looks the same everywhere. Reading kernels out of a Keras model is the engine's job
(:func:`cnnviz_widgets.engine.weights.kernel_weights`).

Examples
--------
>>> import numpy as np
>>> from cnnviz_widgets.render.kernels import DEFAULT_FILTERS, kernel_grid
>>> kernels = np.stack(list(DEFAULT_FILTERS.values()), axis=-1)[:, :, None, :]
>>> kernels.shape
(4, 4, 1, 6)
>>> kernel_grid(kernels).dtype
dtype('uint8')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import CnnVizError, check_choice, check_positive
from ..i18n import N_
from ..i18n import gettext_ as _
from .color import apply_colormap

__all__ = [
    "DEFAULT_FILTERS",
    "kernel_grid",
    "pad_kernel",
]


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
        A (kh, kw, in, out) array (see :func:`cnnviz_widgets.engine.weights.kernel_weights`),
        or a Keras model with ``layer``.
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
                _(
                    "kernel_grid needs kernels (a (kh, kw, in, out) array) or a model and a layer: "
                    "kernel_grid(model, 'conv1')."
                )
            )
        # Reading weights out of a model is the engine's job (it imports Keras); only this
        # convenience path reaches it, so drawing an array never loads the engine.
        from ..engine.weights import kernel_weights

        kernels = kernel_weights(kernels, layer)
    array = np.asarray(kernels, dtype=np.float32)
    if array.ndim != 4 or 0 in array.shape:
        raise CnnVizError(
            _(
                "kernels must be a non-empty (kh, kw, in, out) array, got shape {shape}. Use "
                "cnnviz_widgets.engine.weights.kernel_weights(model, layer) to get one."
            ).format(shape=array.shape)
        )
    check_choice(normalize, ("layer", "kernel"), _("normalize mode"))
    if columns is not None:
        columns = check_positive(columns, "columns")
    kh, kw, n_in, n_out = array.shape
    inputs = list(range(min(n_in, 16))) if inputs is None else [int(i) for i in inputs]
    outputs = list(range(min(n_out, 64))) if outputs is None else [int(o) for o in outputs]
    # Whole sentences, one per argument: the English words "input"/"output" are not glued in.
    checks = (
        (inputs, n_in, N_("inputs {chosen} out of range: the kernels have {count} input "
                          "channels (0–{last}).")),
        (outputs, n_out, N_("outputs {chosen} out of range: the kernels have {count} output "
                            "channels (0–{last}).")),
    )  # fmt: skip
    for chosen, count, message in checks:
        bad = [i for i in chosen if not 0 <= i < count]
        if bad or not chosen:
            raise CnnVizError(_(message).format(chosen=bad or chosen, count=count, last=count - 1))
    color = (n_in == 3) if color is None else bool(color)
    if color and n_in != 3:
        raise CnnVizError(
            _("color=True needs kernels with 3 input channels (RGB), these have {n_in}.").format(
                n_in=n_in
            )
        )
    numbers = (not color and max(kh, kw) <= 5) if numbers is None else bool(numbers)
    if numbers and color:
        raise CnnVizError(_("numbers are drawn on single-channel tiles only; use color=False."))
    cell = (36 if numbers else 12) if cell is None else check_positive(cell, "cell")

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
# hand-made filters
# ============================================================================================

_EDGE = np.array([[-1, -1, 1, 1]] * 4, dtype=np.float32)
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """A 2-D kernel zero-padded at the bottom and right to ``size × size``, float32.

    Examples
    --------
    >>> pad_kernel(np.ones((3, 3)), 4)[:, 3].tolist()
    [0.0, 0.0, 0.0, 0.0]
    """
    # Zeros at the bottom/right keep a 3×3 kernel *centred* where a 'same' convolution with a
    # 4×4 kernel looks: TensorFlow pads an even kernel by 1 before and 2 after, so output pixel
    # (y, x) reads rows y-1..y+2, and kernel row 1 lines up with row y — as the middle row of
    # a 3×3 kernel does. The zero-padded Sobel gives exactly the 3×3 'same' result.
    out = np.zeros((size, size), np.float32)
    out[: kernel.shape[0], : kernel.shape[1]] = kernel
    return out


#: The default hand-made filters: the four ±1 edge filters of the classic 4×4 lesson example
#: (dark-to-light left→right, its negative, and both turned 90°) and the Sobel pair, zero-padded
#: from 3×3 to 4×4 (see :func:`pad_kernel`) so all six share one Conv2D.
DEFAULT_FILTERS: dict[str, np.ndarray] = {
    "vertical_dark_to_light": _EDGE,
    "vertical_light_to_dark": -_EDGE,
    "horizontal_dark_to_light": _EDGE.T.copy(),
    "horizontal_light_to_dark": -_EDGE.T,
    "sobel_x": pad_kernel(_SOBEL_X, 4),
    "sobel_y": pad_kernel(_SOBEL_X.T, 4),
}
