"""One channel as a matplotlib figure for the explorer's Detail tab: interactive (ipympl) or plain.

:class:`DetailFigure` needs ipympl's front end; :class:`DetailPicture` is its stock stand-in (the
same figure drawn once as a PNG in an ``ipywidgets.Image``). Both have ``canvas`` (the widget)
and ``show(channel_map, title, cmap)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..i18n import cjk_font_properties, has_cjk


def _title_font(title: str) -> dict[str, Any]:
    """Keyword arguments for ``set_title``: a font with Chinese glyphs when the title needs one.

    Only this title changes font (matplotlib's global settings stay as the user left them);
    without it a Chinese title is drawn as empty boxes.
    """
    return {"fontproperties": cjk_font_properties()} if has_cjk(title) else {}


class DetailFigure:
    """An interactive matplotlib figure (ipympl) of one channel with a colorbar.

    The ipympl toolbar shows the value under the cursor; zoom and pan work as in any figure.
    Made on first use only: it costs half a second and the quick views do not need it.
    """

    def __init__(self) -> None:
        from ipympl.backend_nbagg import Canvas, FigureManager
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(5, 4), layout="constrained")
        self.canvas = Canvas(self.figure)
        self.manager = FigureManager(self.canvas, 0)
        self.canvas.header_visible = False
        self.canvas.add_class("cnnviz-detail")
        self.axes = self.figure.add_subplot()
        self.image = self.axes.imshow(np.zeros((2, 2), np.float32), cmap="viridis")
        self.colorbar = self.figure.colorbar(self.image, ax=self.axes)

    def show(self, channel_map: np.ndarray, title: str, cmap: str) -> None:
        """Draw ``channel_map`` (H, W) with its own value range, titled ``title``."""
        lo, hi = float(np.nanmin(channel_map)), float(np.nanmax(channel_map))
        self.image.set_data(channel_map)
        self.image.set_extent((-0.5, channel_map.shape[1] - 0.5, channel_map.shape[0] - 0.5, -0.5))
        self.image.set_clim(lo, hi if hi > lo else lo + 1e-6)
        self.image.set_cmap(cmap)
        self.axes.set_title(title, fontsize=9, **_title_font(title))
        self.canvas.draw_idle()


class DetailPicture:
    """The Detail figure as a plain PNG (stock ipywidgets): channel, colorbar, title, no toolbar.

    Used where ipympl's front end is absent (see :mod:`.frontend`).
    """

    def __init__(self) -> None:
        import ipywidgets as widgets

        self.canvas = widgets.Image(format="png")
        self.canvas.add_class("cnnviz-detail")
        self.canvas.add_class("cnnviz-detail-static")

    def show(self, channel_map: np.ndarray, title: str, cmap: str) -> None:
        """Draw ``channel_map`` (H, W) with its own value range, titled ``title``, as PNG."""
        import io

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(5, 4), dpi=80, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        lo, hi = float(np.nanmin(channel_map)), float(np.nanmax(channel_map))
        image = axes.imshow(channel_map, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1e-6)
        figure.colorbar(image, ax=axes)
        axes.set_title(title, fontsize=9, **_title_font(title))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        self.canvas.value = buffer.getvalue()


def detail_view(interactive: bool) -> DetailFigure | DetailPicture:
    """The interactive figure when ipympl's front end is there, else the plain picture."""
    return DetailFigure() if interactive else DetailPicture()
