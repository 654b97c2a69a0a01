"""Whether a page of filter-ascent images is a picture yet: selectivity and gain.

A lesson cannot wait a minute for the Filters tab's first page, so the tab streams its frames
as the ascent runs. When is a streamed page worth looking at? Judging by eye does not scale, so
two measures decide, the criteria of the quality test in ``tests/test_filter_ascent.py``:

* :func:`selectivity` — the share of images that excite their own channel more than any other
  image of the page does (1.0: every image is told apart by the channel it was made for);
* :func:`gain` — how much more each image excites its channel than the grey starting image
  did; a page is a picture once the median gain is ≥ 5.

``bench/suite_teaching.py`` reports the time to the first streamed page that meets both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["gain", "selectivity"]


def selectivity(model: Any, layer: str, channels: Sequence[int], images: np.ndarray) -> float:
    """Share of images that excite their own channel more than every other image does.

    Image ``i`` was made for ``channels[i]``. Each image is fed as the 8-bit picture shown
    on screen; a channel's response is its mean over the map. 1.0: every image is told apart
    from the rest of its page by the channel it was made for.
    """
    from ..engine.adapter import adapter_for

    adapter = adapter_for(model)
    pixels = np.rint(np.clip(images, 0, 1) * 255).astype(np.uint8)
    responses = np.stack(
        [adapter.activations(p, layer).mean(axis=(0, 1))[list(channels)] for p in pixels]
    )  # (image, channel)
    own = np.diag(responses)
    others = np.where(np.eye(len(channels), dtype=bool), -np.inf, responses)
    return float(np.mean(own > others.max(axis=0)))


def gain(model: Any, layer: str, channels: Sequence[int], images: np.ndarray) -> np.ndarray:
    """For each image, its own channel's mean response over the response to its starting image.

    The quality test asks for ≥ 5: an image that only wins its channel by a hair over a grey
    start is selective but not yet a picture of anything.
    """
    from ..engine.adapter import adapter_for
    from .objectives import channel
    from .optimize import starting_images

    adapter = adapter_for(model)
    start = starting_images([channel(layer, c) for c in channels], size=images.shape[1])

    def own(batch: np.ndarray) -> np.ndarray:
        pixels = np.rint(np.clip(batch, 0, 1) * 255).astype(np.uint8)
        pairs = zip(pixels, channels, strict=True)
        return np.array([adapter.activations(p, layer).mean(axis=(0, 1))[c] for p, c in pairs])

    return own(images) / np.maximum(own(start), 1e-3)
