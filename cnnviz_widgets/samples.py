"""Six real photos that ship inside the package, so every example runs offline.

The files are in ``cnnviz_widgets/data/photos/``, byte for byte as scikit-image and
scikit-learn distribute them; their sources and licences (public domain, CC0, CC BY 2.0) are in
``cnnviz_widgets/data/PROVENANCE.md``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
from PIL import Image

from .errors import ImageError, close_matches
from .i18n import gettext_ as _

__all__ = ["sample_image", "sample_image_names"]

_FILES = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "china": "china.jpg",
    "coffee": "coffee.png",
    "flower": "flower.jpg",
    "rocket": "rocket.jpg",
}


def sample_image_names() -> list[str]:
    """Return the names accepted by :func:`sample_image`.

    Returns
    -------
    list of str
        ``["astronaut", "chelsea", "china", "coffee", "flower", "rocket"]``: real RGB photos
        stored inside the package, so they load offline.
    """
    return list(_FILES)


def sample_image(name: str) -> np.ndarray:
    """Return one of the bundled sample photos.

    Parameters
    ----------
    name : str
        One of :func:`sample_image_names`: ``"astronaut"``, ``"chelsea"`` (a cat), ``"china"``
        (a temple), ``"coffee"`` (a cup of espresso), ``"flower"`` or ``"rocket"``.

    Returns
    -------
    numpy.ndarray
        A new, writable ``uint8`` array of shape ``(H, W, 3)``; changing it changes no later call.

    Raises
    ------
    ImageError
        If ``name`` is not a sample name (the message lists the names and close matches).
    """
    filename = _FILES.get(name) if isinstance(name, str) else None
    if filename is None:
        hint = ""
        if isinstance(name, str):
            matches = close_matches(name.lower(), _FILES)
            if matches:
                hint = _(" Did you mean {matches}?").format(
                    matches=_(" or ").join(repr(m) for m in matches)
                )
        raise ImageError(
            _(
                "Unknown sample image {name!r}.{hint} Available: {value}. For your own picture use "
                "load_image(path)."
            ).format(name=name, hint=hint, value=", ".join(_FILES))
        )
    photo = resources.files("cnnviz_widgets") / "data" / "photos" / filename
    with photo.open("rb") as file, Image.open(file) as picture:
        return np.array(picture.convert("RGB"), dtype=np.uint8, order="C", copy=True)
