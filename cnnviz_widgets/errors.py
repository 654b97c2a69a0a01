"""Error and warning types, and the helper that suggests close matches for a mistyped name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnVizError(ValueError):
    """Base class for the clear, actionable errors that cnnviz_widgets raises on bad input."""


class LayerError(CnnVizError, KeyError):
    """A layer name that does not exist, or a layer that cannot serve the requested view."""

    # KeyError would otherwise print the message wrapped in quotes.
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ImageError(CnnVizError):
    """An image that cannot be used: wrong rank or channels, empty, NaN/inf, unreadable."""


class ModelError(CnnVizError, TypeError):
    """An object that is not a usable Keras model (or a model shape we do not support yet)."""


class ImageConversionWarning(UserWarning):
    """The image was converted to fit the model (gray to RGB, RGB to gray, alpha dropped)."""


def close_matches(name: str, choices: Iterable[str], limit: int = 5) -> list[str]:
    """Return up to ``limit`` entries of ``choices`` that look like ``name``, best first.

    Matches on the whole path and on its last component, so ``"block3_conv"`` finds
    ``"vgg16/block3_conv1"``.
    """
    choices = list(choices)
    by_tail = {c.rsplit("/", 1)[-1]: c for c in choices}
    found = difflib.get_close_matches(name, choices, n=limit, cutoff=0.5)
    for tail in difflib.get_close_matches(
        name.rsplit("/", 1)[-1], list(by_tail), n=limit, cutoff=0.5
    ):
        if by_tail[tail] not in found:
            found.append(by_tail[tail])
    found += [c for c in choices if name and name in c and c not in found]
    return found[:limit]
