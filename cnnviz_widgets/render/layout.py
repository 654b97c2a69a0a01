"""Layout: upscale maps, lay channels out as a grid of tiles (paging: :mod:`.paging`).

Examples
--------
>>> import numpy as np
>>> grid, layout = channel_grid(np.zeros((7, 7, 8)), columns=4)
>>> layout.rows, layout.columns, grid.shape
(2, 4, (104, 206, 3))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import CnnVizError, check_int, check_positive
from ..i18n import gettext_ as _
from .color import _channel_stack, _to_lut_index, as_rgb_uint8, colormap_lut, normalize_channels

__all__ = [
    "GridLayout",
    "channel_grid",
    "channel_sum",
    "image_grid",
    "side_by_side",
    "upscale_nearest",
]


def _check_non_negative(value: object, what: str) -> int:
    """``value`` as an int ≥ 0 (the shared validators' wording)."""
    number = check_int(value, what)
    if number < 0:
        raise CnnVizError(_("{what} must be ≥ 0; got {number}.").format(what=what, number=number))
    return number


def _check_grey(value: object, what: str = "pad_value") -> int:
    """``value`` as a grey level 0–255."""
    number = check_int(value, what)
    if not 0 <= number <= 255:
        raise CnnVizError(
            _("{what} must be 0–255, got {number}. Use 255 for white.").format(
                what=what, number=number
            )
        )
    return number


def _upscale_factor(height: int, width: int, min_side: int) -> int:
    return max(1, -(-min_side // min(height, width)))


def upscale_nearest(image: np.ndarray, min_side: int) -> np.ndarray:
    """Enlarge by pixel replication with the smallest integer factor reaching ``min_side``.

    Integer factors keep every activation cell an exact square block, so a 7×7 map stays an
    honest 7×7 grid of blocks instead of a blurred picture.

    Parameters
    ----------
    image : np.ndarray
        ``(H, W)`` or ``(H, W, C)``, any dtype.
    min_side : int
        Target for the shorter side: the factor is the smallest ``k >= 1`` with
        ``min(H, W) * k >= min_side``.

    Returns
    -------
    np.ndarray
        The ``(H*k, W*k[, C])`` enlargement; ``image`` itself (not a copy) when ``k == 1``.

    Examples
    --------
    >>> upscale_nearest(np.zeros((7, 7)), 224).shape
    (224, 224)
    """
    array = np.asarray(image)
    min_side = _check_non_negative(min_side, "min_side")
    if array.ndim not in (2, 3):
        raise CnnVizError(
            _("image must be (H, W) or (H, W, C), got shape {shape}.").format(shape=array.shape)
        )
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise CnnVizError(
            _("image is empty (shape {shape}); pass one with H, W >= 1.").format(shape=array.shape)
        )
    k = _upscale_factor(height, width, min_side)
    if k == 1:
        return array
    # Widen each row first, then copy whole widened rows k times: the second step moves long
    # contiguous runs, several times faster than replicating single (R, G, B) pixels.
    wide = np.repeat(array, k, axis=1)
    rows = np.broadcast_to(wide[:, None], (height, k, *wide.shape[1:]))
    return rows.reshape(height * k, *wide.shape[1:])


@dataclass(frozen=True)
class GridLayout:
    """Where each channel tile sits in a picture made by :func:`channel_grid`.

    Tile ``i`` (row ``i // columns``, column ``i % columns``) covers output rows
    ``pad + row * (tile_height + pad)`` up to ``+ tile_height`` (exclusive), and likewise for
    columns; ``pad`` pixels separate tiles and surround the whole grid.

    Attributes
    ----------
    channels : tuple of int
        Channel index shown in each tile, row-major. Trailing tiles of the last row may be
        empty (``len(channels) <= rows * columns``).
    columns, rows : int
        Grid size in tiles.
    tile_height, tile_width : int
        Tile size in output pixels (after upscaling).
    pad : int
        Pixels between tiles and around the border.

    Examples
    --------
    >>> layout = GridLayout((4, 5, 6), columns=2, rows=2, tile_height=10, tile_width=10, pad=2)
    >>> layout.shape
    (26, 26)
    >>> layout.tile_at(x=15, y=3), layout.tile_at(x=1, y=1)
    (5, None)
    """

    channels: tuple[int, ...]
    columns: int
    rows: int
    tile_height: int
    tile_width: int
    pad: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels of the whole grid picture."""
        return (
            self.pad + self.rows * (self.tile_height + self.pad),
            self.pad + self.columns * (self.tile_width + self.pad),
        )

    def tile_at(self, x: float, y: float) -> int | None:
        """Return the channel shown under output pixel ``(x, y)``, or None.

        Parameters
        ----------
        x, y : float
            Column and row in grid-picture pixels (fractions allowed, as from mouse events).

        Returns
        -------
        int or None
            The channel index, or None over padding, an empty tile, or outside the picture.
        """
        try:
            col_px = math.floor(x) - self.pad
            row_px = math.floor(y) - self.pad
        except (ValueError, OverflowError, TypeError):  # NaN, inf, None
            return None
        if col_px < 0 or row_px < 0:
            return None
        col, col_off = divmod(col_px, self.tile_width + self.pad)
        row, row_off = divmod(row_px, self.tile_height + self.pad)
        if col_off >= self.tile_width or row_off >= self.tile_height:
            return None
        if col >= self.columns or row >= self.rows:
            return None
        index = row * self.columns + col
        return self.channels[index] if index < len(self.channels) else None


def _check_channels(channels: Sequence[int] | None, n_available: int) -> tuple[int, ...]:
    if channels is None:
        return tuple(range(n_available))
    if isinstance(channels, range):
        chosen = channels
    else:
        try:
            chosen = list(channels)
        except TypeError:
            raise CnnVizError(
                _(
                    "channels must be a sequence of channel indexes, got {kind}. Pass e.g. "
                    "channels=[0, 1, 2] or range(64)."
                ).format(kind=type(channels).__name__)
            ) from None
    checked = []
    last = n_available - 1
    valid = _("valid: 0–{last}").format(last=last) if n_available else _("it has none")
    for channel in chosen:
        number = check_int(channel, _("channel index"))
        if not 0 <= number < n_available:
            raise CnnVizError(
                _(
                    "Channel index {number} is out of range: this layer has {n_available} channels "
                    "({valid}). Pick channel indexes from 0 to {last}."
                ).format(number=number, n_available=n_available, valid=valid, last=last)
            )
        checked.append(number)
    if not checked:
        raise CnnVizError(
            _("No channels to show: pass at least one channel index, or None for all.")
        )
    return tuple(checked)


def channel_grid(
    maps: np.ndarray,
    channels: Sequence[int] | None = None,
    *,
    columns: int | None = None,
    cmap: str = "viridis",
    pad: int = 2,
    tile_min_side: int = 48,
    tile_max_side: int | None = None,
    pad_value: int = 255,
) -> tuple[np.ndarray, GridLayout]:
    """Draw many channels of one layer as a grid of colormapped tiles.

    Parameters
    ----------
    maps : np.ndarray
        ``(H, W, C)`` activations of one image (an ``(H, W)`` map counts as one channel).
    channels : sequence of int, optional
        Channels to draw, in order (default: all). Use :func:`page_channels` to page through a
        wide layer.
    columns : int, optional
        Tiles per row; default ``ceil(sqrt(n))`` for a near-square grid. Honoured exactly even
        when larger than the number of tiles, so pages keep the same width.
    cmap : str
        Colormap name.
    pad : int
        Pixels between tiles and around the border.
    tile_min_side : int
        Tiles are upscaled (nearest, integer factor) until their shorter side reaches this.
    tile_max_side : int, optional
        Maps whose longer side exceeds this are shrunk by the smallest integer factor that
        fits, averaging each block of pixels: a page of 64 large early-layer maps would
        otherwise make a picture several thousand pixels wide, slow to encode and send.
    pad_value : int
        Grey level 0–255 of the padding and empty tiles (255 = white).

    Returns
    -------
    grid : np.ndarray
        uint8 ``(Hg, Wg, 3)`` picture; ``(Hg, Wg) == layout.shape``.
    layout : GridLayout
        Tile geometry, e.g. to map a click back to a channel with ``layout.tile_at(x, y)``.

    Notes
    -----
    Each channel is min–max normalised on its own (see :func:`normalize_channels`), so tiles
    show spatial pattern, not relative strength between channels.

    Examples
    --------
    >>> grid, layout = channel_grid(np.random.rand(7, 7, 10), columns=5)
    >>> grid.shape, layout.rows, layout.tile_height
    ((104, 257, 3), 2, 49)
    """
    array = _channel_stack(maps)
    height, width, n_available = array.shape
    if height == 0 or width == 0:
        raise CnnVizError(
            _("maps is empty (shape {shape}); pass a map with H, W >= 1.").format(shape=array.shape)
        )
    chosen = _check_channels(channels, n_available)
    pad = _check_non_negative(pad, "pad")
    tile_min_side = check_positive(tile_min_side, "tile_min_side")
    pad_value = _check_grey(pad_value)
    n = len(chosen)
    if columns is None:
        columns = math.ceil(math.sqrt(n))
    columns = check_positive(columns, "columns")
    rows = -(-n // columns)

    # Consecutive channels (the paging case) slice as a view; anything else is one gather.
    first = chosen[0]
    if chosen == tuple(range(first, first + n)):
        selected = array[:, :, first : first + n]
    else:
        selected = array[:, :, list(chosen)]
    if tile_max_side is not None:
        tile_max_side = check_positive(tile_max_side, "tile_max_side")
        shrink = -(-max(height, width) // tile_max_side)
        if shrink > 1:
            selected = _block_mean(selected, shrink)
            height, width = selected.shape[:2]
    # Colour at the small native size, then replicate pixels: cheaper than the other way round.
    index = _to_lut_index(normalize_channels(selected).transpose(2, 0, 1))  # (n, H, W)
    tiles = np.empty((rows * columns, height, width, 3), dtype=np.uint8)
    np.take(colormap_lut(cmap), index, axis=0, out=tiles[:n])
    tiles[n:] = pad_value
    return _lay_out(tiles, chosen, columns, rows, pad, tile_min_side, pad_value)


def image_grid(
    images: np.ndarray,
    labels: Sequence[int] | None = None,
    *,
    columns: int | None = None,
    pad: int = 2,
    tile_min_side: int = 48,
    pad_value: int = 255,
) -> tuple[np.ndarray, GridLayout]:
    """Lay out colour pictures (e.g. filter-ascent results) as a grid, like :func:`channel_grid`.

    Parameters
    ----------
    images : np.ndarray
        ``(N, H, W, 3)`` uint8, or float in [0, 1].
    labels : sequence of int, optional
        What each tile stands for (``layout.tile_at`` returns it); default ``0..N-1``.
    columns, pad, tile_min_side, pad_value
        As in :func:`channel_grid`.

    Examples
    --------
    >>> grid, layout = image_grid(np.zeros((3, 8, 8, 3)), [5, 6, 7], columns=3, tile_min_side=8)
    >>> grid.shape, layout.channels
    ((12, 32, 3), (5, 6, 7))
    """
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] != 3 or 0 in array.shape:
        raise CnnVizError(
            _("images must be (N, H, W, 3) with N, H, W ≥ 1; got shape {shape}.").format(
                shape=array.shape
            )
        )
    n, height, width, _channels = array.shape
    chosen = tuple(range(n)) if labels is None else tuple(int(c) for c in labels)
    if len(chosen) != n:
        raise CnnVizError(
            _("{n_chosen} labels for {n} images; give one label per image.").format(
                n_chosen=len(chosen), n=n
            )
        )
    pad = _check_non_negative(pad, "pad")
    pad_value = _check_grey(pad_value)
    columns = check_positive(math.ceil(math.sqrt(n)) if columns is None else columns, "columns")
    rows = -(-n // columns)
    tiles = np.full((rows * columns, height, width, 3), pad_value, dtype=np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        tiles[:n] = np.round(np.clip(np.nan_to_num(array), 0.0, 1.0) * 255.0)
    else:
        tiles[:n] = np.clip(array, 0, 255)
    return _lay_out(
        tiles,
        chosen,
        columns,
        rows,
        pad,
        check_positive(tile_min_side, "tile_min_side"),
        pad_value,
    )


def _lay_out(
    tiles: np.ndarray,
    chosen: tuple[int, ...],
    columns: int,
    rows: int,
    pad: int,
    tile_min_side: int,
    pad_value: int,
) -> tuple[np.ndarray, GridLayout]:
    """Place ``rows * columns`` uint8 tiles (padding tiles included) on one padded canvas."""
    _, height, width, _ = tiles.shape
    k = _upscale_factor(height, width, tile_min_side)
    layout = GridLayout(
        channels=chosen,
        columns=columns,
        rows=rows,
        tile_height=height * k,
        tile_width=width * k,
        pad=pad,
    )
    grid = np.full((*layout.shape, 3), pad_value, dtype=np.uint8)
    # A 7-D strided view of the canvas, (row, y, dy, col, x, dx, rgb): one broadcast
    # assignment lays out and upscales every tile, without per-tile Python work.
    body = grid[pad:, pad:]
    s_row, s_col, s_rgb = body.strides
    view = np.lib.stride_tricks.as_strided(
        body,
        shape=(rows, height, k, columns, width, k, 3),
        strides=(
            s_row * (layout.tile_height + pad),
            s_row * k,
            s_row,
            s_col * (layout.tile_width + pad),
            s_col * k,
            s_col,
            s_rgb,
        ),
        writeable=True,
    )
    arranged = tiles.reshape(rows, columns, height, width, 3).transpose(0, 2, 1, 3, 4)
    view[...] = arranged[:, :, None, :, :, None, :]
    return grid, layout


def _block_mean(maps: np.ndarray, factor: int) -> np.ndarray:
    """Shrink (H, W, C) maps by ``factor``, averaging factor×factor blocks (edges dropped)."""
    height, width = max(1, maps.shape[0] // factor), max(1, maps.shape[1] // factor)
    fy, fx = min(factor, maps.shape[0]), min(factor, maps.shape[1])
    cropped = maps[: height * fy, : width * fx].astype(np.float32, copy=False)
    return cropped.reshape(height, fy, width, fx, -1).mean(axis=(1, 3))


def channel_sum(maps: np.ndarray) -> np.ndarray:
    """Sum a layer over its channels into one "fused" map.

    Parameters
    ----------
    maps : np.ndarray
        ``(H, W, C)`` (or ``(H, W)``, returned as float32).

    Returns
    -------
    np.ndarray
        ``(H, W)`` float32. NaN and ±inf entries count as 0, so one bad value does not blank a
        whole pixel of the fused map.

    Examples
    --------
    >>> channel_sum(np.ones((2, 3, 4))).tolist()
    [[4.0, 4.0, 4.0], [4.0, 4.0, 4.0]]
    """
    array = _channel_stack(maps)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        array = np.where(np.isfinite(array), array, 0)
    with np.errstate(over="ignore"):  # a float32 overflow becomes inf, same as numpy default
        return array.sum(axis=2, dtype=np.float32)



def side_by_side(images: Sequence[np.ndarray], *, pad: int = 8, pad_value: int = 255) -> np.ndarray:
    """Place pictures left to right, vertically centred on a common height.

    Parameters
    ----------
    images : sequence of np.ndarray
        Pictures accepted by :func:`as_rgb_uint8` (uint8 RGB, grey, float 0–255).
    pad : int
        Pixels between neighbouring pictures (none around the outside).
    pad_value : int
        Grey level 0–255 of the gaps and of the space above/below shorter pictures.

    Returns
    -------
    np.ndarray
        uint8 ``(max H, sum W + pad * (n - 1), 3)``. A picture of height ``h`` starts at row
        ``(max H - h) // 2``.

    Examples
    --------
    >>> side_by_side([np.zeros((4, 2, 3), np.uint8), np.zeros((2, 3, 3), np.uint8)], pad=1).shape
    (4, 6, 3)
    """
    pictures = [as_rgb_uint8(picture) for picture in images]
    if not pictures:
        raise CnnVizError(_("side_by_side needs at least one image; pass a non-empty list."))
    pad = _check_non_negative(pad, "pad")
    pad_value = _check_grey(pad_value)
    height = max(p.shape[0] for p in pictures)
    width = sum(p.shape[1] for p in pictures) + pad * (len(pictures) - 1)
    canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
    left = 0
    for picture in pictures:
        h, w = picture.shape[:2]
        top = (height - h) // 2
        canvas[top : top + h, left : left + w] = picture
        left += w + pad
    return canvas

