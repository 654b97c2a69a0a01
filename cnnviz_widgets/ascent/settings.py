"""The settings of an ascent: one frozen, validated value built once from keyword arguments.

:func:`~cnnviz_widgets.ascent.filter_ascent` and :func:`~cnnviz_widgets.ascent.optimize_image`
take the same keyword options (``size=128, steps=None, seed=0, ...``). They pass them on as
``**options`` to :meth:`Settings.from_options`, which fills in the defaults, checks every value
and returns a :class:`Settings`; :func:`takes_settings` shows the options with their defaults
in ``help()`` and ``inspect.signature``.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..errors import (
    CnnVizError,
    check_choice,
    check_int,
    check_number,
    check_positive,
    close_matches,
)
from ..i18n import gettext_ as _

__all__ = ["DEFAULT_STEPS", "OPTIONS", "Settings", "default_steps", "takes_settings"]

#: Optimisation steps when ``steps=None`` (capped by the ``CNNVIZ_MAX_STEPS`` variable).
DEFAULT_STEPS = 256

#: The public keyword options and their defaults, in the order the signatures list them.
OPTIONS: dict[str, Any] = {
    "size": 128,
    "steps": None,
    "seed": 0,
    "lr": 0.1,
    "param": "fft",
    "decorrelate": True,
    "jitter": None,
    "scale": (0.8, 1.25),
    "rotate": 15.0,
    "tv": 1.0,
    "l2": 0.0,
    "batch_size": 16,
    "every": 8,
}

_ANNOTATIONS = {
    "size": "int",
    "steps": "int | None",
    "seed": "int",
    "lr": "float",
    "param": "str",
    "decorrelate": "bool",
    "jitter": "int | None",
    "scale": "tuple[float, float] | float",
    "rotate": "float",
    "tv": "float",
    "l2": "float",
    "batch_size": "int",
    "every": "int",
}

PARAMS = ("fft", "pixel")

#: Settings that change how the work is split and reported, never the images.
_NOT_IN_RESULT = ("batch_size", "every")


def _max_steps_from_env() -> int | None:
    raw = os.environ.get("CNNVIZ_MAX_STEPS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise CnnVizError(
            _(
                "The environment variable CNNVIZ_MAX_STEPS={value!r} is not a whole number. Set "
                "it to a positive integer such as 32, or unset it."
            ).format(value=raw)
        ) from None
    if value < 1:
        raise CnnVizError(
            _(
                "The environment variable CNNVIZ_MAX_STEPS={value} must be at least 1. Set it to "
                "a positive integer such as 32, or unset it."
            ).format(value=value)
        )
    return value


def default_steps() -> int:
    """The number of steps ``steps=None`` means: 256, capped by ``$CNNVIZ_MAX_STEPS`` if set.

    Widgets that show a steps control should start it here rather than at
    :data:`DEFAULT_STEPS`, so that notebooks run in CI honour the cap.

    Raises
    ------
    CnnVizError
        When ``CNNVIZ_MAX_STEPS`` is set but is not a whole number ≥ 1.

    Examples
    --------
    >>> default_steps() <= DEFAULT_STEPS
    True
    """
    cap = _max_steps_from_env()
    return DEFAULT_STEPS if cap is None else min(DEFAULT_STEPS, cap)


@dataclass(frozen=True)
class Settings:
    """Every option of an ascent, validated (see ``filter_ascent`` for what each one does).

    Attributes
    ----------
    size : int
        Side of the square images, pixels (≥ 8).
    steps : int
        Adam steps (≥ 1; ``steps=None`` resolved to :func:`default_steps`).
    seed : int
        Seed of the starting images and random transforms (≥ 0).
    lr : float
        Adam learning rate (≥ 0).
    param : {"fft", "pixel"}
        Image parametrisation.
    decorrelate : bool
        Optimise in decorrelated colour space.
    jitter : int
        Largest random shift, pixels, 0 to size // 2 (``None`` resolved to size / 16).
    scale : (float, float)
        Smallest and largest random zoom, each ≥ 0.01.
    rotate : float
        Largest random rotation, degrees (≥ 0).
    tv, l2 : float
        Penalty weights (≥ 0); 0 leaves the penalty out of the traced graph.
    batch_size : int
        Images per traced step (≥ 1).
    every : int
        Steps between streamed frames (≥ 1).
    """

    size: int
    steps: int
    seed: int
    lr: float
    param: str
    decorrelate: bool
    jitter: int
    scale: tuple[float, float]
    rotate: float
    tv: float
    l2: float
    batch_size: int
    every: int

    @classmethod
    def from_options(cls, caller: str = "filter_ascent", **options: Any) -> Settings:
        """Settings from the public keyword options, defaults filled in, every value checked.

        Parameters
        ----------
        caller : str
            The public function's name, for the message about an unknown option.
        **options
            Any of :data:`OPTIONS`.

        Raises
        ------
        TypeError
            An option that does not exist (as Python does for a wrong keyword), with the
            closest names.
        CnnVizError
            A value of the wrong type or out of its range; the message names the option, the
            value and what is allowed.
        """
        unknown = [name for name in options if name not in OPTIONS]
        if unknown:
            name = unknown[0]
            matches = close_matches(name, OPTIONS)
            hint = (
                _(" Did you mean {matches}?").format(
                    matches=_(" or ").join(repr(m) for m in matches)
                )
                if matches
                else ""
            )
            raise TypeError(
                _("{caller}() got an unexpected keyword argument {name!r}.{hint}").format(
                    caller=caller, name=name, hint=hint
                )
            )
        o = {**OPTIONS, **options}
        size = check_size(o["size"])
        steps = default_steps() if o["steps"] is None else check_steps(o["steps"])
        param = check_choice(o["param"], PARAMS, "param")
        jitter = (
            max(1, round(size / 16)) if o["jitter"] is None else check_int(o["jitter"], "jitter")
        )
        if not 0 <= jitter <= size // 2:
            raise CnnVizError(
                _("jitter must be between 0 and size/2 = {limit} pixels; got {jitter}.").format(
                    limit=size // 2, jitter=jitter
                )
            )
        seed = check_int(o["seed"], "seed")
        if seed < 0:
            raise CnnVizError(_("seed must be ≥ 0; got {seed}.").format(seed=seed))
        return cls(
            size=size,
            steps=steps,
            seed=seed,
            lr=check_number(o["lr"], "lr", minimum=0.0),
            param=param,
            decorrelate=bool(o["decorrelate"]),
            jitter=jitter,
            scale=_zoom_range(o["scale"]),
            rotate=check_number(o["rotate"], "rotate", minimum=0.0),
            tv=check_number(o["tv"], "tv", minimum=0.0),
            l2=check_number(o["l2"], "l2", minimum=0.0),
            batch_size=check_positive(o["batch_size"], "batch_size"),
            every=check_positive(o["every"], "every"),
        )

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (not validated again: for internal trials)."""
        return dataclasses.replace(self, **changes)

    @property
    def result_key(self) -> tuple[tuple[str, Any], ...]:
        """(name, value) of every setting that changes the images: part of each cache key."""
        return tuple(
            (f.name, getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name not in _NOT_IN_RESULT
        )


def check_size(size: Any) -> int:
    """``size`` (pixels of the optimised image) as an int ≥ 8; the filter explorer uses it too."""
    size = check_int(size, "size")
    if size < 8:
        raise CnnVizError(_("size must be ≥ 8 pixels; got {size}. Try size=128.").format(size=size))
    return size


def check_steps(steps: Any) -> int:
    """``steps`` (optimisation steps) as an int ≥ 1; the filter explorer uses it too."""
    steps = check_int(steps, "steps")
    if steps < 1:
        raise CnnVizError(
            _(
                "steps must be ≥ 1; got {steps}. Use steps=None for the default "
                "({default}) or a positive number such as 128."
            ).format(steps=steps, default=DEFAULT_STEPS)
        )
    return steps


def _zoom_range(scale: Any) -> tuple[float, float]:
    if isinstance(scale, (int, float, np.number)) and not isinstance(scale, bool):
        scale = (1.0 / float(scale), float(scale)) if float(scale) >= 1 else (float(scale), 1.0)
    if not (isinstance(scale, (tuple, list)) and len(scale) == 2):
        raise CnnVizError(
            _(
                "scale must be a (smallest, largest) zoom pair such as (0.9, 1.1); got {value!r}."
            ).format(value=scale)
        )
    low, high = (check_number(s, "scale", minimum=0.01) for s in scale)
    if low > high:
        raise CnnVizError(
            _("scale must be (smallest, largest); got ({low}, {high}). Swap them.").format(
                low=low, high=high
            )
        )
    return (low, high)


_F = TypeVar("_F", bound=Callable[..., Any])


def takes_settings(function: _F) -> _F:
    """Show :data:`OPTIONS` as keyword parameters of ``function`` (which takes ``**options``).

    ``help()``, Jupyter's signature tooltip and ``inspect.signature`` then list ``size=128,
    steps=None, ...`` with their defaults, before the function's own keyword-only parameters.
    """
    signature = inspect.signature(function)
    own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    head = [p for p in own if p.kind is not p.KEYWORD_ONLY]
    tail = [p for p in own if p.kind is p.KEYWORD_ONLY]
    options = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=value, annotation=_ANNOTATIONS[name]
        )
        for name, value in OPTIONS.items()
    ]
    function.__signature__ = signature.replace(parameters=[*head, *options, *tail])
    return function
