"""Explorer: every view of one model and one image, in tabs that share one cache and one adapter."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..cache import ActivationCache
from ..engine.adapter import Preprocess
from ..export import Section
from ..i18n import N_
from ..i18n import gettext_ as _
from .activations import ActivationExplorer
from .base import ExplorerBase
from .summary import LayerSummary, real_shapes

TABS = (N_("Activations"), N_("Filters"), N_("Class activation"), N_("Summary"))


class Explorer(ExplorerBase):
    """One widget for a model and an image: activations, filters, class activation, summary.

    The tabs share one model adapter (traced functions) and one cache (feature maps, class
    maps), so switching tabs recomputes nothing. The Filters and Class activation tabs are built
    the first time they are opened: filter ascent is seconds of work nobody asked for yet.

    Parameters
    ----------
    model : keras.Model
        Any Keras 3 CNN with one image input; a classifier head for the class-activation tab.
    image : array, path or PIL image
        The photo to look at.
    labels : sequence of str, optional
        Class names (ImageNet's for a 1000-class head by default).
    preprocess : callable, optional
        Preprocessing for models that do not include it.
    cache : ActivationCache, optional
        Default: the cache shared by all explorers.

    Attributes
    ----------
    activations : ActivationExplorer
    filters : FilterExplorer or None (until its tab is opened)
    cam : CamExplorer or None (until its tab is opened)

    Examples
    --------
    >>> import cnnviz_widgets as cv
    >>> cv.Explorer(cv.load_default_model(), cv.sample_image("chelsea"))  # doctest: +SKIP
    """

    _css_root = "cnnviz-explorer"

    def __init__(
        self,
        model: Any,
        image: Any,
        *,
        labels: Any = None,
        preprocess: Preprocess | None = None,
        cache: ActivationCache | None = None,
    ) -> None:
        # Set before anything can raise: a refused image still reaches close() (Widget.__del__).
        self.activations = self.filters = self.cam = None
        self._adopt(model, preprocess=preprocess, cache=cache)
        self._image = image
        self._labels = labels
        self.activations = ActivationExplorer(self._adapter, image, cache=self._cache)
        self.summary = LayerSummary(self._adapter, self._open_layer)
        self._filters_box = widgets.VBox()
        self._cam_box = widgets.VBox()
        self.tabs = widgets.Tab(
            children=[self.activations, self._filters_box, self._cam_box, self.summary]
        )
        for index, title in enumerate(TABS):
            self.tabs.set_title(index, _(title))
        self.tabs.add_class("cnnviz-explorer-tabs")
        self.tabs.observe(self._on_tab, names="selected_index")
        super().__init__([self.tabs])

    def _on_tab(self, change: dict) -> None:
        tab = change["new"]
        if tab == 3 and not getattr(self, "_shapes_shown", False):
            self._shapes_shown = True  # the real shapes for this image, read once
            # A pass through every layer: in the background, so the tabs stay responsive.
            adapter, image = self._adapter, self.activations._image
            self._submit(lambda job: real_shapes(adapter, image), self.summary.show_shapes)
        if tab == 1 and self.filters is None:
            from .filters import FilterExplorer

            # It opens where the Activations tab is (a drilled channel handed over included).
            self.filters = FilterExplorer(self._adapter, layer=self.activations.layer,
                                          channel=self.activations.channel)  # fmt: skip
            self._filters_box.children = [self.filters]
        elif tab == 2 and self.cam is None:
            from .cam import CamExplorer

            self.cam = CamExplorer(
                self._adapter, self._image, labels=self._labels, cache=self._cache
            )
            self._cam_box.children = [self.cam]
            self.cam.observe(self._open_drilled, names="drill_channel")

    _worker_name = "cnnviz-explorer"

    def _request(self) -> str:
        # The one background job (the Summary's shapes) depends on nothing the tabs change.
        return "summary-shapes"

    def _open_drilled(self, change: dict) -> None:
        """A channel picked in the class-activation drill-down opens in the Activations tab,
        and in the Filters tab (now if it is open, else when it opens)."""
        if change["new"] is None:
            return
        view = self.activations
        with view._held():
            view.layer = self.cam.layer
            view.channel = change["new"]
            view.mode = "channel"
        view._refresh()
        if self.filters is not None:
            self.filters.layer = self.cam.layer
            self.filters.channel = change["new"]
        self.tabs.selected_index = 0

    def to_code(self, name: str = "view") -> str:
        """Python that recreates this explorer's tabs and views from ``model`` and ``image``.

        Opened tabs are opened again (the Class activation tab before the Activations tab: a
        drill-down pick there moves the Activations tab), then the selected tab is selected.
        """
        options = ", preprocess=preprocess" if self._adapter.preprocess is not None else ""
        lines = ["import cnnviz_widgets as cv", "", f"{name} = cv.Explorer(model, image{options})"]
        for attribute, tab in (("filters", 1), ("cam", 2), ("activations", 0)):
            view = getattr(self, attribute)
            if view is None:
                continue
            if tab:
                lines.append(f"{name}.tabs.selected_index = {tab}  # opens the tab")
            lines += [f"{name}.{attribute}.{trait} = {getattr(view, trait)!r}"
                      for trait in view._code_traits]  # fmt: skip
        lines.append(f"{name}.tabs.selected_index = {self.tabs.selected_index or 0}")
        return "\n".join(lines) + "\n"

    def _open_layer(self, path: str) -> None:
        """Summary pick: show that layer's activations."""
        self.tabs.selected_index = 0
        try:
            self.activations.layer = path
        except ValueError:
            pass  # not a feature map: the activations tab already shows why

    @property
    def current(self) -> Any:
        """The view in the selected tab (None for a tab not built yet)."""
        return [self.activations, self.filters, self.cam, None][self.tabs.selected_index or 0]

    @property
    def png(self) -> bytes:
        """PNG of the selected tab's picture (the activations view for the summary tab)."""
        return (self.current or self.activations).png

    @property
    def rgb(self) -> Any:
        """The selected tab's picture as uint8 (H, W, 3)."""
        return (self.current or self.activations).rgb

    def static_rgb(self) -> Any:
        """The selected tab's static picture (the activations' for the summary tab)."""
        return (self.current or self.activations).static_rgb()

    def __repr__(self) -> str:
        model = getattr(self._adapter, "model", None)
        tabs = getattr(self, "tabs", None)
        tab = TABS[(tabs.selected_index or 0) if tabs is not None else 0]
        view = getattr(self, "activations", None)
        layer = f", layer={view.layer!r}" if view is not None else ""
        name = f"model={model.name!r}, " if model is not None else ""
        return f"Explorer({name}tab={tab!r}{layer})"

    def _export_sections(self) -> list[Section]:
        sections = []
        for title, view in zip(TABS, (self.activations, self.filters, self.cam), strict=False):
            if view is not None:
                for section in view._export_sections():
                    section.heading = f"{_(title)}: {section.heading}"
                    sections.append(section)
        rows = [(info.path, info.class_name, info.output_shape, info.params)
                for info in self._adapter.layers]  # fmt: skip
        header = (_("layer"), _("class"), _("output"), _("params"))
        sections.append(Section(_("Summary"), table=rows, header=header))
        return sections

    def close(self) -> None:
        """Close every tab, stopping background work."""
        for view in (self.filters, self.cam, self.activations):
            if view is not None:
                view.close()
        super().close()
