"""The layer picker every explorer shares: grouped by block, the lesson's layers first.

A long network (the default model has 141 layers with a spatial map) opens with the short list
:func:`~.lesson.lesson_layers` keeps — what a convolution produces after its activation, pools,
block outputs — labelled by block (``"block2a ▸ expand_activation"``); a "show all layers"
switch lists every layer. The layer shown gets one plain sentence beside the list and as its
tooltip (:func:`~.lesson.explain_layer`), in the student's language.

An explorer mixes :class:`LayerPicker` in, calls :meth:`LayerPicker._build_layer_picker` while
building its controls and :meth:`LayerPicker._link_layer` once its ``layer`` trait holds a
valid value. Naming a layer the short list hides (in code, from the summary, from a drill-down)
switches to the full list first, so the dropdown can show it.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import traitlets

from ..i18n import gettext_ as _
from .lesson import explain_layer, layer_options, listed_layers

__all__ = ["LayerPicker"]


class LayerPicker(traitlets.HasTraits):
    """``layer_dropdown``, ``all_layers_box`` and ``layer_note`` for an explorer's ``layer``."""

    _layer_link: Any = None

    def _build_layer_picker(self, width: str = "360px") -> None:
        self._short_list = listed_layers(self._adapter)
        self._listed = self._short_list
        short = len(self._short_list) < len(self._adapter.layer_paths)
        self.layer_dropdown = widgets.Dropdown(
            options=layer_options(self._listed), description=_("Layer"),
            layout=widgets.Layout(width=width),
        )  # fmt: skip
        self.all_layers_box = widgets.Checkbox(
            value=not short, description=_("show all layers"), indent=False,
            layout=widgets.Layout(width="160px", display="" if short else "none"),
        )  # fmt: skip
        self.all_layers_box.observe(self._on_all_layers, names="value")
        self.layer_note = widgets.HTML(layout=widgets.Layout(margin="0 0 0 8px"))

    def _link_layer(self) -> None:
        """Link ``layer`` and the dropdown (its own link: relisting unlinks it for a moment)."""
        if self.layer not in self._listed:
            self.all_layers_box.value = True
        self._layer_link = traitlets.link((self, "layer"), (self.layer_dropdown, "value"))

    @traitlets.observe("layer")
    def _layer_listed(self, change: dict) -> None:
        if not hasattr(self, "all_layers_box"):
            return  # set while the controls are built
        if self._layer_link is not None and change["new"] not in self._listed:
            self.all_layers_box.value = True  # relists before the link moves the dropdown
        text = explain_layer(self._adapter, change["new"])
        self.layer_note.value = f'<span style="color:#555">{html.escape(text)}</span>'
        self.layer_dropdown.tooltip = text or None

    def _on_all_layers(self, change: dict) -> None:
        self._relist(list(self._adapter.layer_paths) if change["new"] else self._short_list)

    def _relist(self, paths: list[str]) -> None:
        if self.layer and self.layer not in paths:
            paths = list(self._adapter.layer_paths)
        self._listed = paths
        link = self._layer_link
        if link is not None:
            link.unlink()  # new options select their first entry; the layer must not follow
        self.layer_dropdown.options = layer_options(paths)
        if self.layer:
            self.layer_dropdown.value = self.layer
        if link is not None:
            self._layer_link = traitlets.link((self, "layer"), (self.layer_dropdown, "value"))
