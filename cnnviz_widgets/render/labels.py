"""Numbers written on pictures: channel numbers on grid tiles, values on pixels.

"Channel 4" should not mean counting tiles. :func:`number_tiles` writes each tile's channel
number in its top-left corner, white on a dark box so it reads on any colormap. The digits are
the 3×5 bitmap font of :mod:`.kernels` (pure numpy, no font files), scaled with the tile.
"""

from __future__ import annotations

import numpy as np

from .kernels import _text_mask
from .layout import GridLayout

__all__ = ["number_tiles", "stamp_text"]


def stamp_text(
    rgb: np.ndarray,
    text: str,
    x: int,
    y: int,
    *,
    scale: int = 1,
    color: tuple[int, int, int] = (255, 255, 255),
    box: tuple[int, int, int] | None = (0, 0, 0),
    margin: int = 1,
) -> np.ndarray:
    """Write ``text`` (digits, ``-``, ``.``) with its top-left corner at ``(x, y)``, in place.

    ``box`` fills a rectangle ``margin`` pixels larger than the text first (None: no box).
    Whatever falls outside the picture is clipped. Returns ``rgb``.
    """
    mask = _text_mask(text, scale)
    h, w = mask.shape
    y0, x0 = max(y - margin, 0), max(x - margin, 0)
    y1, x1 = min(y + h + margin, rgb.shape[0]), min(x + w + margin, rgb.shape[1])
    if y1 <= y0 or x1 <= x0:
        return rgb
    if box is not None:
        rgb[y0:y1, x0:x1] = box
    visible = mask[: max(rgb.shape[0] - y, 0), : max(rgb.shape[1] - x, 0)]
    region = rgb[y : y + visible.shape[0], x : x + visible.shape[1]]
    region[visible] = color
    return rgb


def tile_number_scale(layout: GridLayout) -> int:
    """Digit scale for a layout: 1 for tiles under 24 px, 2 up to 127 px, then 3."""
    side = min(layout.tile_height, layout.tile_width)
    return 1 if side < 24 else 2 if side < 128 else 3


def number_tiles(rgb: np.ndarray, layout: GridLayout) -> np.ndarray:
    """A copy of a grid picture with each tile's channel number in its top-left corner.

    Tiles too small to hold the number (under 8 px) are left as they are.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnviz_widgets import render
    >>> grid, layout = render.channel_grid(np.ones((8, 8, 3), np.float32), tile_min_side=48)
    >>> numbered = number_tiles(grid, layout)
    >>> bool((numbered != grid).any()), numbered.shape == grid.shape
    (True, True)
    """
    out = np.array(rgb, dtype=np.uint8, copy=True)
    if min(layout.tile_height, layout.tile_width) < 8:
        return out
    scale = tile_number_scale(layout)
    for index, channel in enumerate(layout.channels):
        row, column = divmod(index, layout.columns)
        top = layout.pad + row * (layout.tile_height + layout.pad)
        left = layout.pad + column * (layout.tile_width + layout.pad)
        stamp_text(out, str(channel), left + scale, top + scale, scale=scale, margin=scale)
    return out
