"""FilterExplorer: what does each filter of a layer respond to?

A page of channels is shown as a grid of images synthesised to excite each channel most (filter
ascent). The optimisation runs in a background worker: frames stream into the grid as the images
form, a progress bar counts the steps, and changing the layer, the page or a setting cancels the
run in flight (the newest request wins) while the notebook stays responsive. Results are cached
in memory and on disk, so a page seen once comes back instantly, even in a later session.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import render
from ..ascent import DEFAULT_STEPS, default_steps, filter_ascent
from ..ascent.settings import check_size, check_steps
from ..engine.adapter import Preprocess
from ..errors import CnnVizError
from ..i18n import gettext_ as _
from .background import Job
from .base import ExplorerBase, click_pixel
from .frontend import stand_in_note
from .layer_picker import LayerPicker
from .lesson import filters_layer
from .picture import Picture
from .state import PagedChannelState

#: Channels optimised together and shown on one page.
PAGE_SIZE = 16
GRID_COLUMNS = 8
SIZE_CHOICES = (64, 96, 128, 160, 224)
# How often (in steps) an intermediate frame is streamed into the grid.
FRAME_EVERY = 8
ENLARGED_SIDE = 256


class FilterExplorer(LayerPicker, PagedChannelState, ExplorerBase):
    """Images that maximise each channel of a layer, computed in the background and streamed.

    Parameters
    ----------
    model : keras.Model
        Any Keras 3 CNN with one image input.
    layer : str, optional
        Layer path; default: a layer two thirds of the way into the network.
    channel : int
        The channel shown enlarged (its page is shown in the grid).
    size : int
        Side of the synthesised images, in pixels.
    steps : int, optional
        Optimisation steps (default 256, capped by the ``CNNVIZ_MAX_STEPS`` environment variable).
    tv : float
        Strength of the total-variation penalty (smoothness of the images).
    param : {"fft", "pixel"}
        Image parametrisation: frequency-decorrelated (crisper) or plain pixels.
    seed : int
        Random seed: the same settings and seed give the same images.
    preprocess : callable, optional
        Preprocessing for models that do not include it.

    Attributes
    ----------
    images : ndarray or None
        The finished images of the current page, float32 (N, size, size, 3) in [0, 1].

    Examples
    --------
    >>> fx = FilterExplorer(cv.load_default_model(), layer="backbone/block3a_expand_activation")
    >>> fx.page = 2          # channels 32–47; the run for page 0 is cancelled  # doctest: +SKIP
    """

    size = traitlets.Int(128, help="Side of the images in pixels.")
    steps = traitlets.Int(DEFAULT_STEPS, help="Optimisation steps.")
    tv = traitlets.Float(1.0, help="Total-variation penalty (smoothness).")
    param = traitlets.Enum(("fft", "pixel"), default_value="fft", help="Image parametrisation.")
    show = traitlets.Enum(
        ("ascent", "kernels"), default_value="ascent",
        help="'ascent': images that excite each channel; 'kernels': the layer's conv weights.",
    )  # fmt: skip
    busy = traitlets.Bool(False, help="True while images are being optimised.")

    _page_size = PAGE_SIZE
    _page_follows_channel = True
    _css_root = "cnnviz-filter-explorer"
    _css_prefix = "cnnviz-filters"
    _uses_cache = False  # the images have their own memory and disk cache (ascent.results)
    _worker_name = "cnnviz-filters"

    def __init__(
        self,
        model: Any,
        *,
        layer: str | None = None,
        channel: int = 0,
        size: int = 128,
        steps: int | None = None,
        tv: float = 1.0,
        param: str = "fft",
        seed: int = 0,
        preprocess: Preprocess | None = None,
    ) -> None:
        self._adopt(model, preprocess=preprocess)
        self._adapter.build_for((size, size, 3))
        self._seed = seed
        self._images: np.ndarray | None = None
        self._shown_channels: tuple[int, ...] = ()
        self._grid_layout: render.GridLayout | None = None
        self._enlarged_rgb: np.ndarray | None = None
        self._build_controls()
        super().__init__(self._layout_children())

        self.layer = layer if layer is not None else filters_layer(self._adapter)
        self.size = size
        # Default steps honour the CNNVIZ_MAX_STEPS cap (notebooks in CI set it).
        self.steps = steps if steps is not None else default_steps()
        self.tv = tv
        self.param = param
        self.channel = channel  # its page follows
        self._link_controls()
        self._suspended = False
        self._refresh()

    # ------------------------------------------------------------------ set-up
    def _build_controls(self) -> None:
        css = self._css
        self._build_layer_picker()  # grouped by block, the lesson's layers first
        css(self.layer_dropdown, "layer")
        self.page_slider = css(widgets.IntSlider(min=1, max=1, description=_("Page")), "page")
        self.channel_slider = css(
            widgets.IntSlider(min=0, max=0, description=_("Channel")), "channel"
        )
        self.steps_slider = css(
            widgets.IntSlider(min=8, max=1024, step=8, description=_("Steps")), "steps"
        )
        self.size_dropdown = css(
            widgets.Dropdown(options=list(SIZE_CHOICES), description=_("Size")), "size"
        )
        self.tv_slider = css(
            widgets.FloatSlider(min=0.0, max=5.0, step=0.25, description=_("Smoothness")),
            "tv",
        )
        self.param_buttons = css(
            widgets.ToggleButtons(options=[("FFT", "fft"), (_("Pixels"), "pixel")]), "param"
        )
        self.show_buttons = css(
            widgets.ToggleButtons(
                options=[(_("Filter ascent"), "ascent"), (_("Kernel weights"), "kernels")]
            ),
            "show",
        )
        self.progress_bar = css(
            widgets.IntProgress(min=0, max=1, description=_("Progress")), "progress"
        )
        self.progress_label = css(widgets.HTML(), "progress-label")
        self._stop_button()
        self.view = css(
            widgets.Image(format="png", layout=widgets.Layout(min_width="0", flex="0 1 auto")),
            "view",
        )
        self.enlarged = css(widgets.Image(format="png"), "enlarged")
        self.caption = css(widgets.HTML(), "caption")
        self.picture = Picture(self.view, self.caption)
        self.message = css(widgets.HTML(layout=widgets.Layout(display="none")), "message")
        # Clicking an image of the grid enlarges it; without ipyevents the Channel slider does.
        self._clicks = self._on_click(self.view, self._open_tile)
        note = "" if self._clicks else stand_in_note("ipyevents", where=_("Channel slider"))
        self.frontend_note = css(
            widgets.HTML(
                f'<div class="cnnviz-note" style="color:#555">ℹ {html.escape(note)}</div>'
                if note else "",
                layout=widgets.Layout(display="" if note else "none"),
            ),
            "frontend-note",
        )  # fmt: skip

    def _layout_children(self) -> list[widgets.Widget]:
        controls = widgets.VBox(
            [
                widgets.HBox([self.layer_dropdown, self.all_layers_box, self.layer_note]),
                widgets.HBox([self.page_slider, self.channel_slider]),
                widgets.HBox([self.steps_slider, self.size_dropdown, self.tv_slider]),
                widgets.HBox(
                    [self.param_buttons, self.progress_bar, self.stop_button, self.progress_label]
                ),
                self.show_buttons,
            ]
        )
        views = widgets.HBox(
            [self.view, self.enlarged], layout=widgets.Layout(align_items="flex-start")
        )
        return [controls, self.frontend_note, self.message, views, self.caption]

    def _link_controls(self) -> None:
        for name, control in [
            ("steps", self.steps_slider),
            ("size", self.size_dropdown), ("tv", self.tv_slider), ("param", self.param_buttons),
            ("show", self.show_buttons),
        ]:  # fmt: skip
            traitlets.link((self, name), (control, "value"))
        self._link_layer()
        self._link_range(self.channel_slider, self.page_slider)
        self._link_busy()

    # ------------------------------------------------------------------ state
    def _count_channels(self, layer: str) -> int:
        return int(self._adapter.layer_info(layer).channels or 0)

    @traitlets.validate("steps")
    def _valid_steps(self, proposal: dict) -> int:
        # The words of optimize_image's own check.
        return self._checked(lambda: check_steps(proposal["value"]))

    @traitlets.validate("size")
    def _valid_size(self, proposal: dict) -> int:
        size = self._checked(lambda: check_size(proposal["value"]))
        if size not in self.size_dropdown.options:
            self.size_dropdown.options = sorted({*self.size_dropdown.options, size})
        return size

    @traitlets.observe("size", "steps", "tv", "param", "show")
    def _on_settings(self, change: dict) -> None:
        self._refresh()

    def _after_channel(self) -> None:
        self._show_enlarged()  # same page: the grid stays, the enlarged image changes

    # ------------------------------------------------------------------ running
    def _request(self) -> tuple:
        """Everything that decides what a run computes."""
        return (self.show, self.layer, tuple(self._page_range()), self.size, self.steps,
                self.tv, self.param)  # fmt: skip

    def _refresh(self) -> None:
        """Cancel the run in flight and start one for the current layer, page and settings."""
        if self._suspended:
            return
        if self.show == "kernels":
            self._cancel_work()
            with self._draw_lock:
                self._show_kernels()
            return
        channels = self._page_range()
        layer, size, steps, tv, param = self.layer, self.size, self.steps, self.tv, self.param
        self._images = None
        self._shown_channels = tuple(channels)
        self.busy = True
        with self.progress_bar.hold_sync():
            self.progress_bar.value = 0
            self.progress_bar.max = steps
            self.progress_bar.bar_style = ""
        self.progress_label.value = _("starting…")

        def work(job: Job) -> np.ndarray:
            # Frames stream every FRAME_EVERY steps: bench/suite_teaching.py finds the streamed
            # page recognisable within seconds. A half-size preview run first was measured too
            # and was later and less selective, so there is one schedule: this one.
            return filter_ascent(
                self._adapter, layer, list(channels), size=size, steps=steps, tv=tv,
                param=param, seed=self._seed, every=FRAME_EVERY, progress=False,
                on_step=lambda done, total, frames: job.report((done, total, frames)),
                cancel=lambda: job.cancelled,
            )  # fmt: skip

        self._submit(work, self._finished, self._progress, on_error=self._failed)

    def _progress(self, job: Job, progress: tuple) -> None:
        done, total, frames = progress
        with self.progress_bar.hold_sync():
            self.progress_bar.max = total
            self.progress_bar.value = done
        self.progress_label.value = _("step {done} of {total}").format(done=done, total=total)
        if frames is not None:
            self._draw(frames, final=False)

    def _finished(self, images: np.ndarray) -> None:
        self._images = images
        self.busy = False
        with self.progress_bar.hold_sync():
            self.progress_bar.value = self.progress_bar.max
            self.progress_bar.bar_style = "success"
        self.progress_label.value = _("done")
        self._draw(images, final=True)

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        with self.progress_bar.hold_sync():
            self.progress_bar.value = 0
            self.progress_bar.bar_style = "danger"
        self.progress_label.value = _("stopped")
        self._show_error(exc)

    def _stopped(self) -> None:
        if self.busy:
            self.busy = False
            self.progress_bar.bar_style = "warning"
            self.progress_label.value = _("stopped")

    # ------------------------------------------------------------------ drawing
    def _draw(self, images: np.ndarray, *, final: bool) -> None:
        channels = self._shown_channels
        rgb, layout = render.image_grid(
            images, channels, columns=min(GRID_COLUMNS, len(channels)), tile_min_side=64
        )
        rgb = render.number_tiles(rgb, layout)
        self._grid_layout = layout
        state = "" if final else _(" · forming…")
        caption = _(
            "<b>{layer}</b> · channels {first}–{last} · page {page} of {pages} · {size} px, "
            "{steps} steps{state}"
        ).format(
            layer=html.escape(self.layer), first=channels[0], last=channels[-1],
            page=self.page + 1, pages=self._pages, size=self.size, steps=self.steps, state=state,
        )  # fmt: skip
        self.picture.show(
            rgb, caption + (_(" · click an image to enlarge it") if self._clicks else "")
        )
        if final:
            self._clear_error()
        self._show_enlarged(images)

    def _show_kernels(self) -> None:
        """Draw the current layer's convolution kernels (numbers on small ones)."""
        from ..engine.weights import kernel_weights
        from ..render.kernels import kernel_grid

        try:
            weights = kernel_weights(self._adapter.model, self.layer)
            rgb = kernel_grid(weights)
        except CnnVizError as exc:
            self._show_error(exc)
            return
        self._grid_layout = None
        kh, kw, inputs, outputs = weights.shape
        self.busy = False
        self.enlarged.value = b""
        self._enlarged_rgb = None
        self.picture.show(
            rgb,
            _(
                "<b>{layer}</b> · {outputs} kernels of {kh}×{kw}×{inputs} · red positive, "
                "blue negative"
            ).format(layer=html.escape(self.layer), outputs=outputs, kh=kh, kw=kw, inputs=inputs),
        )
        self._clear_error()

    def _show_enlarged(self, images: np.ndarray | None = None) -> None:
        images = self._images if images is None else images
        if images is None or self.channel not in self._shown_channels:
            return
        picture = images[self._shown_channels.index(self.channel)]
        tile, _ = render.image_grid(
            picture[None], [self.channel], pad=0, tile_min_side=ENLARGED_SIDE
        )
        self._enlarged_rgb = tile
        self.enlarged.value = render.encode_png(tile)

    def handle_view_click(self, event: dict) -> None:
        """Enlarge the image under a click on the grid (an ipyevents ``click`` event dict)."""
        pixel = click_pixel(event)
        if pixel is not None:
            self._open_tile(*pixel)

    def _open_tile(self, x: float, y: float) -> None:
        if self._grid_layout is None:
            return
        channel = self._grid_layout.tile_at(x, y)
        if channel is not None:
            self.channel = channel

    _exported_traits = ("layer", "show", "page", "channel", "size", "steps", "tv", "param")
    # The page follows the channel: setting the channel sets it.
    _code_traits = ("layer", "channel", "size", "steps", "tv", "param", "show")
    _static_wait = 5.0  # a capped run (CNNVIZ_MAX_STEPS) finishes; a long one shows its frames

    def _static_panels(self) -> list[np.ndarray]:
        shown = super()._static_panels()
        return [*shown, self._enlarged_rgb] if shown and self._enlarged_rgb is not None else shown

    @property
    def images(self) -> np.ndarray | None:
        """The finished images of the current page (None while they are still forming)."""
        return self._images

    @property
    def grid_layout(self) -> render.GridLayout | None:
        """Where each channel sits in the grid picture."""
        return self._grid_layout
