"""The picture an explorer shows: an image widget and its caption, updated by one call."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import render


class Picture:
    """An ``Image`` widget and the ``HTML`` caption that describes it, kept in step.

    :meth:`show` is the only way an explorer changes either, so the two never disagree in the
    kernel: ``rgb``/``png`` and ``caption.value`` always describe the same view.

    What reaches the browser is two widgets, so two comm messages, not one: :meth:`show` sets
    both values inside both widgets' ``hold_sync()``, so the caption's update and the image's
    update are sent back to back in the same kernel step (the caption's first), with no other
    message of this picture between them. A front end may still paint one a frame before the
    other; nothing here can make them one message.

    Parameters
    ----------
    image : ipywidgets.Image
        Where the PNG goes.
    caption : ipywidgets.HTML
        What the picture shows, as HTML (names in it must already be escaped).
    rgb : ndarray, optional
        What :attr:`rgb` returns before the first :meth:`show` (e.g. the photo a map will be
        laid over); :attr:`png` stays empty until then.

    Examples
    --------
    >>> picture = Picture(widgets.Image(format="png"), widgets.HTML())
    >>> picture.show(np.zeros((2, 2, 3), np.uint8), "<b>black</b>")
    >>> picture.png[:4], picture.caption.value
    (b'\\x89PNG', '<b>black</b>')
    """

    def __init__(
        self, image: widgets.Image, caption: widgets.HTML, *, rgb: np.ndarray | None = None
    ) -> None:
        self.image = image
        self.caption = caption
        # One tuple, replaced whole: a reader on another thread never sees a new rgb with an
        # old png.
        self._shown: tuple[np.ndarray, bytes] = (
            np.zeros((1, 1, 3), np.uint8) if rgb is None else rgb,
            b"",
        )

    @property
    def rgb(self) -> np.ndarray:
        """The picture shown, uint8 (H, W, 3) (a copy)."""
        return self._shown[0].copy()

    @property
    def png(self) -> bytes:
        """The picture shown, as the PNG bytes sent to the browser (empty before the first)."""
        return self._shown[1]

    def show(self, rgb: np.ndarray, caption: str) -> None:
        """Show ``rgb`` (uint8 H×W×3) with ``caption`` (HTML): both widgets in one call."""
        png = render.encode_png(rgb)
        self._shown = (rgb, png)
        with self.image.hold_sync(), self.caption.hold_sync():
            self.image.value = png
            self.caption.value = caption
