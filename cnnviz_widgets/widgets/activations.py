"""ActivationExplorer: look at every feature map of a CNN for one image, reactively.

The widget is thin: stock ipywidgets controls linked to its traits (``layer``, ``channel``,
``cmap``, ``mode``, ``page``). One redraw asks the shared :class:`ActivationCache` for the layer's
feature map (computed once per image and layer through the model adapter), hands it to the
pure-numpy renderer, and shows the PNG and its caption with one ``Picture.show`` call (two
widgets, so two messages, sent back to back).
"""

from __future__ import annotations

import html
import warnings
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import render
from ..cache import ActivationCache
from ..engine.adapter import Preprocess
from ..errors import CnnVizError, ImageConversionWarning, LayerError, check_choice
from ..export import Section
from ..i18n import gettext_ as _
from .base import ExplorerBase, click_pixel
from .detail import DetailFigure, DetailPicture, detail_view
from .frontend import has_feature, stand_in_note
from .layer_picker import LayerPicker
from .lesson import start_layer, strongest_channel
from .picture import Picture
from .state import ColormapState, PagedChannelState
from .summary import LayerSummary, real_shapes
from .view import LazyPicture, wants_view

#: The colormaps offered in the picker; any other matplotlib name can still be set from Python.
COLORMAP_CHOICES = (
    "viridis", "magma", "inferno", "plasma", "cividis", "turbo",
    "gray", "gray_r", "RdBu_r", "coolwarm", "jet",
)  # fmt: skip

MODES = ("channel", "grid", "sum")

# Smallest side, in pixels, of the single-channel and channel-sum views: a 7×7 map becomes
# blocks big enough to see, and a 112×112 map is shown at 2× with sharp pixels.
VIEW_MIN_SIDE = 320
GRID_TILE_MIN_SIDE = 48
# Early layers have maps as large as half the image; a page of 64 of them is shown at most
# this many pixels a tile (block-averaged), which keeps a page under ~1000 px wide.
GRID_TILE_MAX_SIDE = 112
GRID_COLUMNS = 8
GRID_PAGE_SIZE = 64


def _feature_view() -> Any:
    """The browser-side view (view.py), drawing with this explorer's geometry."""
    from .view import FeatureMapView

    return FeatureMapView(
        view_min_side=VIEW_MIN_SIDE, tile_min_side=GRID_TILE_MIN_SIDE,
        tile_max_side=GRID_TILE_MAX_SIDE, columns=GRID_COLUMNS, page_size=GRID_PAGE_SIZE,
        number_tiles=True,
        # Like the PNG view: may shrink to the room beside the photo (the canvas scales down).
        layout=widgets.Layout(min_width="0", flex="0 1 auto"),
    )  # fmt: skip


