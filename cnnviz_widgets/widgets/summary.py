"""A model summary table (layer path, class, output shape, parameters) to pick a layer from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..engine.adapter import ModelAdapter


def summary_rows(adapter: ModelAdapter) -> list[tuple[str, str]]:
    """One ``(label, layer path)`` per layer call; nested layers are indented under their model.

    Examples
    --------
    >>> label, path = summary_rows(adapter)[0]  # doctest: +SKIP
    >>> label.split(), path                     # doctest: +SKIP
    (['conv1', 'Conv2D', '16×16×4', '112'], 'conv1')
    """
    rows = []
    for info in adapter.layers:
        shape = "×".join("?" if d is None else str(d) for d in info.output_shape)
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
        model = adapter.model
        total = sum(info.params for info in adapter.layers if info.depth == 0)
        h, w, c = adapter.input_shape
        size = "any size" if h is None or w is None else f"{h}×{w}"
        self.header = widgets.HTML(
            f"<b>{model.name}</b> · input {size}, {c} channel{'s' if c != 1 else ''} · "
            f"{total:,} parameters · {len(adapter.layer_paths)} layers with feature maps"
            " · pick a layer to open it"
        )
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
        if change["new"] is not None:
            self._on_pick(change["new"])
