"""The attribution methods, each one registered object.

A method is a :class:`Method`: its name (what ``method=`` takes), a label for menus, the paper
it comes from and the function that computes it. The modules that implement methods register
them when they are imported (:mod:`.cam` the class activation maps, :mod:`.saliency` the
gradient maps), and the public functions look them up here: adding a method is writing its
``compute`` and one :func:`register` call in the module it belongs to, nothing else.

Examples
--------
>>> from cnnviz_widgets.explain import registry
>>> [m.name for m in registry.methods("cam")]
['gradcam', 'gradcam++', 'scorecam', 'layercam']
>>> registry.get("cam", "layercam").paper                      # doctest: +ELLIPSIS
'Jiang et al. 2021, ...'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import CnnVizError, check_choice
from ..i18n import N_
from ..i18n import gettext_ as _

__all__ = ["KINDS", "Method", "get", "methods", "register"]

Kind = Literal["cam", "saliency"]

#: The kinds of method, and the words an unknown name is reported with (the function's name).
KINDS: dict[str, str] = {"cam": N_("grad_cam method"), "saliency": N_("saliency method")}

# Insertion-ordered: methods() lists them in the order they were registered.
_METHODS: dict[str, dict[str, Method]] = {kind: {} for kind in KINDS}


@dataclass(frozen=True)
class Method:
    """One attribution method.

    Attributes
    ----------
    name : str
        What ``method=`` takes, e.g. ``"gradcam++"``.
    label : str
        How menus and reports show it, e.g. ``"Grad-CAM++"``.
    kind : {"cam", "saliency"}
        ``"cam"``: a class activation map of a layer, made by :func:`~.cam.grad_cam`.
        ``"saliency"``: a gradient of the class score at the input, made by
        :func:`~.saliency.saliency`.
    needs_layer : bool
        True when the method reads a feature map (every CAM, guided Grad-CAM).
    paper : str
        Authors, year and title of the paper that defines it.
    compute : callable
        ``compute(target, **options) -> numpy.ndarray``, with ``target`` a
        :class:`~.targets.Target`. A ``"cam"`` method returns the map at the layer's resolution,
        float32 (h, w), not yet scaled; a ``"saliency"`` method the signed gradient at the model
        input's resolution, float32 (H, W, C). Options a method does not use are ignored.
    """

    name: str
    label: str
    kind: Kind
    needs_layer: bool
    paper: str
    compute: Callable[..., Any]


def _kind(kind: str) -> dict[str, Method]:
    return _METHODS[check_choice(kind, KINDS, _("method kind"))]


def register(method: Method) -> Method:
    """Add ``method`` under its kind and name, and return it.

    Raises
    ------
    CnnVizError
        If the kind is unknown, or a method of that kind already has the name (a second
        registration would silently change what an existing ``method=`` means).
    """
    registered = _kind(method.kind)
    if method.name in registered:
        raise CnnVizError(
            _(
                "A {kind} method named {name!r} is already registered ({label}); pick another name."
            ).format(kind=method.kind, name=method.name, label=registered[method.name].label)
        )
    registered[method.name] = method
    return method


def get(kind: str, name: Any) -> Method:
    """The method of ``kind`` called ``name``.

    Raises
    ------
    CnnVizError
        For an unknown name, suggesting the closest registered ones and listing them all:
        ``Unknown grad_cam method 'gradcam+'. Did you mean 'gradcam++' or 'gradcam'? ...``.
    """
    registered = _kind(kind)
    return registered[check_choice(name, registered, _(KINDS[kind]))]


def methods(kind: str) -> tuple[Method, ...]:
    """Every method of ``kind``, in the order they were registered."""
    return tuple(_kind(kind).values())
