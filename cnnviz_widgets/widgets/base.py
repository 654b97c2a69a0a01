"""The one scaffold every explorer stands on; each explorer then states only what differs.

:class:`ExplorerBase` owns what the explorers share:

- the model adapter and the array cache they read (:meth:`~ExplorerBase._adopt`, and the public
  :attr:`~ExplorerBase.adapter` and :attr:`~ExplorerBase.cache`);
- the :class:`~cnnviz_widgets.widgets.picture.Picture` (image + caption) behind ``rgb``/``png``;
- "newest request wins" background work (:meth:`~ExplorerBase._submit`, ``wait``, ``close``);
- clicks on a picture, in image pixels (:meth:`~ExplorerBase._on_click`);
- errors and notes shown in the widget, CSS classes, PNG/HTML export, a static PNG for saved
  notebooks.

An explorer says what it shows (its controls and layout), how it computes (``_refresh``), and
what a picture's caption says. Its state rules (layer ↔ channel ↔ page) live in :mod:`.state`.
"""

from __future__ import annotations

import base64
import contextlib
import html
import os
import re
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import ipywidgets as widgets
import numpy as np
import traitlets

from ..cache import ActivationCache, shared_cache
from ..engine.adapter import ModelAdapter, Preprocess, adapter_for
from ..errors import CnnVizError
from ..export import Section, html_page, write_file
from .background import Job, LatestWinsRunner
from .picture import Picture

T = TypeVar("T")


def click_pixel(event: dict) -> tuple[float, float] | None:
    """Where an ipyevents ``click`` on an ``Image`` landed, in the picture's own pixels.

    ipyevents reports ``dataX``/``dataY`` in image pixels whatever size the browser draws the
    image at; None when the event carries no position.
    """
    x, y = event.get("dataX"), event.get("dataY")
    if x is None or y is None:
        return None
    return float(x), float(y)


