"""Error and warning types, and the helper that suggests close matches for a mistyped name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import numpy as np

from .i18n import gettext_ as _


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


class Cancelled(Exception):
    """Long work stopped on request (the Stop button, a newer request, ``cancel=``)."""


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


# ------------------------------------------------------------------------------------------
# Shared validators: every public function checks its arguments with these, so the same
# mistake gets the same words everywhere ("<what> must be …; got …", "<what> N is out of
# range: <owner> has C <things> (0–C-1).").
# ------------------------------------------------------------------------------------------
def check_int(value: Any, what: str, *, error: type[CnnVizError] = CnnVizError) -> int:
    """``value`` as an int; bools, floats and strings are refused with a message naming ``what``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise error(
            _("{what} must be an int; got {value!r} of type {kind}.").format(
                what=what, value=value, kind=type(value).__name__
            )
        )
    return int(value)


def check_positive(value: Any, what: str, *, error: type[CnnVizError] = CnnVizError) -> int:
    """``value`` as an int ≥ 1."""
    number = check_int(value, what, error=error)
    if number < 1:
        raise error(_("{what} must be ≥ 1; got {number}.").format(what=what, number=number))
    return number


def check_index(
    value: Any,
    count: int | None,
    what: str,
    owner: str,
    *,
    things: str | None = None,
    error: type[CnnVizError] = CnnVizError,
) -> int:
    """``value`` as an index into ``count`` things (``None``: the count is unknown, ≥ 0 only).

    ``check_index(70, 64, "channel", "layer 'features'")`` raises "channel 70 is out of range:
    layer 'features' has 64 channels (0–63)."
    """
    index = check_int(value, what, error=error)
    # Call sites pass ``things`` already translated; the plural of an English ``what`` is only
    # a fallback for callers outside the package.
    things = things or f"{what}s"
    if index < 0 or (count is not None and index >= count):
        if count:
            message = _("{what} {index} is out of range: {owner} has {count} {things} (0–{last}).")
        else:
            message = _("{what} {index} is out of range: {owner} has {count} {things}.")
        raise error(
            message.format(
                what=what, index=index, owner=owner, count=count or 0, things=things,
                last=(count or 0) - 1,
            )
        )
    return index


def check_number(
    value: Any, what: str, *, minimum: float | None = None, error: type[CnnVizError] = CnnVizError
) -> float:
    """``value`` as a finite float, optionally ≥ ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise error(_("{what} must be a number; got {value!r}.").format(what=what, value=value))
    number = float(value)
    if not np.isfinite(number) or (minimum is not None and number < minimum):
        if minimum is None:
            message = _("{what} must be a finite number; got {value!r}.")
        else:
            message = _("{what} must be a finite number ≥ {minimum:g}; got {value!r}.")
        raise error(message.format(what=what, minimum=minimum, value=value))
    return number


def check_choice(
    value: Any, choices: Iterable[str], what: str, *, error: type[CnnVizError] = CnnVizError
) -> str:
    """``value`` if it is one of ``choices``, else an error that suggests the closest ones."""
    options = list(choices)
    if value in options:
        return value
    matches = close_matches(str(value).lower(), options) if isinstance(value, str) else []
    choices = ", ".join(repr(m) for m in options)
    # TRANSLATORS: joins the suggested names: 'a' or 'b' or 'c'.
    separator = _(" or ")
    if matches:
        message = _("Unknown {what} {value!r}. Did you mean {matches}? Choose one of {choices}.")
    else:
        message = _("Unknown {what} {value!r}. Choose one of {choices}.")
    raise error(
        message.format(
            what=what,
            value=value,
            matches=separator.join(repr(m) for m in matches),
            choices=choices,
        )
    )


# ------------------------------------------------------------------------------------------
# Messages built in one place, so that they are translated through the catalog (English is
# the source text, byte-identical to what the tests assert).
# ------------------------------------------------------------------------------------------
def no_layer_message(
    layer: str, model_name: str, choices: list[str], *, spatial: bool = True
) -> str:
    """The message for a layer name the model does not have, with the closest names.

    ``choices`` are the layers with feature maps (``spatial=True``) or all the model's layers;
    the message says which it counted.
    """
    matches = close_matches(layer, choices)
    hint = (
        _(" Did you mean: {matches}?").format(matches=", ".join(repr(m) for m in matches))
        if matches
        else ""
    )
    if not spatial:
        return _(
            "No layer {layer!r} in model {model!r}.{hint} The model has {count} layers in all; "
            "layer_paths(model) lists those with feature maps."
        ).format(layer=layer, model=model_name, hint=hint, count=len(choices))
    return _(
        "No layer {layer!r} in model {model!r}.{hint} See layer_paths(model) for all {count} "
        "layers with feature maps."
    ).format(layer=layer, model=model_name, hint=hint, count=len(choices))


def not_spatial_message(path: str, class_name: str, shape: Any, last: str) -> str:
    """The message for a layer whose output is not a (height, width, channels) map."""
    return _(
        "Layer {path!r} ({kind}) has output shape {shape}, not a spatial (height, width, "
        "channels) feature map, so there is nothing to draw. Pick a convolutional layer, e.g. "
        "the last one: {last!r}."
    ).format(path=path, kind=class_name, shape=shape, last=last)


def not_built_message(model_name: str) -> str:
    """The message for a Sequential model whose layers have no shapes yet."""
    return _(
        "Sequential model {model!r} was never built, so its layers have no shapes yet. "
        "Pass an image first (any call that takes one builds it), or call "
        "model.build((None, height, width, channels))."
    ).format(model=model_name)


def layer_type_message(example: str, layer: Any) -> str:
    """The message for a layer given as something other than its path."""
    return _("A layer is named by its path (a str, e.g. {value!r}); got {kind}.").format(
        value=example, kind=type(layer).__name__
    )


def ambiguous_layer_message(layer: str, tails: list[str]) -> str:
    """The message for a bare layer name that several nested layers carry."""
    return _("Layer name {layer!r} is ambiguous: {tails}. Use the full path.").format(
        layer=layer, tails=tails
    )
