"""What CamExplorer adds on top of the map: trust readouts and the drill-down to channels.

- **Readouts.** Once a map is shown, its deletion and insertion scores (Petsiuk et al. 2018),
  next to a random map's, are computed in the background (``_submit``: a newer request
  cancels them) and kept in the cache, so coming back to a map shows them at once.
- **Drill-down.** Click a point of the overlay, or set ``cam.point = (y, x)`` (photo pixels):
  the channels of the layer are ranked by gradient × activation at that spot for the class
  (:func:`~cnnviz_widgets.explain.drilldown.rank_channels`), and the best ones are shown as
  their activation maps over the photo, each beside its filter-ascent image (what the channel
  responds to most; computed on a worker of its own, so the ranking never waits for it, and
  kept by :mod:`cnnviz_widgets.ascent.results`, so the Filters tab shows the same images).
  Clicking one (or the list) sets ``cam.drill_channel``;
  the tabbed :class:`~cnnviz_widgets.widgets.explorer.Explorer` opens it in its Activations tab.

The gradients behind the ranking are computed with the readouts, so ranking a new point after
the map is shown is numpy work on one row of channels.
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import render
from ..ascent import filter_ascent
from ..errors import check_index
from ..explain.drilldown import channel_gradients, image_cell, rank_channels
from ..explain.trust import faithfulness
from ..export import Section
from ..i18n import N_
from ..i18n import gettext_ as _
from ..images import resize_image
from .background import LatestWinsRunner
from .base import click_pixel

#: Channels shown in the drill-down.
DRILL_CHANNELS = 8
#: Channels offered in the drill-down's list (``drilled`` holds them all).
DRILL_LISTED = 32
#: The readouts' keys (as in ``readouts``) and the labels an HTML export shows them with.
READOUT_LABELS = {
    "deletion": N_("deletion score"),
    "deletion_random": N_("deletion score (random map)"),
    "insertion": N_("insertion score"),
    "insertion_random": N_("insertion score (random map)"),
}
#: Height of each channel's picture in the drill-down.
DRILL_TILE_HEIGHT = 96
#: Seconds without a new point before the drill-down's ascent images go on: while someone picks
#: points, each point's ranking and maps are drawn on free cores (the ascent pauses between
#: steps, of DRILL_ASCENT_BATCH images each, so it yields within one short step).
DRILL_QUIET = 0.3
DRILL_ASCENT_BATCH = 2
#: Points of each deletion/insertion curve in the readouts (the functions default to 32).
READOUT_STEPS = 16
#: Images per forward pass of the readouts (the function defaults to 16). Sixteen photos at
#: 224×337 through the default model held ~180 MiB at once, the largest peak of the quick start
#: (bench/memory.py); four hold a quarter of it and take about as long on a few cores.
READOUT_BATCH = 4


class CamTrustMixin(traitlets.HasTraits):
    """Readouts and drill-down traits and controls for :class:`~.cam.CamExplorer`."""

    point = traitlets.Tuple(
        default_value=None, allow_none=True, help="(y, x) in photo pixels to drill down at."
    )
    drill_channel = traitlets.Int(None, allow_none=True, help="Channel picked in the drill-down.")
    drilled = traitlets.List(help="[(channel, score), …] at point, highest first (read-only).")
    readouts = traitlets.Dict(help="Deletion/insertion scores of the map and of a random map.")
    show_readouts = traitlets.Bool(True, help="Compute deletion/insertion scores for each map.")
    drill_ascent = traitlets.Bool(
        True, help="Show each drilled channel's filter-ascent image beside its map."
    )
    _ascent_runner: LatestWinsRunner | None = None
    _drill_moved_at = 0.0  # time.monotonic() of the latest drill-down

    # ------------------------------------------------------------------ controls
    def _trust_children(self) -> list[widgets.Widget]:
        """The readout line and the drill-down panel (called once the view exists)."""
        self.readout = self._css(widgets.HTML(), "readout")
        self.drill_caption = self._css(widgets.HTML(), "drill-caption")
        self.drill_view = self._css(
            widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start")), "drill"
        )
        self.drill_picker = self._css(
            widgets.Dropdown(options=[("—", None)], description=_("Channel")), "drill-channel"
        )
        self.drill_picker.observe(self._on_drill_picked, names="value")
        self._drill_layout: render.GridLayout | None = None
        self._drill_arrays: tuple[np.ndarray, np.ndarray] | None = None
        self.drill_note = self._css(widgets.HTML(), "drill-note")
        self._drill_images: tuple[tuple, np.ndarray] | None = None
        self.drill_box = widgets.VBox(
            [self.drill_caption, self.drill_picker, self.drill_view, self.drill_note],
            layout=widgets.Layout(display="none"),
        )
        self._on_click(self.view, self._clicked_overlay)
        self._overlay_events = self._click_events  # the next _on_click replaces the attribute
        self._on_click(self.drill_view, self._clicked_channel)
        return [self.readout, self.drill_box]

    # ------------------------------------------------------------------ trait rules
    @traitlets.validate("point")
    def _valid_point(self, proposal: dict) -> Any:
        value = proposal["value"]
        if value is not None:
            self._checked(lambda: image_cell(value, self._image.size, (1, 1)))
            value = tuple(value)
        return value

    @traitlets.validate("drill_channel")
    def _valid_drill_channel(self, proposal: dict) -> Any:
        value = proposal["value"]
        if value is None:
            return None
        count = self._adapter.layer_info(self.layer).channels
        owner, things = _("layer {layer!r}").format(layer=self.layer), _("channels")
        return self._checked(
            lambda: check_index(value, count, "drill_channel", owner, things=things)
        )

    @traitlets.observe("point")
    def _on_point(self, change: dict) -> None:
        self.drill_channel = None
        if not self._suspended:
            with self._draw_lock:
                self._drill()

    @traitlets.observe("drill_channel")
    def _on_drill_channel(self, change: dict) -> None:
        if self.drill_picker.value != change["new"] and any(
            v == change["new"] for _, v in self.drill_picker.options
        ):
            self.drill_picker.value = change["new"]

    def _on_drill_picked(self, change: dict) -> None:
        if change["new"] is not None:
            self.drill_channel = change["new"]

    def handle_overlay_click(self, event: dict) -> None:
        """Drill down where an ipyevents ``click`` on the overlay landed (``dataX``/``dataY``)."""
        pixel = click_pixel(event)
        if pixel is not None:
            self._clicked_overlay(*pixel)

    def handle_drill_click(self, event: dict) -> None:
        """Pick the channel under an ipyevents ``click`` on the drill-down pictures."""
        pixel = click_pixel(event)
        if pixel is not None:
            self._clicked_channel(*pixel)

    def _clicked_overlay(self, x: float, y: float) -> None:
        (h, w), (oh, ow) = self._image.size, self._overlay_size
        self.point = (min(h - 1, int(y * h / oh)), min(w - 1, int(x * w / ow)))

    def _clicked_channel(self, x: float, y: float) -> None:
        if self._drill_layout is not None:
            channel = self._drill_layout.tile_at(x, y)
            if channel is not None:
                self.drill_channel = channel

    # ------------------------------------------------------------------ after a map is shown
    def _trust_key(self, what: str) -> tuple:
        return (self._adapter.identity, self._image.key, what, self.layer, self.class_index,
                self._output, self.method)  # fmt: skip

    def _gradients(self, class_index: int, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """The layer's features and class gradients, from the explorer's cache when there."""
        features, grads = channel_gradients(self._adapter, self._image, class_index, layer,
                                            output=self._output, cache=self._cache)[:2]  # fmt: skip
        return features, grads

    def _map_shown(self, heat: np.ndarray) -> None:
        """Called by ``_draw``: show what is known, compute the rest in the background."""
        if self.busy:
            # A redraw (colormap, opacity) while a new map is computed: submitting here would
            # cancel that map; its arrival calls this again.
            return
        readouts = self._cache.get(self._trust_key("readouts"))
        self._show_readouts(readouts)
        regression = self._adapter.head_activation(self._output) == "linear"
        if readouts is not None or not self.show_readouts or regression:
            # Nothing to compute: the gradients came with these readouts (or come on demand).
            if self.point is not None:
                self._drill()
            else:
                self.drill_box.layout.display = "none"
            return
        if self.point is None:
            self.drill_box.layout.display = "none"
        class_index, layer, readout_key = self.class_index, self.layer, self._trust_key("readouts")

        def work(job: Any) -> None:
            # The drill-down's gradients first (a cache hit after a gradient CAM of the layer),
            # so that a point clicked later ranks at once.
            # The random map is as coarse as the layer's map, so that the two differ in where
            # they point and not in how finely they cut the image.
            grid = self._gradients(class_index, layer)[0].shape[:2]
            scores = [faithfulness(self._adapter, self._image, heat, class_index, metric=metric,
                                   steps=READOUT_STEPS, batch_size=READOUT_BATCH,
                                   random_grid=grid, output=self._output, progress=False,
                                   cancel=lambda: job.cancelled)
                      for metric in ("deletion", "insertion")]  # fmt: skip
            job.check()
            values = [v for s in scores for v in (float(s), s.random)]
            self._cache.put(readout_key, np.asarray(values))

        def done(_: Any) -> None:
            self._show_readouts(self._cache.get(readout_key))
            if self.point is not None:
                self._drill()

        def failed(exc: BaseException) -> None:  # the map stays; only the extras failed
            self.readout.value = f'<span class="cnnviz-error">⚠ {html.escape(str(exc))}</span>'

        self._submit(work, done, on_error=failed)

    def _show_readouts(self, values: np.ndarray | None) -> None:
        if values is None:
            self.readouts = {}
            wanted = self.show_readouts and self._adapter.head_activation(self._output) != "linear"
            busy = _("deletion/insertion scores…")
            self.readout.value = f'<span class="cnnviz-busy">⏳ {busy}</span>' if wanted else ""
            return
        deletion, deletion_random, insertion, insertion_random = (float(v) for v in values)
        self.readouts = {"deletion": deletion, "deletion_random": deletion_random,
                         "insertion": insertion, "insertion_random": insertion_random}  # fmt: skip
        good = deletion < deletion_random and insertion > insertion_random
        verdict = (_("beats a random map on both") if good else
                   _("does not beat a random map on both: trust it less"))  # fmt: skip
        self.readout.value = _(
            "Deletion <b>{deletion:.3f}</b> (random {deletion_random:.3f}, lower is better) · "
            "Insertion <b>{insertion:.3f}</b> (random {insertion_random:.3f}, higher is better)"
            " — {verdict}"
        ).format(deletion=deletion, deletion_random=deletion_random, insertion=insertion,
                 insertion_random=insertion_random, verdict=verdict)  # fmt: skip

    def _drill(self) -> None:
        """Rank the channels at ``point`` and show the best ones over the photo."""
        if self.point is None:
            self.drill_box.layout.display = "none"
            self.drilled = []
            return
        self._drill_moved_at = time.monotonic()
        features, grads = self._gradients(self.class_index, self.layer)
        cell = image_cell(self.point, self._image.size, features.shape[:2])
        ranked = rank_channels(features, grads, cell)
        self.drilled = ranked
        best = [channel for channel, _ in ranked[:DRILL_CHANNELS]]
        y, x = self.point
        shown = ", ".join(f"{c} ({s:.3g})" for c, s in ranked[:DRILL_CHANNELS])
        self.drill_caption.value = _(
            "Channels of <b>{layer}</b> behind <b>{label}</b> at (y={y}, x={x}), cell {cell}: "
            "{channels} · click one to open it"
        ).format(layer=html.escape(self.layer), label=html.escape(self._label_of(self.class_index)),
                 y=y, x=x, cell=cell, channels=html.escape(shown))  # fmt: skip
        listed = ranked[:DRILL_LISTED]
        self.drill_picker.options = [("—", None), *[(f"{c} ({s:.3g})", c) for c, s in listed]]
        picked = self.drill_channel
        self.drill_picker.value = picked if picked in [c for c, _ in listed] else None
        self._show_drilled(features, best)
        self.drill_box.layout.display = ""
        if self.drill_ascent and self.drill_images is None:
            self._start_drill_ascent(self.layer, best)

    @property
    def drill_images(self) -> np.ndarray | None:
        """Filter-ascent images of the drilled channels shown, uint8 (n, S, S, 3), best first.

        ``None`` until they are computed (or with ``drill_ascent=False``). They are
        :func:`~cnnviz_widgets.ascent.filter_ascent`'s images with its defaults (the Filters
        tab's), for the layer and the best channels of ``drilled``.
        """
        best = tuple(channel for channel, _ in self.drilled[:DRILL_CHANNELS])
        if self._drill_images is None or self._drill_images[0] != (self.layer, best):
            return None
        return self._drill_images[1].copy()

    def _show_drilled(self, features: np.ndarray, best: list[int]) -> None:
        """Each channel's map over the photo, and its ascent image beside it once there."""
        tiles = self._channel_pictures(features, best)
        images = self.drill_images if self.drill_ascent else None
        if images is not None:
            side = tiles.shape[1]
            gap = np.full((len(best), side, 2, 3), 255, np.uint8)
            square = [render.as_rgb_uint8(resize_image(image, (side, side))) for image in images]
            tiles = np.concatenate([tiles, gap, np.stack(square)], axis=2)
        rgb, self._drill_layout = render.image_grid(tiles, best, columns=4, tile_min_side=1)
        self.drill_view.value = render.encode_png(rgb)

    def _start_drill_ascent(self, layer: str, best: list[int]) -> None:
        """Compute the ascent images of ``best`` on the drill-down's own worker (newest wins)."""
        wanted = (layer, tuple(best))
        self.drill_note.value = (
            '<span class="cnnviz-busy">⏳ '
            + _("filter-ascent images of these channels…")
            + "</span>"
        )

        def work(job: Any) -> np.ndarray:
            def paused_or_cancelled() -> bool:
                # Checked before each ascent step: wait while points are still being picked.
                while not job.cancelled and time.monotonic() - self._drill_moved_at < DRILL_QUIET:
                    time.sleep(DRILL_QUIET / 10)
                return job.cancelled

            # batch_size changes how the work is split, not the images (nor the cache key).
            images = filter_ascent(self._adapter, layer, best, progress=False,
                                   batch_size=DRILL_ASCENT_BATCH,
                                   cancel=paused_or_cancelled)  # fmt: skip
            return np.stack([render.as_rgb_uint8(image) for image in images])

        def done(images: np.ndarray) -> None:
            with self._draw_lock:
                best_now = tuple(channel for channel, _ in self.drilled[:DRILL_CHANNELS])
                if (self.layer, best_now) != wanted:
                    return  # the drill-down moved on
                self._drill_images = (wanted, images)
                self.drill_note.value = ""
                features, _grads = self._gradients(self.class_index, self.layer)
                self._show_drilled(features, best)

        def failed(exc: BaseException) -> None:  # the maps stay; only the images failed
            self.drill_note.value = f'<span class="cnnviz-error">⚠ {html.escape(str(exc))}</span>'

        if self._ascent_runner is None:
            self._ascent_runner = LatestWinsRunner(name="cnnviz-drill-ascent")
        self._ascent_runner.submit(work, on_done=done, on_error=failed)

    def _stop_drill_ascent(self, close: bool = False) -> None:
        if self._ascent_runner is not None:
            (self._ascent_runner.close if close else self._ascent_runner.cancel)()

    def _wait_drill_ascent(self, timeout: float | None) -> bool:
        return self._ascent_runner.wait(timeout) if self._ascent_runner is not None else True

    def stop(self) -> None:
        """Stop the background work, the drill-down's ascent images included."""
        self._stop_drill_ascent()
        super().stop()

    def close(self) -> None:
        """Stop background work (the drill-down's too) and close the widget."""
        self._stop_drill_ascent(close=True)
        super().close()

    def _channel_pictures(self, features: np.ndarray, channels: list[int]) -> np.ndarray:
        h, w = self._photo.shape[:2]
        size = (DRILL_TILE_HEIGHT, max(1, round(w * DRILL_TILE_HEIGHT / h)))
        photo = render.as_rgb_uint8(resize_image(self._photo, size))
        maps = render.normalize_channels(features[:, :, channels])
        maps = resize_image(maps, size).reshape(*size, len(channels))
        return np.stack([
            render.overlay(photo, np.clip(maps[:, :, i], 0, 1), cmap=self.cmap, alpha=self.alpha)
            for i in range(len(channels))
        ])  # fmt: skip

    def _trust_sections(self) -> list[Section]:
        """Readouts and the drill-down, for HTML exports."""
        sections = []
        if self.readouts:
            rows = [(_(label), f"{self.readouts[key]:.3f}")
                    for key, label in READOUT_LABELS.items() if key in self.readouts]
            sections.append(Section(_("Trust readouts"), table=rows,
                                    header=(_("score"), _("value"))))  # fmt: skip
        if self.drilled and self.drill_view.value:
            heading = _("Channels at point {point}").format(point=self.point)
            sections.append(Section(heading, self.drill_view.value,
                                    table=self.drilled[:DRILL_CHANNELS],
                                    header=(_("channel"), _("gradient × activation"))))  # fmt: skip
        return sections
