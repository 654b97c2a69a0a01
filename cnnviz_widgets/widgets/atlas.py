"""AtlasExplorer: browse an atlas store — for each channel, the real images that excite it most.

The store is read lazily (one channel's crops and records per view), so an atlas built on a
cluster and copied to a laptop opens with no model and no TensorFlow. Give a ``model`` to open
the :class:`~cnnviz_widgets.widgets.activations.ActivationExplorer` on a top image, or on a
picture of your own, at the channel shown.
"""

from __future__ import annotations

import html
import io
import os
import threading
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import render
from ..atlas.reader import Atlas, Record
from ..errors import CnnVizError, check_index
from ..export import Section
from ..i18n import gettext_ as _
from .base import ExplorerBase
from .picture import Picture

#: Smallest side of a crop tile on screen: a 3×3 receptive field becomes visible blocks.
TILE_MIN_SIDE = 96
#: Smallest side of the filter-ascent picture on screen.
ASCENT_MIN_SIDE = 160


class AtlasExplorer(ExplorerBase):
    """Browse an atlas: a layer, a channel, its top-k crops with scores, statistics, ascent.

    Parameters
    ----------
    store : str, path or Atlas
        An atlas store written by :func:`cnnviz_widgets.atlas.build` (here or elsewhere).
    model : keras.Model, optional
        The model the atlas was built from: needed only to open a channel on an image.
    layer : str, optional
        Layer shown first (default: the atlas's first layer).
    channel : int
        Channel shown first.
    preprocess : callable, optional
        As for the ActivationExplorer, when the model needs it.

    Examples
    --------
    >>> ex = cv.AtlasExplorer("atlas.zarr", model=model)     # doctest: +SKIP
    >>> ex.layer = "backbone/block3a_expand_conv"; ex.channel = 7
    >>> ex.records[0].index, ex.records[0].score             # doctest: +SKIP
    >>> ex.show_on(cv.sample_image("chelsea"))               # an ActivationExplorer there
    """

    layer = traitlets.Unicode(help="Path of the layer shown.")
    channel = traitlets.Int(0, help="Channel shown.")
    _channels = traitlets.Int(1, help="Channels of the current layer.")

    _css_root = "cnnviz-atlas-explorer"
    _uses_cache = False

    def __init__(
        self,
        store: Any,
        *,
        model: Any = None,
        layer: str | None = None,
        channel: int = 0,
        preprocess: Any = None,
    ) -> None:
        self.atlas = store if isinstance(store, Atlas) else Atlas(store)
        self.model = model
        self.preprocess = preprocess
        self.activation_explorer: Any = None
        self._draw_lock = threading.RLock()  # the scaffold's; no background work here
        self._records: list[Record] = []
        self._build_controls()
        super().__init__(self._layout_children())
        self.layer = layer if layer is not None else self.atlas.layers[0]
        self.channel = channel
        traitlets.link((self, "layer"), (self.layer_dropdown, "value"))
        traitlets.link((self, "channel"), (self.channel_slider, "value"))
        traitlets.dlink((self, "_channels"), (self.channel_slider, "max"), lambda n: max(n - 1, 0))
        self._on_click(self.view, self._open_tile)
        self._suspended = False
        self._refresh()

    # ------------------------------------------------------------------ set-up
    def _build_controls(self) -> None:
        self.layer_dropdown = widgets.Dropdown(
            options=self.atlas.layers, description=_("Layer"), layout=widgets.Layout(width="420px")
        )
        self.channel_slider = widgets.IntSlider(
            min=0, max=0, description=_("Channel"), layout=widgets.Layout(width="420px")
        )
        self.view = widgets.Image(format="png", layout=widgets.Layout(min_width="0"))
        self.caption = widgets.HTML()
        self.picture = Picture(self.view, self.caption)
        self.stats_view = widgets.HTML()
        self.ascent_view = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.message = widgets.HTML(layout=widgets.Layout(display="none"))
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description=_("Image"))
        self.show_button = widgets.Button(description=_("Show this channel on my image"))
        self.show_button.on_click(lambda _: self._show_upload())
        self.activation_box = widgets.VBox()
        for control, name in [
            (self.layer_dropdown, "layer"), (self.channel_slider, "channel"),
            (self.view, "view"), (self.caption, "caption"), (self.stats_view, "stats"),
            (self.ascent_view, "ascent"), (self.message, "message"),
            (self.show_button, "show-on-image"),
        ]:  # fmt: skip
            self._css(control, name)

    def _layout_children(self) -> list[widgets.Widget]:
        side = widgets.VBox([self.stats_view, self.ascent_view])
        return [
            widgets.HBox([self.layer_dropdown, self.channel_slider]),
            self.message,
            widgets.HBox([self.view, side], layout=widgets.Layout(align_items="flex-start")),
            self.caption,
            widgets.HBox([self.upload, self.show_button]),
            self.activation_box,
        ]

    # ------------------------------------------------------------------ state
    @traitlets.validate("layer")
    def _valid_layer(self, proposal: dict) -> str:
        return self._checked(lambda: self.atlas.resolve(proposal["value"]))

    @traitlets.validate("channel")
    def _valid_channel(self, proposal: dict) -> int:
        value, count = proposal["value"], self._channels
        owner, things = _("layer {layer!r}").format(layer=self.layer), _("channels")
        return self._checked(lambda: check_index(value, count, _("Channel"), owner, things=things))

    @traitlets.observe("layer")
    def _layer_moved(self, change: dict) -> None:
        count = self.atlas.channels(self.layer)
        with self._held(), self.channel_slider.hold_sync():
            self._channels = count
            if self.channel >= count:
                self.channel = count - 1
        self._refresh()

    @traitlets.observe("channel")
    def _channel_moved(self, change: dict) -> None:
        self._refresh()

    # ------------------------------------------------------------------ drawing
    @property
    def records(self) -> list[Record]:
        """The current channel's top records, best first."""
        return list(self._records)

    def _refresh(self) -> None:
        if self._suspended or not self.layer:
            return
        try:
            rgb, caption = self._draw()
        except CnnVizError as exc:
            self._show_error(exc)
            return
        self.picture.show(rgb, caption)
        self.stats_view.value = self._stats_html()
        self._draw_ascent()
        self._clear_error()

    def _draw(self) -> tuple[np.ndarray, str]:
        self._records = self.atlas.top(self.layer, self.channel)
        where = _("<b>{layer}</b> · channel {channel}").format(
            layer=html.escape(self.layer), channel=self.channel
        )
        if not self._records:
            caption = _("{where} · no image was read").format(where=where)
            return np.full((8, 8, 3), 255, np.uint8), caption
        if not self.atlas.has_crops:
            rgb = np.full((TILE_MIN_SIDE, TILE_MIN_SIDE, 3), 255, np.uint8)
        else:
            crops = self.atlas.crops(self.layer, self.channel)
            if crops.shape[-1] == 1:
                crops = np.repeat(crops, 3, axis=-1)
            columns = min(len(crops), max(3, int(np.ceil(np.sqrt(len(crops))))))
            rgb, self._grid = render.image_grid(
                crops, list(range(len(crops))), columns=columns, tile_min_side=TILE_MIN_SIDE
            )
        rows = "".join(
            f"<tr><td>{r.rank + 1}</td><td>{r.index}</td><td>{r.score:.4g}</td>"
            f"<td>({r.y}, {r.x})</td><td>{html.escape(os.path.basename(r.path or ''))}</td></tr>"
            for r in self._records
        )
        top = _("{where} · top {count} of {total} images").format(
            where=where, count=len(self._records), total=self.atlas.images["read"]
        )
        head = "".join(
            f"<th>{html.escape(name)}</th>"
            for name in ("#", _("image"), _("score"), _("max at (y, x)"), _("file"))
        )
        return rgb, f"{top}<table class='cnnviz-atlas-records'><tr>{head}</tr>{rows}</table>"

    def _stats_html(self) -> str:
        stats = self.atlas.stats(self.layer)
        c = self.channel
        dead = int((stats["zero_fraction"] >= 0.999).sum())
        text = _(
            "<b>channel {channel}</b><br>mean {mean:.4g}<br>std {std:.4g}<br>zeros {zeros:.1f}%"
            "<br><br><b>layer</b><br>{channels} channels, {dead} never active"
        ).format(
            channel=c, mean=stats["mean"][c], std=stats["std"][c],
            zeros=100 * stats["zero_fraction"][c], channels=len(stats["mean"]), dead=dead,
        )  # fmt: skip
        return f"<div class='cnnviz-atlas-stats'>{text}</div>"

    def _draw_ascent(self) -> None:
        image = self.atlas.ascent(self.layer, self.channel) if self.atlas.has_ascent else None
        if image is None:
            self.ascent_view.layout.display = "none"
            return
        self.ascent_view.value = render.encode_png(render.upscale_nearest(image, ASCENT_MIN_SIDE))
        self.ascent_view.layout.display = ""

    # ------------------------------------------------------------------ on an image
    def show_on(self, image: Any) -> Any:
        """Open an ActivationExplorer on ``image`` at this layer and channel; returns it.

        ``image`` is anything ``load_image`` takes, or a record's index in the source.
        """
        if self.model is None:
            self._refuse(
                _("Opening a channel on an image needs the model: AtlasExplorer(store, model=...).")
            )
        if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
            path = self.atlas.path(int(image))
            if path is None:
                self._refuse(
                    _("Image {index} has no file in this atlas; pass the image.").format(
                        index=int(image)
                    )
                )
            image = path
        from .activations import ActivationExplorer

        explorer = ActivationExplorer(
            self.model, image, layer=self.layer, channel=self.channel, preprocess=self.preprocess
        )
        self.activation_explorer = explorer
        self.activation_box.children = [explorer]
        return explorer

    def _show_upload(self) -> None:
        files = self.upload.value
        if not files:
            self._show_error(CnnVizError(_("Choose an image file first (the Image button).")))
            return
        from PIL import Image

        entry = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        content = entry["content"] if isinstance(entry, dict) else entry.content
        try:
            self.show_on(np.asarray(Image.open(io.BytesIO(bytes(content))).convert("RGB")))
        except CnnVizError:
            pass  # shown in the widget already

    def _open_tile(self, x: float, y: float) -> None:
        grid = getattr(self, "_grid", None)
        rank = grid.tile_at(x, y) if grid is not None else None
        if rank is not None and rank < len(self._records) and self.model is not None:
            try:
                self.show_on(self._records[rank].index)
            except CnnVizError:
                pass

    # ------------------------------------------------------------------ export
    _exported_traits = ("layer", "channel")

    def _export_title(self) -> str:
        return f"AtlasExplorer · {self.atlas.params['model']}"

    def _export_sections(self) -> list[Section]:
        sections = super()._export_sections()
        if self.ascent_view.layout.display != "none":
            sections.append(Section(_("Filter ascent"), self.ascent_view.value, ""))
        return sections
