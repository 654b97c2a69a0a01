"""What every explorer widget shares: its picture, its message line, a PNG for saved notebooks."""

from __future__ import annotations

import base64
import contextlib
import html
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import render
from ..errors import CnnVizError
from ..export import Section, html_page, write_file

T = TypeVar("T")


class ExplorerBase(widgets.VBox):
    """A VBox that shows one picture (``rgb``/``png``) and a message line for errors and notes.

    Subclasses assign ``self.message`` (an ``HTML`` widget) and call :meth:`_show_picture`.
    """

    error = traitlets.Unicode("", help="The message shown when the last request failed.")

    _rgb: np.ndarray = np.zeros((1, 1, 3), np.uint8)
    _png: bytes = b""
    # True while the explorer is being set up or several traits change together: observers
    # then skip their redraw, and one redraw follows at the end.
    _suspended: bool = True

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """Change several traits with one redraw at the end instead of one per change."""
        previous, self._suspended = self._suspended, True
        try:
            yield
        finally:
            self._suspended = previous

    def _show_picture(self, rgb: np.ndarray, png: bytes) -> None:
        self._rgb = rgb
        self._png = png

    def _show_error(self, exc: BaseException) -> None:
        """Show ``exc`` in the widget (the kernel keeps working; the last picture stays)."""
        self.error = str(exc)
        self.message.value = (
            f'<div class="cnnviz-error" style="color:#b00020">⚠ {html.escape(str(exc))}</div>'
        )
        self.message.layout.display = ""

    def _checked(self, check: Callable[[], T]) -> T:
        """Run a validation: a CnnVizError is shown in the widget, then raised to the caller."""
        try:
            return check()
        except CnnVizError as exc:
            self._show_error(exc)
            raise

    def _refuse(self, message: str) -> NoReturn:
        """Show ``message`` in the widget and raise it as a CnnVizError."""
        exc = CnnVizError(message)
        self._show_error(exc)
        raise exc

    # Explorers with a ``layer`` (and a ``channel``) trait share these rules; traitlets applies
    # a base class's validators to the traits its subclasses declare.
    @traitlets.validate("layer")
    def _valid_layer(self, proposal: dict) -> str:
        return self._checked_layer(proposal["value"])

    @traitlets.validate("channel")
    def _valid_channel(self, proposal: dict) -> int:
        return self._checked_channel(proposal["value"])

    @traitlets.validate("page")
    def _valid_page(self, proposal: dict) -> int:
        page = int(proposal["value"])
        self._checked(lambda: render.page_channels(self._channel_count(), page, self._page_size))
        return page

    def _link_page_slider(self, slider: widgets.IntSlider) -> None:
        """Link ``page`` to a slider that counts from 1, as people do ("page 1 of 8")."""
        traitlets.link(
            (self, "page"), (slider, "value"), transform=(lambda p: p + 1, lambda v: v - 1)
        )

    #: Channels a page shows, for explorers with a ``page`` trait.
    _page_size: int = 64

    def _checked_layer(self, name: str) -> str:
        """A layer name resolved to its path by the explorer's adapter, or the error shown."""
        return self._checked(lambda: self._adapter.resolve_layer(name))

    def _checked_channel(self, value: int) -> int:
        """``value`` if the current layer has that channel, else the range is shown and raised."""
        value, count = int(value), self._channel_count()
        if not 0 <= value < count:
            self._refuse(
                f"Channel {value} is out of range: layer {self.layer!r} has {count} channels "
                f"(0–{count - 1})."
            )
        return value

    def _checked_colormap(self, name: str, picker: widgets.Dropdown) -> str:
        """Validate a colormap name; a valid one missing from ``picker`` joins its options."""
        self._checked(lambda: render.colormap_lut(name))
        if name not in picker.options:
            picker.options = [*picker.options, name]
        return name

    def _clear_error(self, notes: Sequence[str] = ()) -> None:
        """Hide the error; keep showing ``notes`` (e.g. how the image was converted)."""
        shown = "".join(
            f'<div class="cnnviz-note" style="color:#555">ℹ {html.escape(note)}</div>'
            for note in notes
        )
        self.error = ""
        self.message.value = shown
        self.message.layout.display = "" if shown else "none"

    @property
    def adapter(self) -> Any:
        """The :class:`~cnnviz_widgets.engine.adapter.ModelAdapter` this explorer reads."""
        return self._adapter

    @property
    def cache(self) -> Any:
        """The :class:`~cnnviz_widgets.cache.ActivationCache` this explorer's arrays live in."""
        return getattr(self, "_cache", None)

    @property
    def rgb(self) -> np.ndarray:
        """The current view as uint8 (H, W, 3) (a copy)."""
        return self._rgb.copy()

    @property
    def png(self) -> bytes:
        """The current view as PNG bytes."""
        return self._png

    # ------------------------------------------------------------------ export
    #: Traits whose values an HTML export lists (each explorer names its own).
    _exported_traits: tuple[str, ...] = ()

    def _export_sections(self) -> list[Section]:
        """What an HTML export shows; by default the current picture and its caption."""
        caption = getattr(self, "caption", None)
        return [Section("View", self.png, _plain_text(caption.value) if caption else "")]

    def _export_title(self) -> str:
        model = getattr(getattr(self, "_adapter", None), "model", None)
        return f"{type(self).__name__} · {model.name}" if model is not None else type(self).__name__

    def export_png(self, path: str | os.PathLike[str]) -> Path:
        """Write the current view to a PNG file; returns its path."""
        if not self.png:
            raise CnnVizError("Nothing is shown yet (the first picture is still being computed).")
        return write_file(path, self.png)

    def export_html(self, path: str | os.PathLike[str]) -> Path:
        """Write a standalone HTML page of the current views and control values.

        The page needs no kernel and no internet: pictures are embedded, names are escaped.
        """
        state = {name: getattr(self, name) for name in self._exported_traits}
        return write_file(path, html_page(self._export_title(), self._export_sections(), state))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # A static picture beside the live widget: saved notebooks show the view on GitHub and
        # nbviewer, where no kernel runs.
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if self.png:
            data["image/png"] = base64.b64encode(self.png).decode("ascii")
        return bundle


def _plain_text(markup: str) -> str:
    """A caption's HTML as plain text (tags dropped, entities decoded) for re-escaping."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))
