"""Progress and stopping for long work, one convention for the whole package.

Long computations (filter ascent, Score-CAM, SmoothGrad, batched methods, reports) take:

- ``progress``: ``True`` (default) shows a ``tqdm.auto`` bar — in a notebook a widget bar, in a
  terminal a text bar — but only once the work has run for a second, so quick calls stay
  silent; ``False`` shows nothing.
- ``cancel``: a ``threading.Event`` or a callable returning True to stop; the work checks it
  between batches (:func:`check`) and raises :class:`~cnnviz_widgets.errors.Cancelled`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import Cancelled

__all__ = ["Cancel", "bar", "check", "stopped"]

#: What ``cancel=`` accepts: a ``threading.Event``, a callable returning True to stop, or None.
Cancel = Any

#: Seconds of work before a bar appears: shorter calls print nothing.
DELAY = 1.0
#: Seconds between redraws of a bar (tqdm's own default).
MIN_INTERVAL = 0.1


def stopped(cancel: Cancel) -> bool:
    """True when ``cancel`` (an Event, a callable or None) asks to stop."""
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if is_set is not None else cancel())


def check(cancel: Cancel, what: str = "the computation") -> None:
    """Raise :class:`Cancelled` when ``cancel`` asks to stop; call it between batches."""
    if stopped(cancel):
        raise Cancelled(f"Stopped {what} on request.")


class _Silent:
    """A bar that shows nothing (``progress=False``)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_description_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def bar(total: int, description: str, progress: bool | Callable[..., Any] = True) -> Any:
    """A progress bar over ``total`` steps: ``tqdm.auto`` after :data:`DELAY` s, or silence.

    Use it as a context manager and call ``update(n)`` as work is done.
    """
    if progress is False or progress is None:
        return _Silent()
    from tqdm.auto import tqdm

    # tqdm's monitor thread would outlive the work (widgets check they leave no thread).
    tqdm.monitor_interval = 0

    return tqdm(
        total=total, desc=description, delay=DELAY, mininterval=MIN_INTERVAL, leave=False
    )
