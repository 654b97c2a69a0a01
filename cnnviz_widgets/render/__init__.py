"""Pure numpy → pixels and PNG bytes: no TensorFlow, no Keras, no widgets.

- :mod:`.color`: normalisation, colormap lookup tables, display RGB, heat-map overlays.
- :mod:`.layout`: upscaling, channel and image grids (:class:`GridLayout`), side by side.
- :mod:`.paging`: pages of a wide layer's channels.
- :mod:`.labels`: channel numbers on grid tiles.
- :mod:`.png`: PNG encoding.
- :mod:`.kernels`: convolution kernels as pictures, and the hand-made edge filters.

Examples
--------
>>> import numpy as np
>>> from cnnviz_widgets import render
>>> maps = np.random.default_rng(0).normal(size=(14, 14, 8)).astype(np.float32)
>>> rgb = render.apply_colormap(render.normalize_channels(maps[:, :, 0]), "viridis")
>>> render.encode_png(render.upscale_nearest(rgb, 224))[:8] == render.PNG_SIGNATURE
True
>>> grid, layout = render.channel_grid(maps, columns=4)
>>> layout.rows, layout.columns
(2, 4)
"""

from __future__ import annotations

from .color import (
    apply_colormap,
    as_rgb_uint8,
    colormap_lut,
    colormap_names,
    normalize_channels,
    overlay,
)
from .kernels import DEFAULT_FILTERS, kernel_grid, pad_kernel
from .labels import number_tiles, stamp_text
from .layout import (
    GridLayout,
    channel_grid,
    channel_sum,
    image_grid,
    side_by_side,
    upscale_nearest,
)
from .paging import page_channels, page_count
from .png import PNG_SIGNATURE, encode_png

__all__ = [
    "DEFAULT_FILTERS",
    "PNG_SIGNATURE",
    "GridLayout",
    "apply_colormap",
    "as_rgb_uint8",
    "channel_grid",
    "channel_sum",
    "colormap_lut",
    "colormap_names",
    "encode_png",
    "image_grid",
    "kernel_grid",
    "normalize_channels",
    "number_tiles",
    "overlay",
    "pad_kernel",
    "page_channels",
    "page_count",
    "side_by_side",
    "stamp_text",
    "upscale_nearest",
]
