"""A model summary table (layer path, class, output shape, parameters) to pick a layer from.

Models that take any image size have ``?`` in their declared shapes; once an image is known,
:func:`real_shapes` reads each layer's true shape for it and the table shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..engine.adapter import ModelAdapter
from ..engine.geometry import output_shapes
from ..i18n import gettext_ as _

# Layers tapped per forward pass when reading shapes: bounds the memory of one pass.
_SHAPE_CHUNK = 24


def real_shapes(adapter: ModelAdapter, image: Any) -> dict[str, tuple[int, ...]]:
    """``{layer path: (H, W, C)}`` for every spatial layer, for this (prepared) image.

    Read from a trace at the image's size (no map computed: the real pass held ~100 MiB of maps
    of the default model at once, a tenth of Binder's memory). Only when the trace cannot tell
    are the maps computed, in chunks, and dropped at once.
    """
    traced = output_shapes(adapter, image)
    if traced is not None:
        return traced
    paths = list(adapter.layer_paths)
    shapes: dict[str, tuple[int, ...]] = {}
    for start in range(0, len(paths), _SHAPE_CHUNK):
        chunk = paths[start : start + _SHAPE_CHUNK]
        for path, maps in zip(chunk, adapter.feature_maps(image, chunk), strict=True):
            shapes[path] = tuple(int(d) for d in maps.shape[-3:])
    return shapes


def summary_rows(
    adapter: ModelAdapter, shapes: dict[str, tuple[int, ...]] | None = None
) -> list[tuple[str, str]]:
    """One ``(label, layer path)`` per layer call; nested layers are indented under their model.

    Examples
    --------
    >>> label, path = summary_rows(adapter)[0]  # doctest: +SKIP
    >>> label.split(), path                     # doctest: +SKIP
    (['conv1', 'Conv2D', '16×16×4', '112'], 'conv1')

    ``shapes`` (from :func:`real_shapes`) replaces the declared shapes, ``?`` included.
    """
    rows = []
    shapes = shapes or {}
    for info in adapter.layers:
        dims = shapes.get(info.path, info.output_shape)
        shape = "×".join("?" if d is None else str(d) for d in dims)
        name = "  " * info.depth + info.path.rsplit("/", 1)[-1]
        rows.append((f"{name:<34} {info.class_name:<22} {shape:<16} {info.params:>10,}", info.path))
    return rows


class LayerSummary(widgets.VBox):
    """Every layer of a model in a list; picking a row calls ``on_pick(path)``.

    Parameters
    ----------
    adapter : ModelAdapter
        The model, as read by the adapter.
    on_pick : callable
        Called with the picked layer's path.
    """

    def __init__(self, adapter: ModelAdapter, on_pick: Callable[[str], Any]) -> None:
        self._on_pick = on_pick
        self._adapter = adapter
        self._quiet = False
        model = adapter.model
        total = sum(info.params for info in adapter.layers if info.depth == 0)
        h, w, c = adapter.input_shape
        size = _("any size") if h is None or w is None else f"{h}×{w}"
        channels = _("{c} channel") if c == 1 else _("{c} channels")
        self.header = widgets.HTML(
            _(
                "<b>{name}</b> · input {size}, {channels} · {total:,} parameters · {layers} "
                "layers with feature maps · pick a layer to open it"
            ).format(
                name=model.name, size=size, channels=channels.format(c=c), total=total,
                layers=len(adapter.layer_paths),
            )
        )  # fmt: skip
        self.table = widgets.Select(
            options=summary_rows(adapter), value=None, rows=14,
            layout=widgets.Layout(width="100%"),
        )  # fmt: skip
        self.table.observe(self._picked, names="value")
        # Scoped styling: the columns line up only in a fixed-width font.
        style = widgets.HTML(
            "<style>.cnnviz-summary select { font-family: monospace; font-size: 12px; }</style>"
        )
        super().__init__([style, self.header, self.table])
        self.add_class("cnnviz-summary")

    def _picked(self, change: dict) -> None:
        if change["new"] is not None and not self._quiet:
            self._on_pick(change["new"])

    def show_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Show these shapes (from :func:`real_shapes`) instead of the declared ones."""
        self._quiet = True  # new options select a row; that is not the user picking one
        try:
            self.table.options = summary_rows(self._adapter, shapes)
            self.table.value = None
        finally:
            self._quiet = False