class ActivationExplorer(LayerPicker, PagedChannelState, ColormapState, ExplorerBase):
    """Browse the feature maps of ``model`` for ``image``: one channel, a grid, or their sum.

    Parameters
    ----------
    model : keras.Model
        Any Keras 3 CNN with one image input (nested sub-models are flattened into paths).
    image : array, path or PIL image
        The input picture (H×W×3 or H×W, uint8 or float).
    layer : str, optional
        Layer path to show first; default: the middle spatial layer of the network.
    channel : int
        Channel shown in ``"channel"`` mode.
    cmap : str
        Any matplotlib colormap name (``"_r"`` reverses it).
    mode : {"channel", "grid", "sum"}
        One channel, a paged grid of all channels, or the sum of all channels.
    cache : ActivationCache, optional
        Where feature maps are kept; default: one cache shared by all explorers.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see ``ModelAdapter``).
    use_view : bool, optional
        Draw the maps in the browser (:class:`~.view.FeatureMapView`: the layer is sent once,
        channels, colormaps and grid pages change there at once) or send a PNG per change.
        Default: the browser view in a Jupyter kernel whose front end has anywidget (see
        :func:`~.view.wants_view` and ``set_frontend``), the PNG path elsewhere.

    Attributes
    ----------
    rgb : ndarray
        The current view, uint8 (H, W, 3).
    png : bytes
        The current view as PNG.

    Examples
    --------
    >>> import cnnviz_widgets as cv
    >>> ex = cv.ActivationExplorer(cv.load_default_model(), cv.sample_image("chelsea"))
    >>> ex.layer = "backbone/block2a_expand_conv"; ex.channel = 5; ex.mode = "grid"
    >>> ex  # doctest: +SKIP
    """

    # Any, checked by _valid_mode: a typo is shown in the widget as the package's own error
    # (an Enum would raise traitlets' English TraitError before any validator runs).
    mode = traitlets.Any("channel", help="'channel', 'grid' or 'sum'.")
    _page_size = GRID_PAGE_SIZE
    _css_root = "cnnviz-activation-explorer"
    _css_prefix = "cnnviz"

    def __init__(
        self,
        model: Any,
        image: Any,
        *,
        layer: str | None = None,
        channel: int | None = None,
        cmap: str = "viridis",
        mode: str = "channel",
        cache: ActivationCache | None = None,
        preprocess: Preprocess | None = None,
        use_view: bool | None = None,
    ) -> None:
        self._adopt(model, preprocess=preprocess, cache=cache)
        # Drawn in the browser (anywidget) when its front end is there; else the PNG path.
        self._feature_view = _feature_view() if wants_view(use_view) else None
        self._notes: list[str] = []
        self._image = self._prepare(image)
        self._grid_layout: render.GridLayout | None = None
        self._detail: DetailFigure | DetailPicture | None = None
        self._clicks = False  # True once ipyevents clicks are wired (see _link_controls)
        self._build_controls()
        super().__init__(self._layout_children())

        # The first view teaches: the first activation after the first conv, on the channel
        # with the most contrast (not channel 0); a layer you name opens on channel 0.
        self.layer = layer if layer is not None else start_layer(self._adapter)
        self.cmap = cmap
        self.mode = mode
        if channel is None:
            channel = strongest_channel(self._activations()) if layer is None else 0
        self.channel = channel
        # Linked only now: a link copies the trait's value into the control at once, so the
        # traits must already hold valid values.
        self._link_controls()
        self._suspended = False
        self._refresh()

    # ------------------------------------------------------------------ set-up
    def _prepare(self, image: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ImageConversionWarning)
            prepared = self._adapter.prepare(image)
        self._notes = [
            str(w.message) for w in caught if issubclass(w.category, ImageConversionWarning)
        ]
        for note in self._notes:  # re-emit for Python users; the widget shows them too
            warnings.warn(note, ImageConversionWarning, stacklevel=3)
        return prepared

    def _build_controls(self) -> None:
        self._build_layer_picker()  # grouped by block, the lesson's layers first
        self.channel_slider = widgets.IntSlider(
            min=0, max=0, description=_("Channel"), continuous_update=True,
            layout=widgets.Layout(width="360px"),
        )  # fmt: skip
        self.cmap_dropdown = widgets.Dropdown(
            options=list(COLORMAP_CHOICES), description=_("Colormap"),
            layout=widgets.Layout(width="220px"),
        )  # fmt: skip
        self.mode_buttons = widgets.ToggleButtons(
            options=[(_("Channel"), "channel"), (_("Grid"), "grid"), (_("Sum"), "sum")],
            style={"button_width": "84px"},
        )
        # Pages are numbered from 1 for people (the caption says "page 1 of 8"); the ``page``
        # trait counts from 0 like every Python index.
        self.page_slider = widgets.IntSlider(
            min=1, max=1, description=_("Page"),
            layout=widgets.Layout(width="260px", display="none"),
        )
        self.input_view = widgets.Image(format="png", layout=widgets.Layout(max_width="320px"))
        # The view may shrink to the room left beside the photo (a wide grid would otherwise
        # run past the notebook's edge); it never grows beyond its own pixels.
        self.caption = widgets.HTML()
        if self._feature_view is not None:  # the browser draws; a PNG only when asked for
            self.view = self._feature_view
            self.picture = LazyPicture(self.caption)
        else:
            self.view = widgets.Image(
                format="png",
                layout=widgets.Layout(min_width="0", flex="0 1 auto", object_fit="contain"),
            )
            self.picture = Picture(self.view, self.caption)
        self.message = widgets.HTML(layout=widgets.Layout(display="none"))
        self.summary = LayerSummary(self._adapter, self._on_summary_pick)
        for control, name in [
            (self.layer_dropdown, "layer"), (self.channel_slider, "channel"),
            (self.cmap_dropdown, "cmap"), (self.mode_buttons, "mode"), (self.page_slider, "page"),
            (self.input_view, "input"), (self.view, "view"), (self.caption, "caption"),
            (self.message, "message"),
        ]:  # fmt: skip
            self._css(control, name)
        self._photo_rgb = render.as_rgb_uint8(self._image.pixels)
        self.input_view.value = render.encode_png(self._photo_rgb)
        # Stock stand-in for clicking a grid tile (shown in grid mode when clicks cannot work).
        self.open_dropdown = widgets.Dropdown(
            options=[("—", None)], value=None, description=_("Open"),
            layout=widgets.Layout(width="200px", display="none"),
        )  # fmt: skip
        self._css(self.open_dropdown, "open")
        self.open_dropdown.observe(self._on_open_pick, names="value")
        self.frontend_note = widgets.HTML(layout=widgets.Layout(display="none"))
        self._css(self.frontend_note, "frontend-note")

    def _link_controls(self) -> None:
        self._link_layer()
        if self._feature_view is not None:  # controls move the view in the browser (view.py)
            self._feature_view.link_explorer(self)
            self._clicks = True  # a click on a tile opens it in the browser
        else:
            for name, control in [("cmap", self.cmap_dropdown), ("mode", self.mode_buttons)]:
                traitlets.link((self, name), (control, "value"))
            self._link_range(self.channel_slider, self.page_slider)
            # Clicking a grid tile selects its channel; without ipyevents the Open menu does.
            self._clicks = self._on_click(self.view, self._open_tile)
        notes = [] if self._clicks else [stand_in_note("ipyevents", where=_("Open menu"))]
        if not has_feature("ipympl"):
            notes.append(stand_in_note("ipympl"))
        self.frontend_note.value = "".join(
            f'<div class="cnnviz-note" style="color:#555">ℹ {html.escape(n)}</div>' for n in notes
        )
        self.frontend_note.layout.display = "" if notes else "none"

    def _layout_children(self) -> list[widgets.Widget]:
        self.detail_box = widgets.VBox()
        self.tabs = widgets.Tab(
            children=[
                widgets.HBox(
                    [self.input_view, self.view], layout=widgets.Layout(align_items="flex-start")
                ),
                self.detail_box,
                self.summary,
            ]
        )
        for index, title in enumerate([_("View"), _("Detail"), _("Summary")]):
            self.tabs.set_title(index, title)
        self.tabs.add_class("cnnviz-tabs")
        self.tabs.observe(self._on_tab, names="selected_index")
        controls = widgets.VBox(
            [
                widgets.HBox(
                    [self.layer_dropdown, self.all_layers_box, self.mode_buttons, self.layer_note],
                    layout=widgets.Layout(align_items="center"),
                ),
                widgets.HBox(
                    [self.channel_slider, self.cmap_dropdown, self.page_slider, self.open_dropdown]
                ),
            ]
        )
        # Sharp pixels when the browser scales the view down to fit.
        style = widgets.HTML("<style>.cnnviz-view { image-rendering: pixelated; }</style>")
        return [style, controls, self.message, self.tabs, self.caption, self.frontend_note]

    # ------------------------------------------------------------------ state
    @traitlets.validate("mode")
    def _valid_mode(self, proposal: dict) -> str:
        return self._checked(lambda: check_choice(proposal["value"], MODES, "mode"))

    @traitlets.observe("cmap", "mode")
    def _on_look_change(self, change: dict) -> None:
        self._refresh()

    def _count_channels(self, layer: str) -> int:
        return int(self._cache.activations(self._adapter, self._image, layer).shape[-1])

    # ------------------------------------------------------------------ drawing
    def _activations(self) -> np.ndarray:
        return self._cache.activations(self._adapter, self._image, self.layer)

    def _refresh(self) -> None:
        if self._suspended or not self.layer:
            return
        try:
            if self._feature_view is not None:  # first: the browser draws while we render
                self._feature_view.show(
                    self.layer, self._activations(), channel=self.channel, mode=self.mode,
                    cmap=self.cmap, page=self.page, colormaps=self.cmap_dropdown.options,
                )  # fmt: skip
            rgb, caption = self._draw()
        except CnnVizError as exc:
            self._show_error(exc)
            return
        self.picture.show(rgb, caption)
        self._clear_error(self._notes)
        self.channel_slider.disabled = self.mode != "channel"
        self.page_slider.layout.display = (
            "" if self.mode == "grid" and self.page_slider.max > 1 else "none"
        )
        menu = self.mode == "grid" and not self._clicks
        self.open_dropdown.layout.display = "" if menu else "none"
        if self._detail is not None and self.tabs.selected_index == 1:
            self._show_detail()

    def _draw(self) -> tuple[np.ndarray, str]:
        maps = self._activations()
        h, w, count = maps.shape
        where = f"<b>{html.escape(self.layer)}</b> · {h}×{w}×{count}"
        if self.mode == "channel":
            channel_map = maps[:, :, self.channel]
            rgb = render.apply_colormap(render.normalize_channels(channel_map), self.cmap)
            self._grid_layout = None
            lo, hi = float(channel_map.min()), float(channel_map.max())
            caption = _("{where} · channel {channel} · values {lo:.3g} to {hi:.3g}").format(
                where=where, channel=self.channel, lo=lo, hi=hi
            )
            return render.upscale_nearest(rgb, VIEW_MIN_SIDE), caption
        if self.mode == "sum":
            fused = render.channel_sum(maps)
            rgb = render.apply_colormap(render.normalize_channels(fused), self.cmap)
            self._grid_layout = None
            caption = _("{where} · sum of all {count} channels").format(where=where, count=count)
            return render.upscale_nearest(rgb, VIEW_MIN_SIDE), caption
        channels = self._page_range()
        rgb, layout = render.channel_grid(
            maps, channels, columns=min(GRID_COLUMNS, len(channels)), cmap=self.cmap,
            tile_min_side=GRID_TILE_MIN_SIDE, tile_max_side=GRID_TILE_MAX_SIDE,
        )  # fmt: skip
        rgb = render.number_tiles(rgb, layout)  # "channel 4" without counting tiles
        self._grid_layout = layout
        pages = render.page_count(count, GRID_PAGE_SIZE)
        paging = _(" · page {page} of {pages}").format(page=self.page + 1, pages=pages)
        paging = paging if pages > 1 else ""
        how = _("click a tile") if self._clicks else _("pick one in Open")
        caption = _("{where} · channels {first}–{last}{paging} · {how} to open that channel")
        caption = caption.format(
            where=where, first=channels.start, last=channels.stop - 1, paging=paging, how=how
        )
        if not self._clicks:
            with self.open_dropdown.hold_trait_notifications():
                self.open_dropdown.options = [("—", None)] + [(str(c), c) for c in channels]
                self.open_dropdown.value = None
        return rgb, caption

    def _show_detail(self) -> None:
        title = _("{layer} · channel {channel}").format(layer=self.layer, channel=self.channel)
        self._detail.show(self._activations()[:, :, self.channel], title, self.cmap)

    def _on_tab(self, change: dict) -> None:
        if change["new"] == 2 and not getattr(self, "_shapes_shown", False):
            self._shapes_shown = True  # the real shapes for this image, read once
            self.summary.show_shapes(real_shapes(self._adapter, self._image))
        if change["new"] == 1:
            if self._detail is None:
                self._detail = detail_view(has_feature("ipympl"))
                self.detail_box.children = [self._detail.canvas]
            self._show_detail()

    # ------------------------------------------------------------------ events
    def handle_view_click(self, event: dict) -> None:
        """Select the channel under a click on the grid (an ipyevents ``click`` event dict).

        ``dataX``/``dataY`` are pixel coordinates in the picture; a click on padding, or outside
        grid mode, does nothing.
        """
        pixel = click_pixel(event)
        if pixel is not None:
            self._open_tile(*pixel)

    def _open_tile(self, x: float, y: float) -> None:
        if self.mode != "grid" or self._grid_layout is None:
            return
        channel = self._grid_layout.tile_at(x, y)
        if channel is not None:
            with self._held():
                self.channel = channel
                self.mode = "channel"
            self._refresh()

    def _on_open_pick(self, change: dict) -> None:
        """The Open menu (stock stand-in for a click): open the picked channel."""
        if change["new"] is None or self.mode != "grid":
            return
        with self._held():
            self.channel = int(change["new"])
            self.mode = "channel"
        self._refresh()

    def _on_summary_pick(self, path: str) -> None:
        try:
            self.layer = path
        except LayerError:
            return  # the message is already shown in the widget
        self.tabs.selected_index = 0

    # ------------------------------------------------------------------ results
    _exported_traits = ("layer", "channel", "cmap", "mode", "page")
    _code_traits = ("layer", "channel", "cmap", "mode", "page")

    def _export_sections(self) -> list[Section]:
        return [Section(_("Input image"), self.input_view.value), *super()._export_sections()]

    def _static_panels(self) -> list[np.ndarray]:
        return [self._photo_rgb, *super()._static_panels()]

    @property
    def grid_layout(self) -> render.GridLayout | None:
        """Where each channel sits in the grid picture (None outside grid mode)."""
        return self._grid_layout
