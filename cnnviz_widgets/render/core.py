"""Turn activation arrays into pictures: normalisation, colormaps, grids, overlays and PNG bytes.

Everything here is plain numpy (plus ``zlib``/``struct`` for the PNG writer) so that redrawing a
widget costs milliseconds and never touches TensorFlow, Keras or ipywidgets. matplotlib is
imported lazily, only to read its colormap tables once per colormap name.

Examples
--------
>>> import numpy as np
>>> maps = np.random.default_rng(0).normal(size=(14, 14, 8)).astype(np.float32)
>>> rgb = apply_colormap(normalize_channels(maps[:, :, 0]), "viridis")
>>> png = encode_png(upscale_nearest(rgb, 224))
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
>>> grid, layout = channel_grid(maps, columns=4)
>>> layout.rows, layout.columns
(2, 4)
"""

from __future__ import annotations

import functools
import math
import operator
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import CnnVizError, close_matches

__all__ = [
    "GridLayout",
    "apply_colormap",
    "as_rgb_uint8",
    "channel_grid",
    "channel_sum",
    "colormap_lut",
    "colormap_names",
    "encode_png",
    "image_grid",
    "normalize_channels",
    "overlay",
    "page_channels",
    "page_count",
    "side_by_side",
    "upscale_nearest",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Spellings people type that matplotlib may not register under that exact name.
_CMAP_ALIASES = {"grey": "gray", "grey_r": "gray_r"}


# --------------------------------------------------------------------------------------------
# small validation helpers
# --------------------------------------------------------------------------------------------


def _as_int(value: object, what: str, *, minimum: int | None = None) -> int:
    # operator.index accepts Python and numpy integers but rejects floats such as 2.5, which
    # would otherwise be silently truncated somewhere downstream.
    if isinstance(value, bool):
        raise CnnVizError(f"{what} must be an integer, got the bool {value!r}. Pass a number.")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise CnnVizError(
            f"{what} must be an integer, got {value!r} ({type(value).__name__}). "
            f"Pass a whole number, e.g. {what}={minimum if minimum is not None else 0}."
        ) from None
    if minimum is not None and number < minimum:
        raise CnnVizError(
            f"{what} must be at least {minimum}, got {number}. Pass {minimum} or more."
        )
    return number


def _channel_stack(maps: np.ndarray) -> np.ndarray:
    """``maps`` as a real (H, W, C) array; an (H, W) map counts as one channel."""
    array = _real_array(maps, "maps")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise CnnVizError(
            f"maps must be (H, W, C), got shape {array.shape}. Drop the batch axis, e.g. maps[0]."
        )
    return array


def _real_array(values: object, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise CnnVizError(
            f"{what} must hold real numbers, got dtype {array.dtype}. "
            "Convert it first, e.g. np.asarray(x, dtype=np.float32)."
        )
    return array


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------


def normalize_channels(
    maps: np.ndarray, *, vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """Scale each channel of an activation map to ``[0, 1]``.

    Parameters
    ----------
    maps : np.ndarray
        ``(H, W)`` or ``(H, W, C)`` array of any real dtype. Never modified.
    vmin, vmax : float, optional
        Fixed value range shared by all channels. When omitted, each channel uses its own
        minimum (``vmin``) and/or maximum (``vmax``) over H and W. Values outside the range
        are clipped.

    Returns
    -------
    np.ndarray
        float32 array with the shape of ``maps`` and values in ``[0, 1]``. A constant channel
        (including an all-zero "dead" one) becomes all 0.0, so it reads as dead rather than as
        a division-by-zero artefact. NaN and ±inf entries become 0.0 and are ignored when
        finding a channel's range.

    Examples
    --------
    >>> normalize_channels(np.array([[1.0, 3.0], [5.0, 5.0]])).tolist()
    [[0.0, 0.5], [1.0, 1.0]]
    """
    array = _real_array(maps, "maps")
    if array.ndim not in (2, 3):
        raise CnnVizError(
            f"maps must be (H, W) or (H, W, C), got shape {array.shape}. "
            "Drop the batch axis first, e.g. maps[0]."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise CnnVizError(f"maps is empty (shape {array.shape}); pass a map with H, W >= 1.")
    for name, bound in (("vmin", vmin), ("vmax", vmax)):
        if bound is not None and not math.isfinite(float(bound)):
            raise CnnVizError(f"{name} must be a finite number, got {bound!r}. Pass a real value.")
    if vmin is not None and vmax is not None and not float(vmin) < float(vmax):
        raise CnnVizError(
            f"vmin ({vmin}) must be smaller than vmax ({vmax}). Swap them or widen the range."
        )

    # float32 halves memory traffic; float64 and wide ints keep float64 so large values do not
    # collapse together before the range is taken.
    wide = array.dtype.itemsize > 4 or (array.dtype.kind in "iu" and array.dtype.itemsize == 4)
    work_dtype = np.float64 if wide else np.float32
    data = array.astype(work_dtype, copy=True)  # copy: the caller's array is never touched
    axes = (0, 1)
    finite = np.isfinite(data)
    all_finite = bool(finite.all())

    if vmin is None:
        lo = data.min(axis=axes) if all_finite else np.where(finite, data, np.inf).min(axis=axes)
    else:
        lo = np.full(data.shape[2:], vmin, dtype=work_dtype)
    if vmax is None:
        hi = data.max(axis=axes) if all_finite else np.where(finite, data, -np.inf).max(axis=axes)
    else:
        hi = np.full(data.shape[2:], vmax, dtype=work_dtype)

    # A channel with no finite value at all leaves lo=+inf / hi=-inf: treat it as dead.
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    empty = ~(np.isfinite(lo) & np.isfinite(hi))
    lo = np.where(empty, 0.0, lo)
    hi = np.where(empty, 0.0, hi)
    with np.errstate(over="ignore"):
        span = hi - lo  # float64: a float32 range of ±3e38 cannot overflow here
    if not np.isfinite(span).all():
        # Only a float64 range wider than ~1.8e308 gets here; halving everything keeps the
        # ratios and brings the span back into range.
        with np.errstate(under="ignore"):
            data *= 0.5
        lo, hi = lo * 0.5, hi * 0.5
        span = hi - lo
    with np.errstate(under="ignore"):  # 1/span of a ~1e308 range is subnormal: still usable
        scale = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)
    if work_dtype == np.float32 and bool((scale > 1e37).any()):
        # A range of a few float32 ulps near zero: 1/span would overflow float32.
        work_dtype = np.float64
        data = data.astype(np.float64)

    if not all_finite:
        # Bad entries take the channel minimum, which maps to exactly 0.
        np.copyto(data, lo.astype(work_dtype), where=~finite)
    with np.errstate(over="ignore", under="ignore"):
        # Overflow can only push a value past the top of its range; the clip below fixes it.
        data -= lo.astype(work_dtype)
        data *= scale.astype(work_dtype)
    np.clip(data, 0.0, 1.0, out=data)
    return data.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# colormaps
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _colormap_name_set() -> frozenset[str]:
    import matplotlib  # lazy: only needed to know which names exist

    names = set(matplotlib.colormaps)
    # Older matplotlib releases did not register every reversed map; _build_lut makes them.
    names |= {f"{n}_r" for n in names if not n.endswith("_r")}
    names |= set(_CMAP_ALIASES)
    return frozenset(names)


def colormap_names() -> list[str]:
    """List every usable colormap name, sorted, including each reversed ``'_r'`` form.

    Returns
    -------
    list of str
        A fresh list (safe to modify), e.g. ``['Accent', 'Accent_r', ..., 'viridis_r', ...]``.
    """
    return sorted(_colormap_name_set())


def _resolve_colormap_name(name: object) -> str:
    if not isinstance(name, str):
        raise CnnVizError(
            f"cmap must be a colormap name string, got {type(name).__name__}. "
            "Pass a name such as 'viridis' (see colormap_names())."
        )
    names = _colormap_name_set()
    if name in names:
        return name
    # matplotlib names are case-sensitive ("Blues"), people are not ("blues").
    folded = [n for n in names if n.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    ordered = sorted(names)
    suggestions = close_matches(name, ordered) or close_matches(name.lower(), ordered)
    hint = f" Did you mean: {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    raise CnnVizError(
        f"Unknown colormap {name!r}.{hint} "
        "Any matplotlib colormap name works, with '_r' for its reversed form."
    )


@functools.cache  # lru_cache without a size bound: ~180 names, 768 bytes each
def _build_lut(name: str) -> np.ndarray:
    import matplotlib  # lazy: matplotlib is only a source of colour tables here

    registry = matplotlib.colormaps
    if name in registry:
        cmap = registry[name]
    elif name in _CMAP_ALIASES:
        cmap = registry[_CMAP_ALIASES[name]]
    else:  # a '_r' name this matplotlib does not register itself
        base = name[:-2]
        cmap = registry[_CMAP_ALIASES.get(base, base)].reversed()
    rgba = np.asarray(cmap(np.linspace(0.0, 1.0, 256)), dtype=np.float64)
    lut = np.rint(np.clip(rgba[:, :3], 0.0, 1.0) * 255.0).astype(np.uint8)
    lut.setflags(write=False)  # shared by every caller through the cache
    return lut


def colormap_lut(name: str) -> np.ndarray:
    """Return the 256-entry RGB lookup table of a matplotlib colormap.

    Built from matplotlib once per name (``functools.lru_cache``) and returned read-only, so
    every caller shares one array safely.

    Parameters
    ----------
    name : str
        Any matplotlib colormap name, its ``'_r'`` reversed form, or ``'grey'``. A unique
        case-insensitive match is accepted too (``'blues'`` means ``'Blues'``).

    Returns
    -------
    np.ndarray
        ``(256, 3)`` uint8; row ``i`` is the colour for the value ``i / 255``.

    Raises
    ------
    CnnVizError
        For an unknown name, suggesting close matches.

    Examples
    --------
    >>> colormap_lut("gray")[[0, 255]].tolist()
    [[0, 0, 0], [255, 255, 255]]
    """
    return _build_lut(_resolve_colormap_name(name))


def _to_lut_index(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # huge values become inf, which the clip handles
        scaled = np.multiply(values, 255.0, dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    # NaN survives clip and would cast to an arbitrary index (with a warning); use 0 instead.
    scaled[np.isnan(scaled)] = 0.0
    return scaled.astype(np.uint8)


def apply_colormap(values: np.ndarray, cmap: str) -> np.ndarray:
    """Colour values in ``[0, 1]`` through a colormap.

    Parameters
    ----------
    values : np.ndarray
        Any shape ``(...)``; the LUT index is ``round(v * 255)`` clipped to ``0..255``
        (NaN counts as 0).
    cmap : str
        Colormap name, as for :func:`colormap_lut`.

    Returns
    -------
    np.ndarray
        uint8 array of shape ``(..., 3)``.

    Examples
    --------
    >>> apply_colormap(np.array([0.0, 1.0]), "gray").tolist()
    [[0, 0, 0], [255, 255, 255]]
    """
    lut = colormap_lut(cmap)
    index = _to_lut_index(_real_array(values, "values"))
    # np.take is several times faster than lut[index] fancy indexing for this gather.
    return np.take(lut, index, axis=0)


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------


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
    min_side = _as_int(min_side, "min_side", minimum=0)
    if array.ndim not in (2, 3):
        raise CnnVizError(f"image must be (H, W) or (H, W, C), got shape {array.shape}.")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise CnnVizError(f"image is empty (shape {array.shape}); pass one with H, W >= 1.")
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
                f"channels must be a sequence of channel indexes, got {type(channels).__name__}. "
                "Pass e.g. channels=[0, 1, 2] or range(64)."
            ) from None
    checked = []
    last = n_available - 1
    valid = f"valid: 0–{last}" if n_available else "it has none"
    for channel in chosen:
        number = _as_int(channel, "channel index")
        if not 0 <= number < n_available:
            raise CnnVizError(
                f"Channel index {number} is out of range: this layer has {n_available} "
                f"channels ({valid}). Pick channel indexes from 0 to {last}."
            )
        checked.append(number)
    if not checked:
        raise CnnVizError("No channels to show: pass at least one channel index, or None for all.")
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
        raise CnnVizError(f"maps is empty (shape {array.shape}); pass a map with H, W >= 1.")
    chosen = _check_channels(channels, n_available)
    pad = _as_int(pad, "pad", minimum=0)
    tile_min_side = _as_int(tile_min_side, "tile_min_side", minimum=1)
    pad_value = _as_int(pad_value, "pad_value", minimum=0)
    if pad_value > 255:
        raise CnnVizError(f"pad_value must be 0–255, got {pad_value}. Use 255 for white.")
    n = len(chosen)
    if columns is None:
        columns = math.ceil(math.sqrt(n))
    columns = _as_int(columns, "columns", minimum=1)
    rows = -(-n // columns)

    # Consecutive channels (the paging case) slice as a view; anything else is one gather.
    first = chosen[0]
    if chosen == tuple(range(first, first + n)):
        selected = array[:, :, first : first + n]
    else:
        selected = array[:, :, list(chosen)]
    if tile_max_side is not None:
        tile_max_side = _as_int(tile_max_side, "tile_max_side", minimum=1)
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
        raise CnnVizError(f"images must be (N, H, W, 3) with N, H, W ≥ 1; got shape {array.shape}.")
    n, height, width, _ = array.shape
    chosen = tuple(range(n)) if labels is None else tuple(int(c) for c in labels)
    if len(chosen) != n:
        raise CnnVizError(f"{len(chosen)} labels for {n} images; give one label per image.")
    pad = _as_int(pad, "pad", minimum=0)
    pad_value = _as_int(pad_value, "pad_value", minimum=0)
    columns = _as_int(math.ceil(math.sqrt(n)) if columns is None else columns, "columns", minimum=1)
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
        _as_int(tile_min_side, "tile_min_side", minimum=1),
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


def page_count(n_channels: int, per_page: int) -> int:
    """Number of pages needed to show ``n_channels`` at ``per_page`` channels per page.

    An empty layer still has one (empty) page, so a pager always has a valid page 0.

    Examples
    --------
    >>> page_count(130, 64), page_count(64, 64), page_count(0, 64)
    (3, 1, 1)
    """
    n_channels = _as_int(n_channels, "n_channels", minimum=0)
    per_page = _as_int(per_page, "per_page", minimum=1)
    return max(1, -(-n_channels // per_page))


def page_channels(n_channels: int, page: int, per_page: int) -> range:
    """Channel indexes shown on ``page`` (counting from 0).

    Raises
    ------
    CnnVizError
        When ``page`` is outside ``0 .. page_count(n_channels, per_page) - 1``.

    Examples
    --------
    >>> page_channels(130, 2, 64)
    range(128, 130)
    """
    pages = page_count(n_channels, per_page)
    page = _as_int(page, "page")
    if not 0 <= page < pages:
        noun = "page" if pages == 1 else "pages"
        raise CnnVizError(
            f"page {page} is out of range: this layer has {pages} {noun} of {per_page} channels "
            f"(0–{pages - 1}). Pick a page from 0 to {pages - 1}."
        )
    start = page * per_page
    return range(start, min(start + per_page, n_channels))


# --------------------------------------------------------------------------------------------
# combining pictures
# --------------------------------------------------------------------------------------------


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


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Return a picture as a contiguous uint8 ``(H, W, 3)`` RGB array for display.

    Parameters
    ----------
    image : np.ndarray
        ``(H, W)``, ``(H, W, 1)`` (grey, repeated into R, G, B) or ``(H, W, 3)``; uint8, or
        any real dtype on a 0–255 scale (rounded and clipped; NaN becomes 0). Floats in
        ``[0, 1]`` are *not* rescaled: multiply by 255 first.

    Returns
    -------
    np.ndarray
        uint8 ``(H, W, 3)``; ``image`` itself when it already is one and contiguous.

    Examples
    --------
    >>> as_rgb_uint8(np.array([[0.4, 300.0]])).tolist()
    [[[0, 0, 0], [255, 255, 255]]]
    """
    array = _real_array(image, "image")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise CnnVizError(
            f"image must be (H, W), (H, W, 1) or (H, W, 3), got shape {array.shape}. "
            "Drop any batch axis (image[0]) or alpha channel (image[..., :3])."
        )
    if array.dtype != np.uint8:
        scaled = np.asarray(array, dtype=np.float32)
        if not np.isfinite(scaled).all():
            scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
        array = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


def overlay(
    image: np.ndarray, heat: np.ndarray, *, cmap: str = "jet", alpha: float = 0.5
) -> np.ndarray:
    """Blend a colormapped heat map over a picture.

    Parameters
    ----------
    image : np.ndarray
        uint8 ``(H, W, 3)`` picture (grey or float 0–255 also accepted, see
        :func:`as_rgb_uint8`).
    heat : np.ndarray
        ``(H, W)`` values in ``[0, 1]`` (e.g. a normalised, resized class activation map).
    cmap : str
        Colormap for the heat map.
    alpha : float
        Heat map weight in ``[0, 1]``: 0 shows only the picture, 1 only the heat map.

    Returns
    -------
    np.ndarray
        uint8 ``(H, W, 3)`` = ``round((1 - alpha) * image + alpha * colormap(heat))``.

    Examples
    --------
    >>> img = np.zeros((2, 2, 3), np.uint8)
    >>> overlay(img, np.ones((2, 2)), cmap="gray", alpha=0.5)[0, 0].tolist()
    [128, 128, 128]
    """
    try:
        weight = float(alpha)
    except (TypeError, ValueError):
        raise CnnVizError(f"alpha must be a number in [0, 1], got {alpha!r}.") from None
    if not 0.0 <= weight <= 1.0:  # also rejects NaN
        raise CnnVizError(
            f"alpha must be in [0, 1], got {alpha!r}. Use 0 for the image only, "
            "1 for the heat map only, e.g. alpha=0.5."
        )
    rgb = as_rgb_uint8(image)
    heat_array = _real_array(heat, "heat")
    if heat_array.ndim == 3 and heat_array.shape[2] == 1:
        heat_array = heat_array[:, :, 0]
    if heat_array.shape != rgb.shape[:2]:
        raise CnnVizError(
            f"heat map shape {heat_array.shape} does not match image shape "
            f"{np.asarray(image).shape}: they need the same (H, W). Resize the heat map to "
            f"{rgb.shape[:2]} before overlaying it."
        )
    colour = apply_colormap(heat_array, cmap)
    # float32 is exact for 0–255 integers, so alpha 0 and 1 reproduce their input exactly.
    blended = rgb.astype(np.float32)
    blended *= np.float32(1.0 - weight)
    blended += np.float32(weight) * colour.astype(np.float32)
    np.rint(blended, out=blended)
    np.clip(blended, 0, 255, out=blended)
    return blended.astype(np.uint8)


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
        raise CnnVizError("side_by_side needs at least one image; pass a non-empty list.")
    pad = _as_int(pad, "pad", minimum=0)
    pad_value = _as_int(pad_value, "pad_value", minimum=0)
    if pad_value > 255:
        raise CnnVizError(f"pad_value must be 0–255, got {pad_value}. Use 255 for white.")
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


# --------------------------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes | memoryview) -> bytes:
    # crc32 chains, so the (possibly large) IDAT payload is never concatenated just for the CRC.
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))


def encode_png(image: np.ndarray, *, compress_level: int = 1) -> bytes:
    """Encode a uint8 picture as PNG bytes (8-bit, no interlacing, filter 0).

    Parameters
    ----------
    image : np.ndarray
        uint8 ``(H, W)`` or ``(H, W, 1)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA.
    compress_level : int
        zlib level 0–9. The default 1 is several times faster than 6 and, on the flat,
        blocky pictures this module makes, barely larger.

    Returns
    -------
    bytes
        A complete PNG file, ready for ``ipywidgets.Image(value=...)``.

    Examples
    --------
    >>> encode_png(np.zeros((2, 2), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise CnnVizError(
            f"encode_png needs a uint8 image, got dtype {array.dtype}. Convert it first, e.g. "
            "with as_rgb_uint8(image) or apply_colormap(normalize_channels(x), cmap)."
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    color_types = {1: 0, 3: 2, 4: 6}  # samples per pixel -> PNG colour type
    samples = 1 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else 0)
    if samples not in color_types:
        raise CnnVizError(
            f"encode_png needs (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, got shape "
            f"{array.shape}. Drop any batch axis (image[0]) or convert with as_rgb_uint8(image)."
        )
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise CnnVizError(f"encode_png got an empty image (shape {array.shape}); need H, W >= 1.")
    level = _as_int(compress_level, "compress_level", minimum=0)
    if level > 9:
        raise CnnVizError(f"compress_level must be 0–9, got {level}. Use 1 for speed, 9 for size.")

    # Each scanline starts with its filter-type byte (0 = None); one 2-D copy adds them all.
    raw = np.empty((height, 1 + width * samples), dtype=np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = array.reshape(height, width * samples)
    header = struct.pack(">IIBBBBB", width, height, 8, color_types[samples], 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(memoryview(raw), level)),
            _png_chunk(b"IEND", b""),
        )
    )
