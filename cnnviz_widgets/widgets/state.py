"""Explorer state as traitlets: ``@validate``/``@observe`` pairs keep layer ↔ channel ↔ page true.

The pattern is ipywidgets' ``_Selection`` and ``_BoundedInt``: a validator refuses a value that
does not fit the other traits (with a message shown in the widget), and an observer moves the
dependent traits when the one they depend on changes. The ranges themselves are traits
(``_channels``, ``_pages``) that sliders follow through ``dlink``, as a slider's ``max`` does.

Why mixins on the explorer and not a separate ``HasTraits`` object: ``layer``, ``channel``,
``page`` and ``cmap`` are the explorers' public traits. People (and the tests) ``observe`` them,
``traitlets.link`` them to other widgets, and set them as attributes; a state object held by
the explorer would need a forwarding property and a second ``link`` for each, and ``ex.observe
(..., names="channel")`` would silently stop firing. So the traits stay on the explorer, declared
once here together with their rules, and each explorer mixes in the state it has:
``ActivationExplorer`` and ``FilterExplorer`` a :class:`PagedChannelState`, ``CamExplorer`` a
:class:`LayerState`. The mixins lean on :class:`~cnnviz_widgets.widgets.base.ExplorerBase` for
``adapter``, ``_checked`` (show an error, then raise), ``_held`` and ``_refresh``.
"""

from __future__ import annotations

import contextlib

import ipywidgets as widgets
import traitlets

from .. import render
from ..errors import check_index
from ..i18n import gettext_ as _


class LayerState(traitlets.HasTraits):
    """A ``layer`` trait that holds a full layer path, resolved by the explorer's adapter."""

    layer = traitlets.Unicode(help="Path of the layer shown.")

    @traitlets.validate("layer")
    def _valid_layer(self, proposal: dict) -> str:
        return self._checked(lambda: self.adapter.resolve_layer(proposal["value"]))


class ColormapState(traitlets.HasTraits):
    """A ``cmap`` trait: any matplotlib colormap; names missing from ``cmap_dropdown`` join it."""

    cmap = traitlets.Unicode("viridis", help="Matplotlib colormap name.")

    @traitlets.validate("cmap")
    def _valid_cmap(self, proposal: dict) -> str:
        name = proposal["value"]
        self._checked(lambda: render.colormap_lut(name))
        picker = getattr(self, "cmap_dropdown", None)
        if picker is not None and name not in picker.options:
            picker.options = [*picker.options, name]
        return name


class PagedChannelState(LayerState):
    """``layer``, a ``channel`` of it, and a ``page`` of its channels, always consistent.

    - ``channel`` is in ``0 .. channels - 1`` and ``page`` in ``0 .. pages - 1`` of the layer
      (validators; the message names the range);
    - a new layer moves ``channel`` (to its last channel) and ``page`` into its range before
      anything is drawn;
    - with ``_page_follows_channel`` the page is always the one holding ``channel`` (moving one
      moves the other); without it the page only pages through a grid.

    After a change is made consistent, one hook redraws: ``_after_layer``,
    ``_after_channel`` or ``_after_page`` (all ``_refresh`` unless overridden).
    """

    channel = traitlets.Int(0, help="Channel shown.")
    page = traitlets.Int(0, help="Page of channels, counting from 0.")
    # The ranges, as traits: sliders follow them through dlink (see _link_range).
    _channels = traitlets.Int(0, help="Channels of the current layer.")
    _pages = traitlets.Int(1, help="Pages the current layer's channels fill.")

    #: Channels a page shows.
    _page_size: int = 64
    #: True: ``page`` is the page that holds ``channel``; False: they move independently.
    _page_follows_channel: bool = False
    _range_controls: tuple[widgets.Widget, ...] = ()

    def _count_channels(self, layer: str) -> int:
        """How many channels ``layer`` has (the explorer knows how to ask)."""
        raise NotImplementedError

    def _link_range(
        self, channel_slider: widgets.IntSlider, page_slider: widgets.IntSlider
    ) -> None:
        """Link the traits to their sliders: values both ways, ranges from the traits.

        The page slider counts from 1, as people do ("page 1 of 8"); ``page`` counts from 0.
        Call once the traits hold valid values: a link copies them into the controls at once.
        """
        traitlets.dlink((self, "_channels"), (channel_slider, "max"), lambda c: max(c - 1, 0))
        traitlets.dlink((self, "_pages"), (page_slider, "max"))
        traitlets.link((self, "channel"), (channel_slider, "value"))
        traitlets.link(
            (self, "page"), (page_slider, "value"), transform=(lambda p: p + 1, lambda v: v - 1)
        )
        self._range_controls = (channel_slider, page_slider)

    def _page_range(self) -> range:
        """The channels on the current page."""
        return render.page_channels(self._channels, self.page, self._page_size)

    # ------------------------------------------------------------------ validators
    @traitlets.validate("channel")
    def _valid_channel(self, proposal: dict) -> int:
        value, count = proposal["value"], self._channels
        owner = _("layer {layer!r}").format(layer=self.layer)
        return self._checked(
            lambda: check_index(value, count, _("Channel"), owner, things=_("channels"))
        )

    @traitlets.validate("page")
    def _valid_page(self, proposal: dict) -> int:
        # The check (and words) of render.page_channels, which the Python functions use.
        value = proposal["value"]
        self._checked(lambda: render.page_channels(self._channels, value, self._page_size))
        return int(value)

    # ------------------------------------------------------------------ observers
    @traitlets.observe("layer")
    def _layer_moved(self, change: dict) -> None:
        count = self._count_channels(self.layer)
        with self._held(), contextlib.ExitStack() as synced:
            for control in self._range_controls:  # each slider's value and range: one message
                synced.enter_context(control.hold_sync())
            # The channel range first: the channel slider clamps its value to it (the page
            # follows), and only then may the page range shrink under the page slider.
            self._channels = count
            if self.channel >= count:
                self.channel = max(count - 1, 0)
            pages = render.page_count(count, self._page_size)
            self._pages = pages
            if self._page_follows_channel:
                self.page = self.channel // self._page_size
            elif self.page >= pages:
                self.page = pages - 1
        self._after_layer()

    @traitlets.observe("channel")
    def _channel_moved(self, change: dict) -> None:
        if self._page_follows_channel:
            page = self.channel // self._page_size
            if page != self.page:
                self.page = page  # its observer redraws
                return
        self._after_channel()

    @traitlets.observe("page")
    def _page_moved(self, change: dict) -> None:
        if self._page_follows_channel and self.channel not in self._page_range():
            with self._held():
                self.channel = self.page * self._page_size
        self._after_page()

    # ------------------------------------------------------------------ redraw hooks
    def _after_layer(self) -> None:
        self._refresh()

    def _after_channel(self) -> None:
        self._refresh()

    def _after_page(self) -> None:
        self._refresh()
