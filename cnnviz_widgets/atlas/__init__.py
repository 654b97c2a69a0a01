"""A dataset atlas: for every channel of a CNN, the real images that excite it most.

Run a model over a folder, a list of files, an array or any iterable of images (``tf.data``
included) and keep, for every channel of the chosen layers, the top-k images by the channel's
maximum activation, where that maximum is, a crop of its receptive field, per-channel
statistics and optionally the filter-ascent image — as Dask tasks (local threads, or any
``distributed`` cluster) writing a resumable Zarr store.

Examples
--------
>>> import cnnviz_widgets as cv
>>> atlas = cv.atlas.build(cv.load_default_model(), "photos/", k=9,
...                        store="atlas.zarr")                          # doctest: +SKIP
>>> best = atlas.top("backbone/block3a_expand_conv", 7)[0]              # doctest: +SKIP
>>> best.index, best.path, best.score, (best.y, best.x)                 # doctest: +SKIP
>>> atlas = cv.atlas.open("atlas.zarr")     # later, elsewhere: no model needed
>>> cv.AtlasExplorer("atlas.zarr")          # doctest: +SKIP

Importing this package is cheap; Dask, Zarr and TensorFlow load on first use.
"""

from __future__ import annotations

import sys
from typing import Any

from .builder import build
from .reader import Atlas, Record, open_atlas

__all__ = ["Atlas", "Record", "build", "open"]


def open(store: Any) -> Atlas:
    """Open a finished atlas store: the same :class:`Atlas` that :func:`build` returns."""
    return open_atlas(store)


# ``cnnviz_widgets.atlas`` resolves lazily through the package's ``_LAZY`` table, which reads
# the public name from the module it imports: here that name is this module itself.
atlas = sys.modules[__name__]
