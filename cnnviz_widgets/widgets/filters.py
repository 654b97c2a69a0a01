"""FilterExplorer: what does each filter of a layer respond to?

A page of channels is shown as a grid of images synthesised to excite each channel most (filter
ascent). The optimisation runs in a background worker: frames stream into the grid as the images
form, a progress bar counts the steps, and changing the layer, the page or a setting cancels the
run in flight (the newest request wins) while the notebook stays responsive. Results are cached
in memory and on disk, so a page seen once comes back instantly, even in a later session.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import render
from ..ascent.optimize import DEFAULT_STEPS, default_steps, filter_ascent
from ..engine.adapter import Preprocess, adapter_for
from ..errors import CnnVizError
from .background import Job, LatestWinsRunner
from .base import ExplorerBase

#: Channels optimised together and shown on one page.
PAGE_SIZE = 16
GRID_COLUMNS = 8
SIZE_CHOICES = (64, 96, 128, 160, 224)
# How often (in steps) an intermediate frame is streamed into the grid.
FRAME_EVERY = 8
ENLARGED_SIDE = 256


class FilterExplorer(ExplorerBase):
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

    layer = traitlets.Unicode(help="Path of the layer.")
    page = traitlets.Int(0, help=f"Page of {PAGE_SIZE} channels, from 0.")
    _page_size = PAGE_SIZE
    channel = traitlets.Int(0, help="Channel shown enlarged.")
    size = traitlets.Int(128, help="Side of the images in pixels.")
    steps = traitlets.Int(DEFAULT_STEPS, help="Optimisation steps.")
    tv = traitlets.Float(1.0, help="Total-variation penalty (smoothness).")
    param = traitlets.Enum(("fft", "pixel"), default_value="fft", help="Image parametrisation.")
    show = traitlets.Enum(
        ("ascent", "kernels"), default_value="ascent",
        help="'ascent': images that excite each channel; 'kernels': the layer's conv weights.",
    )  # fmt: skip
    busy = traitlets.Bool(False, help="True while images are being optimised.")

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
        self._adapter = adapter_for(model, preprocess=preprocess)
        self._adapter.build_for((size, size, 3))
        self._seed = seed
        self._runner = LatestWinsRunner(name="cnnviz-filters")
        self._images: np.ndarray | None = None
        self._shown_channels: tuple[int, ...] = ()
        self._grid_layout: render.GridLayout | None = None
        # Results of a run are drawn only while its request is still the current one; the lock
        # makes that check and the drawing one step against newer requests.
        self._draw_lock = threading.RLock()
        self._suspended = True
        self._build_controls()
        super().__init__(children=self._layout_children())
        self.add_class("cnnviz-filter-explorer")

        paths = self._adapter.layer_paths
        self.layer = layer if layer is not None else paths[(2 * len(paths)) // 3]
        self.size = size
        # Default steps honour the CNNVIZ_MAX_STEPS cap (notebooks in CI set it).
        self.steps = steps if steps is not None else default_steps()
        self.tv = tv
        self.param = param
        self.channel = channel
        self.page = channel // PAGE_SIZE
        self._link_controls()
        self._suspended = False
        self._start()

    # ------------------------------------------------------------------ set-up
    def _build_controls(self) -> None:
        def css(control: widgets.Widget, name: str) -> widgets.Widget:
            control.add_class(f"cnnviz-filters-{name}")
            return control

        self.layer_dropdown = css(
            widgets.Dropdown(
                options=self._adapter.layer_paths, description="Layer",
                layout=widgets.Layout(width="360px"),
            ),
            "layer",
        )  # fmt: skip
        self.page_slider = css(widgets.IntSlider(min=1, max=1, description="Page"), "page")
        self.channel_slider = css(widgets.IntSlider(min=0, max=0, description="Channel"), "channel")
        self.steps_slider = css(
            widgets.IntSlider(min=8, max=1024, step=8, description="Steps"), "steps"
        )
        self.size_dropdown = css(
            widgets.Dropdown(options=list(SIZE_CHOICES), description="Size"), "size"
        )
        self.tv_slider = css(
            widgets.FloatSlider(min=0.0, max=5.0, step=0.25, description="Smoothness"), "tv"
        )
        self.param_buttons = css(
            widgets.ToggleButtons(options=[("FFT", "fft"), ("Pixels", "pixel")]), "param"
        )
        self.show_buttons = css(
            widgets.ToggleButtons(
                options=[("Filter ascent", "ascent"), ("Kernel weights", "kernels")]
            ),
            "show",
        )
        self.progress_bar = css(
            widgets.IntProgress(min=0, max=1, description="Progress"), "progress"
        )
        self.progress_label = css(widgets.HTML(), "progress-label")
        self.view = css(
            widgets.Image(
                format="png", layout=widgets.Layout(min_width="0", flex="0 1 auto")
            ),
            "view",
        )  # fmt: skip
        self.enlarged = css(widgets.Image(format="png"), "enlarged")
        self.caption = css(widgets.HTML(), "caption")
        self.message = css(widgets.HTML(layout=widgets.Layout(display="none")), "message")
        self._watch_clicks()

    def _watch_clicks(self) -> None:
        try:
            from ipyevents import Event
        except ImportError:
            return
        self._click_events = Event(source=self.view, watched_events=["click"])
        self._click_events.on_dom_event(self.handle_view_click)

    def _layout_children(self) -> list[widgets.Widget]:
        controls = widgets.VBox(
            [
                widgets.HBox([self.layer_dropdown, self.page_slider, self.channel_slider]),
                widgets.HBox([self.steps_slider, self.size_dropdown, self.tv_slider]),
                widgets.HBox([self.param_buttons, self.progress_bar, self.progress_label]),
                self.show_buttons,
            ]
        )
        views = widgets.HBox(
            [self.view, self.enlarged], layout=widgets.Layout(align_items="flex-start")
        )
        return [controls, self.message, views, self.caption]

    def _link_controls(self) -> None:
        for name, control in [
            ("layer", self.layer_dropdown), ("channel", self.channel_slider),
            ("steps", self.steps_slider), ("size", self.size_dropdown), ("tv", self.tv_slider),
            ("param", self.param_buttons), ("show", self.show_buttons),
        ]:  # fmt: skip
            widgets.link((self, name), (control, "value"))
        self._link_page_slider(self.page_slider)

    # ------------------------------------------------------------------ trait rules
    def _channel_count(self) -> int:
        return int(self._adapter.layer_info(self.layer).channels or 0)

    @traitlets.validate("steps")
    def _valid_steps(self, proposal: dict) -> int:
        steps = int(proposal["value"])
        if steps <= 0:
            self._refuse(
                f"steps must be at least 1; got {steps}. Try 64 for a quick look, 256 for detail."
            )
        return steps

    @traitlets.validate("size")
    def _valid_size(self, proposal: dict) -> int:
        size = int(proposal["value"])
        if size < 8:
            self._refuse(f"size must be at least 8 pixels; got {size}. Try 128.")
        if size not in self.size_dropdown.options:
            self.size_dropdown.options = sorted({*self.size_dropdown.options, size})
        return size

    @traitlets.observe("layer")
    def _on_layer(self, change: dict) -> None:
        count = self._channel_count()
        with self._held():
            self.channel_slider.max = max(count - 1, 0)
            self.page_slider.max = render.page_count(count, PAGE_SIZE)
            if self.channel >= count:  # like the ActivationExplorer: the last channel
                self.channel = count - 1
            self.page = self.channel // PAGE_SIZE
        self._start()

    @traitlets.observe("channel")
    def _on_channel(self, change: dict) -> None:
        page = self.channel // PAGE_SIZE
        if page != self.page:
            self.page = page  # starts the run for that page
        else:
            self._show_enlarged()

    @traitlets.observe("show")
    def _on_show(self, change: dict) -> None:
        self._start()

    @traitlets.observe("page", "size", "steps", "tv", "param")
    def _on_settings(self, change: dict) -> None:
        if change["name"] == "page" and not self._suspended:
            first = self.page * PAGE_SIZE
            if not first <= self.channel < first + PAGE_SIZE:
                with self._held():
                    self.channel = first
        self._start()

    # ------------------------------------------------------------------ running
    def _page_channels(self) -> range:
        return render.page_channels(self._channel_count(), self.page, PAGE_SIZE)

    def _start(self) -> None:
        """Cancel the run in flight and start one for the current layer, page and settings."""
        if self._suspended:
            return
        if self.show == "kernels":
            self._runner.cancel()
            with self._draw_lock:
                self._show_kernels()
            return
        channels = self._page_channels()
        layer, size, steps, tv, param = self.layer, self.size, self.steps, self.tv, self.param
        request = self._request()
        self._images = None
        self._shown_channels = tuple(channels)
        self.busy = True
        with self.progress_bar.hold_sync():
            self.progress_bar.value = 0
            self.progress_bar.max = steps
            self.progress_bar.bar_style = ""
        self.progress_label.value = "starting…"

        def work(job: Job) -> np.ndarray:
            return filter_ascent(
                self._adapter, layer, list(channels), size=size, steps=steps, tv=tv,
                param=param, seed=self._seed, every=FRAME_EVERY,
                on_step=lambda done, total, frames: job.report((done, total, frames)),
                cancel=lambda: job.cancelled,
            )  # fmt: skip

        def current(callback: Any) -> Any:
            """``callback`` run only while ``request`` is still what the controls ask for."""

            def guarded(*args: Any) -> None:
                with self._draw_lock:
                    if request == self._request():
                        callback(*args)

            return guarded

        self._runner.submit(
            work, on_done=current(self._finished), on_error=current(self._failed),
            on_progress=current(self._progress),
        )  # fmt: skip

    def _request(self) -> tuple:
        """Everything that decides what a run computes."""
        return (self.show, self.layer, tuple(self._page_channels()), self.size, self.steps,
                self.tv, self.param)  # fmt: skip

    def _progress(self, job: Job, progress: tuple[int, int, np.ndarray | None]) -> None:
        done, total, frames = progress
        with self.progress_bar.hold_sync():
            self.progress_bar.max = total
            self.progress_bar.value = done
        self.progress_label.value = f"step {done} of {total}"
        if frames is not None:
            self._draw(frames, final=False)

    def _finished(self, images: np.ndarray) -> None:
        self._images = images
        self.busy = False
        with self.progress_bar.hold_sync():
            self.progress_bar.value = self.progress_bar.max
            self.progress_bar.bar_style = "success"
        self.progress_label.value = "done"
        self._draw(images, final=True)

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        with self.progress_bar.hold_sync():
            self.progress_bar.value = 0
            self.progress_bar.bar_style = "danger"
        self.progress_label.value = "stopped"
        self._show_error(exc)

    def wait(self, timeout: float | None = 120) -> bool:
        """Block until the current run has finished (for scripts and tests)."""
        return self._runner.wait(timeout)

    def close(self) -> None:
        """Cancel any run and close the widget."""
        self._runner.close()
        super().close()

    # ------------------------------------------------------------------ drawing
    def _draw(self, images: np.ndarray, *, final: bool) -> None:
        channels = self._shown_channels
        rgb, layout = render.image_grid(
            images, channels, columns=min(GRID_COLUMNS, len(channels)), tile_min_side=64
        )
        self._grid_layout = layout
        self._show_picture(rgb, render.encode_png(rgb))
        state = "" if final else " · forming…"
        pages = render.page_count(self._channel_count(), PAGE_SIZE)
        with self.hold_sync(), self.view.hold_sync():
            self.view.value = self._png
            self.caption.value = (
                f"<b>{html.escape(self.layer)}</b> · channels {channels[0]}–{channels[-1]} · "
                f"page {self.page + 1} of {pages} · {self.size} px, {self.steps} steps{state}"
                " · click an image to enlarge it"
            )
            if final:
                self._clear_error()
        self._show_enlarged(images)

    def _show_kernels(self) -> None:
        """Draw the current layer's convolution kernels (numbers on small ones)."""
        from ..render.kernels import kernel_grid, kernel_weights

        try:
            weights = kernel_weights(self._adapter.model, self.layer)
            rgb = kernel_grid(weights)
        except CnnVizError as exc:
            self._show_error(exc)
            return
        self._grid_layout = None
        self._show_picture(rgb, render.encode_png(rgb))
        kh, kw, inputs, outputs = weights.shape
        self.busy = False
        with self.hold_sync(), self.view.hold_sync():
            self.view.value = self._png
            self.enlarged.value = b""
            self.caption.value = (
                f"<b>{html.escape(self.layer)}</b> · {outputs} kernels of {kh}×{kw}×{inputs}"
                " · red positive, blue negative"
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
        self.enlarged.value = render.encode_png(tile)

    def handle_view_click(self, event: dict) -> None:
        """Enlarge the image under a click on the grid (an ipyevents ``click`` event dict)."""
        if self._grid_layout is None or event.get("dataX") is None:
            return
        channel = self._grid_layout.tile_at(float(event["dataX"]), float(event["dataY"]))
        if channel is not None:
            self.channel = channel

    _exported_traits = ("layer", "show", "page", "channel", "size", "steps", "tv", "param")

    @property
    def images(self) -> np.ndarray | None:
        """The finished images of the current page (None while they are still forming)."""
        return self._images

    @property
    def grid_layout(self) -> render.GridLayout | None:
        """Where each channel sits in the grid picture."""
        return self._grid_layout
