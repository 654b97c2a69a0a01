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
import inspect
import os
import re
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import render
from ..cache import ActivationCache, shared_cache
from ..engine.adapter import ModelAdapter, Preprocess, adapter_for
from ..errors import CnnVizError
from ..export import Section, html_page, write_file
from ..i18n import gettext_ as _
from .background import Job, LatestWinsRunner
from .frontend import has_feature
from .picture import Picture
from .snapshot import compose

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
    def _on_click(self, image: widgets.Image, callback: Callable[[float, float], Any]) -> bool:
        """Call ``callback(x, y)`` with image-pixel coordinates when ``image`` is clicked.

        Needs ipyevents and its front end (:mod:`.frontend` decides); without them nothing is
        wired and False is returned: the explorer then offers its stock stand-in.
        """
        self._click_events = None
        if not has_feature("ipyevents"):
            return False
        try:
            from ipyevents import Event
        except ImportError:
            return False

        def clicked(event: dict) -> None:
            pixel = click_pixel(event)
            if pixel is not None:
                callback(*pixel)

        self._click_events = Event(source=image, watched_events=["click"])
        self._click_events.on_dom_event(clicked)
        return True

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

    def _stop_button(self) -> widgets.Button:
        """A Stop button (class ``<prefix>-stop``) for the background work; disabled when idle.

        The explorer keeps it enabled while its ``busy`` trait is True (see :meth:`_link_busy`).
        """
        self.stop_button = widgets.Button(
            description=_("Stop"), icon="stop", disabled=True, tooltip=_("Stop the computation"),
            layout=widgets.Layout(width="80px"),
        )  # fmt: skip
        self._css(self.stop_button, "stop")
        self.stop_button.on_click(lambda _button: self.stop())
        return self.stop_button

    def _link_busy(self) -> None:
        """The Stop button is enabled exactly while the explorer is busy."""
        traitlets.dlink((self, "busy"), (self.stop_button, "disabled"), lambda busy: not busy)

    def stop(self) -> None:
        """Stop the background work now: it ends at its next check (one batch or step).

        The picture shown so far stays; changing a control starts a new computation.
        """
        self._cancel_work()
        with self._draw_lock:
            self._stopped()

    def _stopped(self) -> None:
        """Show that the work was stopped (explorers with a progress display override this)."""

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
        return [Section(_("View"), self.png, _plain_text(caption))]

    def _export_title(self) -> str:
        model = getattr(self._adapter, "model", None)
        return f"{type(self).__name__} · {model.name}" if model is not None else type(self).__name__

    def export_png(self, path: str | os.PathLike[str]) -> Path:
        """Write the current view to a PNG file; returns its path."""
        if not self.png:
            raise CnnVizError(
                _("Nothing is shown yet (the first picture is still being computed).")
            )
        return write_file(path, self.png)

    def export_html(self, path: str | os.PathLike[str]) -> Path:
        """Write a standalone HTML page of the current views and control values.

        The page needs no kernel and no internet: pictures are embedded, names are escaped.
        """
        state = {name: getattr(self, name) for name in self._exported_traits}
        sections = self._export_sections()
        if self._code_traits or type(self).to_code is not ExplorerBase.to_code:
            sections.append(Section(_("Code that recreates this view"), code=self.to_code()))
        return write_file(path, html_page(self._export_title(), sections, state))

    # ------------------------------------------------------------------ reproducible views
    #: Traits that make up the view, in the order :meth:`to_code` sets them (each explorer
    #: names its own): those the constructor takes go into the call, the others follow it.
    _code_traits: tuple[str, ...] = ()

    def to_code(self, name: str = "view") -> str:
        """Python that recreates the current view from the names ``model`` and ``image``.

        Run it where ``model`` and ``image`` are what this explorer was made from (and
        ``preprocess``, when the model needs one) and ``name`` holds an explorer whose state
        equals this one's.

        Examples
        --------
        >>> print(cam.to_code())                                    # doctest: +SKIP
        import cnnviz_widgets as cv
        <BLANKLINE>
        view = cv.CamExplorer(model, image, method='gradcam', layer='conv2', cmap='jet', alpha=0.5)
        view.class_index = 1
        """
        accepted = inspect.signature(type(self).__init__).parameters
        arguments = ["model", *(["image"] if "image" in accepted else [])]
        if getattr(self._adapter, "preprocess", None) is not None:
            arguments.append("preprocess=preprocess")
        later = []
        for trait in self._code_traits:
            value = getattr(self, trait)
            if trait in accepted:
                arguments.append(f"{trait}={value!r}")
            else:
                later.append(f"{name}.{trait} = {value!r}")
        call = f"{name} = cv.{type(self).__name__}({', '.join(arguments)})"
        return "\n".join(["import cnnviz_widgets as cv", "", call, *later]) + "\n"

    #: Seconds the static picture waits for background work in flight (CNNVIZ_STATIC_WAIT
    #: overrides it): a saved notebook then shows the result, not a blank.
    _static_wait: float = 0.0

    def _static_panels(self) -> list[np.ndarray]:
        """The pictures the widget shows, left to right (the photo first where there is one)."""
        return [self.picture.rgb] if self.picture is not None and self.picture.png else []

    def _static_caption(self) -> str:
        if self.picture is not None and self.picture.png:
            return self.picture.caption.value
        return _("computing the first picture…") if self._runner is not None else ""

    def static_rgb(self) -> np.ndarray:
        """What a saved notebook shows in place of the widget: pictures, caption and notes.

        Waits for background work in flight (up to a few seconds) so that its result is in.
        """
        wait = float(os.environ.get("CNNVIZ_STATIC_WAIT", self._static_wait))
        if wait > 0 and self._runner is not None and self._runner.busy:
            self._runner.wait(wait)
        with self._draw_lock:
            message = getattr(self, "message", None)
            notes = [message.value] if message is not None and message.value else []
            return compose(self._static_panels(), self._static_caption(), notes)

    def __repr__(self) -> str:
        model = getattr(self._adapter, "model", None)
        parts = [f"model={model.name!r}"] if model is not None else []
        parts += [f"{name}={getattr(self, name, None)!r}" for name in self._exported_traits]
        return f"{type(self).__name__}({', '.join(parts)})"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # A static picture beside the live widget: saved notebooks show the view on GitHub and
        # nbviewer, where no kernel runs; the text form is one readable line.
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = repr(self)
        png = render.encode_png(self.static_rgb())
        data["image/png"] = base64.b64encode(png).decode("ascii")
        return bundle


def _plain_text(markup: str) -> str:
    """A caption's HTML as plain text (tags dropped, entities decoded) for re-escaping."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))
