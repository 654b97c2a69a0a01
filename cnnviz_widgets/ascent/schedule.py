"""A first page a lesson can wait for: a quick coarse preview, then the full-quality images.

Sixteen images of 128 px and 256 steps take most of a minute on two cores; a class does not
wait that long. :func:`preview_then_full` runs two stages of the same ascent:

1. **preview** — half the size (a quarter of the pixels) and :data:`PREVIEW_STEPS` steps,
   shown upscaled to the full size a few seconds after the request;
2. **full** — the requested size and steps, streaming its frames over the preview.

Whether a preview is *recognisable* is measured, not judged by eye, with :func:`selectivity`:
the share of images that excite their own channel more than any other image of the page does
(the criterion of the quality test in ``tests/test_filter_ascent.py``). ``bench/
suite_teaching.py`` reports the time to each stage and the selectivity at each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PREVIEW_STEPS", "Stage", "gain", "preview_then_full", "selectivity", "stages", "upscale",
]  # fmt: skip

#: Steps of the preview stage.
PREVIEW_STEPS = 48
#: The preview's side is the full side divided by this (never below :data:`PREVIEW_MIN_SIDE`).
PREVIEW_DIVISOR = 2
PREVIEW_MIN_SIDE = 32


@dataclass(frozen=True)
class Stage:
    """One stage of a schedule: its name (``"preview"`` or ``"full"``), side and steps."""

    name: str
    size: int
    steps: int


def stages(size: int, steps: int) -> list[Stage]:
    """The stages for a request: a preview when it is cheaper than the run itself, then it.

    Examples
    --------
    >>> [(s.name, s.size, s.steps) for s in stages(128, 256)]
    [('preview', 64, 48), ('full', 128, 256)]
    >>> [s.name for s in stages(128, 32)]      # a short run needs no preview
    ['full']
    """
    preview = Stage("preview", max(PREVIEW_MIN_SIDE, size // PREVIEW_DIVISOR), PREVIEW_STEPS)
    if preview.steps * 2 > steps or preview.size >= size:
        return [Stage("full", size, steps)]
    return [preview, Stage("full", size, steps)]


def upscale(images: np.ndarray, size: int) -> np.ndarray:
    """Images (N, s, s, 3) in [0, 1] resized to (N, size, size, 3), bilinear, float32."""
    from PIL import Image

    if images.shape[1] == size:
        return images.astype(np.float32)
    out = []
    for picture in images:
        pixels = Image.fromarray(np.rint(np.clip(picture, 0, 1) * 255).astype(np.uint8))
        out.append(np.asarray(pixels.resize((size, size), Image.BILINEAR), np.float32) / 255.0)
    return np.stack(out)


def preview_then_full(
    model: Any,
    layer: str,
    channels: Sequence[int],
    *,
    size: int = 128,
    steps: int | None = None,
    on_stage: Callable[[str, np.ndarray], None] | None = None,
    on_step: Callable[[str, int, int, np.ndarray | None], None] | None = None,
    cancel: Any = None,
    run: Callable[..., np.ndarray] | None = None,
    **options: Any,
) -> np.ndarray:
    """:func:`~cnnviz_widgets.ascent.filter_ascent` in two stages; returns the full images.

    Parameters
    ----------
    model, layer, channels
        As for ``filter_ascent``.
    size, steps
        The full stage's side and steps (``steps=None``: the default, capped by
        ``CNNVIZ_MAX_STEPS``; a run too short to gain from a preview has none).
    on_stage : callable, optional
        ``on_stage(name, images)`` when a stage ends; the preview's images are already
        upscaled to ``size``.
    on_step : callable, optional
        ``on_step(stage_name, done, total, frames)``, as ``filter_ascent``'s ``on_step`` with
        the stage's name first (preview frames upscaled to ``size``).
    cancel
        As for ``filter_ascent``: checked between steps of both stages.
    run : callable, optional
        The ascent each stage runs (default :func:`~cnnviz_widgets.ascent.filter_ascent`).
    **options
        Any other ``filter_ascent`` option (``seed``, ``tv``, ``param``, ``every``, ...).
    """
    from .optimize import filter_ascent
    from .settings import default_steps

    run = filter_ascent if run is None else run

    steps = default_steps() if steps is None else steps
    images = None
    for stage in stages(size, steps):

        def report(done: int, total: int, frames: Any, stage: Stage = stage) -> None:
            if on_step is not None:
                shown = None if frames is None else upscale(frames, size)
                on_step(stage.name, done, total, shown)

        images = run(
            model, layer, list(channels), size=stage.size, steps=stage.steps,
            on_step=report if on_step is not None else None, cancel=cancel, **options,
        )  # fmt: skip
        images = upscale(images, size)
        if on_stage is not None:
            on_stage(stage.name, images)
    return images


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