class ExplorerBase(widgets.VBox):
    """A VBox that shows one :class:`Picture`, a message line, and runs slow work in the background.

    Subclasses call :meth:`_adopt` first in ``__init__``, build their controls (``self.message``
    an ``HTML`` widget, ``self.picture`` a :class:`Picture`), pass their children to
    ``super().__init__`` and implement ``_refresh()`` (redraw for the current traits). Explorers
    with background work also implement ``_request()``.
    """

    error = traitlets.Unicode("", help="The message shown when the last request failed.")

    #: CSS class of the whole explorer, and the prefix of its controls' classes.
    _css_root: str = "cnnviz-explorer"
    _css_prefix: str = "cnnviz"
    #: Whether this explorer keeps arrays in an ActivationCache (the filter explorer's images
    #: have their own memory and disk tiers).
    _uses_cache: bool = True
    #: Name of the background worker's thread.
    _worker_name: str = "cnnviz-worker"

    picture: Picture | None = None
    _adapter: Any = None
    _cache: ActivationCache | None = None
    _runner: LatestWinsRunner | None = None
    # True while the explorer is being set up or several traits change together: observers
    # then skip their redraw, and one redraw follows at the end.
    _suspended: bool = True

    def __init__(self, children: Sequence[widgets.Widget] = (), **kwargs: Any) -> None:
        super().__init__(children=list(children), **kwargs)
        self.add_class(self._css_root)

    # ------------------------------------------------------------------ adapter and cache
    def _adopt(
        self, model: Any, *, preprocess: Preprocess | None = None, cache: Any = None
    ) -> ModelAdapter:
        """Take the shared adapter of ``model`` (or ``model`` itself, an adapter) and a cache.

        Call first in ``__init__``: controls are built from the adapter. ``cache`` defaults to
        the cache shared by every explorer in the kernel.
        """
        self._adapter = adapter_for(model, preprocess=preprocess)
        if self._uses_cache:
            self._cache = cache if cache is not None else shared_cache()
        # Background results and synchronous redraws take turns: a finished job may draw only
        # while its request is still the current one (a cache hit may have drawn a newer one).
        self._draw_lock = threading.RLock()
        return self._adapter

    @property
    def adapter(self) -> Any:
        """The :class:`~cnnviz_widgets.engine.adapter.ModelAdapter` this explorer reads."""
        return self._adapter

    @property
    def cache(self) -> Any:
        """The :class:`~cnnviz_widgets.cache.ActivationCache` this explorer's arrays live in."""
        return self._cache

    # ------------------------------------------------------------------ drawing
    def _refresh(self) -> None:
        """Redraw (or start computing) the view for the current traits."""

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """Change several traits with one redraw at the end instead of one per change."""
        previous, self._suspended = self._suspended, True
        try:
            yield
        finally:
            self._suspended = previous

    @property
    def rgb(self) -> np.ndarray:
        """The current view as uint8 (H, W, 3) (a copy)."""
        return self.picture.rgb

    @property
    def png(self) -> bytes:
        """The current view as PNG bytes."""
        return self.picture.png

    def _css(self, control: widgets.Widget, name: str) -> Any:
        """Give ``control`` the class ``<prefix>-<name>`` (browser tests and styles find it)."""
        control.add_class(f"{self._css_prefix}-{name}")
        return control

    # ------------------------------------------------------------------ clicks
    def _on_click(self, image: widgets.Image, callback: Callable[[float, float], Any]) -> None:
        """Call ``callback(x, y)`` with image-pixel coordinates when ``image`` is clicked.

        Needs ipyevents (and its front-end extension); without it the picture still works and
        only clicks are lost.
        """
        try:
            from ipyevents import Event
        except ImportError:
            self._click_events = None
            return

        def clicked(event: dict) -> None:
            pixel = click_pixel(event)
            if pixel is not None:
                callback(*pixel)

        self._click_events = Event(source=image, watched_events=["click"])
        self._click_events.on_dom_event(clicked)

    # ------------------------------------------------------------------ background work
    def _request(self) -> Hashable:
        """Everything that decides what a background job computes (compared for currency)."""
        raise NotImplementedError

    def _submit(
        self,
        work: Callable[[Job], Any],
        on_done: Callable[[Any], None],
        on_progress: Callable[[Job, Any], None] | None = None,
        *,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Job:
        """Run ``work(job)`` in the background; the newest request wins.

        The job cancels whatever ran before. Its callbacks (``on_error`` defaults to showing
        the error in the widget) run under the draw lock and only while ``_request()`` still
        equals what it was at submission: a result the controls have moved on from is dropped.
        """
        request = self._request()

        def current(callback: Callable[..., None]) -> Callable[..., None]:
            def guarded(*args: Any) -> None:
                with self._draw_lock:
                    if request == self._request():
                        callback(*args)

            return guarded

        if self._runner is None:
            self._runner = LatestWinsRunner(name=self._worker_name)
        return self._runner.submit(
            work,
            on_done=current(on_done),
            on_error=current(on_error or self._show_error),
            on_progress=current(on_progress) if on_progress is not None else None,
        )

    def _cancel_work(self) -> None:
        """Cancel the background job, if any (the view is being drawn another way)."""
        if self._runner is not None:
            self._runner.cancel()

    def wait(self, timeout: float | None = 120) -> bool:
        """Block until the view being computed is shown (for scripts and tests)."""
        return self._runner.wait(timeout) if self._runner is not None else True

    def close(self) -> None:
        """Stop background work and close the widget."""
        if self._runner is not None:
            self._runner.close()
        super().close()

    # ------------------------------------------------------------------ errors and notes
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

    def _clear_error(self, notes: Sequence[str] = ()) -> None:
        """Hide the error; keep showing ``notes`` (e.g. how the image was converted)."""
        shown = "".join(
            f'<div class="cnnviz-note" style="color:#555">ℹ {html.escape(note)}</div>'
            for note in notes
        )
        self.error = ""
        self.message.value = shown
        self.message.layout.display = "" if shown else "none"

    # ------------------------------------------------------------------ export
    #: Traits whose values an HTML export lists (each explorer names its own).
    _exported_traits: tuple[str, ...] = ()

    def _export_sections(self) -> list[Section]:
        """What an HTML export shows; by default the current picture and its caption."""
        caption = self.picture.caption.value if self.picture is not None else ""
        return [Section("View", self.png, _plain_text(caption))]

    def _export_title(self) -> str:
        model = getattr(self._adapter, "model", None)
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
