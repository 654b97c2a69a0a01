"""Colour: normalise activation maps to ``[0, 1]``, look them up in a colormap, blend overlays.

Plain numpy; matplotlib is imported lazily, only to read a colormap's table once per name.

Examples
--------
>>> import numpy as np
>>> apply_colormap(normalize_channels(np.array([[0.0, 2.0]])), "gray").tolist()
[[[0, 0, 0], [255, 255, 255]]]
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import CnnVizError, check_number, close_matches
from ..i18n import gettext_ as _

__all__ = [
    "apply_colormap",
    "as_rgb_uint8",
    "colormap_lut",
    "colormap_names",
    "normalize_channels",
    "overlay",
]

# Spellings people type that matplotlib may not register under that exact name.
_CMAP_ALIASES = {"grey": "gray", "grey_r": "gray_r"}


def _real_array(values: object, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise CnnVizError(
            _(
                "{what} must hold real numbers, got dtype {dtype}. Convert it first, e.g. "
                "np.asarray(x, dtype=np.float32)."
            ).format(what=what, dtype=array.dtype)
        )
    return array



def _channel_stack(maps: np.ndarray) -> np.ndarray:
    """``maps`` as a real (H, W, C) array; an (H, W) map counts as one channel."""
    array = _real_array(maps, "maps")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise CnnVizError(
            _(
                "maps must be (H, W, C), got shape {shape}. Drop the batch axis, e.g. maps[0]."
            ).format(shape=array.shape)
        )
    return array


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------


def normalize_channels(
    maps: np.ndarray, *, vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """Scale each channel of an activation map to ``[0, 1]``.

    Parameters
    ----------
    maps : np.ndarray
        ``(H, W)`` or ``(H, W, C)`` array of any real dtype. Never modified.
    vmin, vmax : float, optional
        Fixed value range shared by all channels. When omitted, each channel uses its own
        minimum (``vmin``) and/or maximum (``vmax``) over H and W. Values outside the range
        are clipped.

    Returns
    -------
    np.ndarray
        float32 array with the shape of ``maps`` and values in ``[0, 1]``. A constant channel
        (including an all-zero "dead" one) becomes all 0.0, so it reads as dead rather than as
        a division-by-zero artefact. NaN and ±inf entries become 0.0 and are ignored when
        finding a channel's range.

    Examples
    --------
    >>> normalize_channels(np.array([[1.0, 3.0], [5.0, 5.0]])).tolist()
    [[0.0, 0.5], [1.0, 1.0]]
    """
    array = _real_array(maps, "maps")
    if array.ndim not in (2, 3):
        raise CnnVizError(
            _(
                "maps must be (H, W) or (H, W, C), got shape {shape}. Drop the batch axis first, "
                "e.g. maps[0]."
            ).format(shape=array.shape)
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise CnnVizError(
            _("maps is empty (shape {shape}); pass a map with H, W >= 1.").format(shape=array.shape)
        )
    if vmin is not None:
        vmin = check_number(vmin, "vmin")
    if vmax is not None:
        vmax = check_number(vmax, "vmax")
    if vmin is not None and vmax is not None and not float(vmin) < float(vmax):
        raise CnnVizError(
            _(
                "vmin ({vmin}) must be smaller than vmax ({vmax}). Swap them or widen the range."
            ).format(vmin=vmin, vmax=vmax)
        )

    # float32 halves memory traffic; float64 and wide ints keep float64 so large values do not
    # collapse together before the range is taken.
    wide = array.dtype.itemsize > 4 or (array.dtype.kind in "iu" and array.dtype.itemsize == 4)
    work_dtype = np.float64 if wide else np.float32
    data = array.astype(work_dtype, copy=True)  # copy: the caller's array is never touched
    axes = (0, 1)
    finite = np.isfinite(data)
    all_finite = bool(finite.all())

    if vmin is None:
        lo = data.min(axis=axes) if all_finite else np.where(finite, data, np.inf).min(axis=axes)
    else:
        lo = np.full(data.shape[2:], vmin, dtype=work_dtype)
    if vmax is None:
        hi = data.max(axis=axes) if all_finite else np.where(finite, data, -np.inf).max(axis=axes)
    else:
        hi = np.full(data.shape[2:], vmax, dtype=work_dtype)

    # A channel with no finite value at all leaves lo=+inf / hi=-inf: treat it as dead.
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    empty = ~(np.isfinite(lo) & np.isfinite(hi))
    lo = np.where(empty, 0.0, lo)
    hi = np.where(empty, 0.0, hi)
    with np.errstate(over="ignore"):
        span = hi - lo  # float64: a float32 range of ±3e38 cannot overflow here
    if not np.isfinite(span).all():
        # Only a float64 range wider than ~1.8e308 gets here; halving everything keeps the
        # ratios and brings the span back into range.
        with np.errstate(under="ignore"):
            data *= 0.5
        lo, hi = lo * 0.5, hi * 0.5
        span = hi - lo
    with np.errstate(under="ignore"):  # 1/span of a ~1e308 range is subnormal: still usable
        scale = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)
    if work_dtype == np.float32 and bool((scale > 1e37).any()):
        # A range of a few float32 ulps near zero: 1/span would overflow float32.
        work_dtype = np.float64
        data = data.astype(np.float64)

    if not all_finite:
        # Bad entries take the channel minimum, which maps to exactly 0.
        np.copyto(data, lo.astype(work_dtype), where=~finite)
    with np.errstate(over="ignore", under="ignore"):
        # Overflow can only push a value past the top of its range; the clip below fixes it.
        data -= lo.astype(work_dtype)
        data *= scale.astype(work_dtype)
    np.clip(data, 0.0, 1.0, out=data)
    return data.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# colormaps
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _colormap_name_set() -> frozenset[str]:
    import matplotlib  # lazy: only needed to know which names exist

    names = set(matplotlib.colormaps)
    # Older matplotlib releases did not register every reversed map; _build_lut makes them.
    names |= {f"{n}_r" for n in names if not n.endswith("_r")}
    names |= set(_CMAP_ALIASES)
    return frozenset(names)


def colormap_names() -> list[str]:
    """List every usable colormap name, sorted, including each reversed ``'_r'`` form.

    Returns
    -------
    list of str
        A fresh list (safe to modify), e.g. ``['Accent', 'Accent_r', ..., 'viridis_r', ...]``.
    """
    return sorted(_colormap_name_set())


def _resolve_colormap_name(name: object) -> str:
    if not isinstance(name, str):
        raise CnnVizError(
            _(
                "cmap must be a colormap name string, got {kind}. Pass a name such as 'viridis' "
                "(see colormap_names())."
            ).format(kind=type(name).__name__)
        )
    names = _colormap_name_set()
    if name in names:
        return name
    # matplotlib names are case-sensitive ("Blues"), people are not ("blues").
    folded = [n for n in names if n.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    ordered = sorted(names)
    suggestions = close_matches(name, ordered) or close_matches(name.lower(), ordered)
    matches = ", ".join(repr(s) for s in suggestions)
    hint = _(" Did you mean: {matches}?").format(matches=matches) if suggestions else ""
    raise CnnVizError(
        _(
            "Unknown colormap {name!r}.{hint} Any matplotlib colormap name works, with '_r' for "
            "its reversed form."
        ).format(name=name, hint=hint)
    )


@functools.cache  # lru_cache without a size bound: ~180 names, 768 bytes each
def _build_lut(name: str) -> np.ndarray:
    import matplotlib  # lazy: matplotlib is only a source of colour tables here

    registry = matplotlib.colormaps
    if name in registry:
        cmap = registry[name]
    elif name in _CMAP_ALIASES:
        cmap = registry[_CMAP_ALIASES[name]]
    else:  # a '_r' name this matplotlib does not register itself
        base = name[:-2]
        cmap = registry[_CMAP_ALIASES.get(base, base)].reversed()
    rgba = np.asarray(cmap(np.linspace(0.0, 1.0, 256)), dtype=np.float64)
    lut = np.rint(np.clip(rgba[:, :3], 0.0, 1.0) * 255.0).astype(np.uint8)
    lut.setflags(write=False)  # shared by every caller through the cache
    return lut


def colormap_lut(name: str) -> np.ndarray:
    """Return the 256-entry RGB lookup table of a matplotlib colormap.

    Built from matplotlib once per name (``functools.lru_cache``) and returned read-only, so
    every caller shares one array safely.

    Parameters
    ----------
    name : str
        Any matplotlib colormap name, its ``'_r'`` reversed form, or ``'grey'``. A unique
        case-insensitive match is accepted too (``'blues'`` means ``'Blues'``).

    Returns
    -------
    np.ndarray
        ``(256, 3)`` uint8; row ``i`` is the colour for the value ``i / 255``.

    Raises
    ------
    CnnVizError
        For an unknown name, suggesting close matches.

    Examples
    --------
    >>> colormap_lut("gray")[[0, 255]].tolist()
    [[0, 0, 0], [255, 255, 255]]
    """
    return _build_lut(_resolve_colormap_name(name))


def _to_lut_index(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # huge values become inf, which the clip handles
        scaled = np.multiply(values, 255.0, dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    # NaN survives clip and would cast to an arbitrary index (with a warning); use 0 instead.
    scaled[np.isnan(scaled)] = 0.0
    return scaled.astype(np.uint8)


def apply_colormap(values: np.ndarray, cmap: str) -> np.ndarray:
    """Colour values in ``[0, 1]`` through a colormap.

    Parameters
    ----------
    values : np.ndarray
        Any shape ``(...)``; the LUT index is ``round(v * 255)`` clipped to ``0..255``
        (NaN counts as 0).
    cmap : str
        Colormap name, as for :func:`colormap_lut`.

    Returns
    -------
    np.ndarray
        uint8 array of shape ``(..., 3)``.

    Examples
    --------
    >>> apply_colormap(np.array([0.0, 1.0]), "gray").tolist()
    [[0, 0, 0], [255, 255, 255]]
    """
    lut = colormap_lut(cmap)
    index = _to_lut_index(_real_array(values, "values"))
    # np.take is several times faster than lut[index] fancy indexing for this gather.
    return np.take(lut, index, axis=0)


# --------------------------------------------------------------------------------------------
# pictures for display
# --------------------------------------------------------------------------------------------


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Return a picture as a contiguous uint8 ``(H, W, 3)`` RGB array for display.

    Parameters
    ----------
    image : np.ndarray
        ``(H, W)``, ``(H, W, 1)`` (grey, repeated into R, G, B) or ``(H, W, 3)``; uint8, or
        any real dtype on a 0–255 scale (rounded and clipped; NaN becomes 0). Floats in
        ``[0, 1]`` are *not* rescaled: multiply by 255 first.

    Returns
    -------
    np.ndarray
        uint8 ``(H, W, 3)``; ``image`` itself when it already is one and contiguous.

    Examples
    --------
    >>> as_rgb_uint8(np.array([[0.4, 300.0]])).tolist()
    [[[0, 0, 0], [255, 255, 255]]]
    """
    array = _real_array(image, "image")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise CnnVizError(
            _(
                "image must be (H, W), (H, W, 1) or (H, W, 3), got shape {shape}. Drop any batch "
                "axis (image[0]) or alpha channel (image[..., :3])."
            ).format(shape=array.shape)
        )
    if array.dtype != np.uint8:
        scaled = np.asarray(array, dtype=np.float32)
        if not np.isfinite(scaled).all():
            scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
        array = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


def overlay(
    image: np.ndarray, heat: np.ndarray, *, cmap: str = "jet", alpha: float = 0.5
) -> np.ndarray:
    """Blend a colormapped heat map over a picture.

    Parameters
    ----------
    image : np.ndarray
        uint8 ``(H, W, 3)`` picture (grey or float 0–255 also accepted, see
        :func:`as_rgb_uint8`).
    heat : np.ndarray
        ``(H, W)`` values in ``[0, 1]`` (e.g. a normalised, resized class activation map).
    cmap : str
        Colormap for the heat map.
    alpha : float
        Heat map weight in ``[0, 1]``: 0 shows only the picture, 1 only the heat map.

    Returns
    -------
    np.ndarray
        uint8 ``(H, W, 3)`` = ``round((1 - alpha) * image + alpha * colormap(heat))``.

    Examples
    --------
    >>> img = np.zeros((2, 2, 3), np.uint8)
    >>> overlay(img, np.ones((2, 2)), cmap="gray", alpha=0.5)[0, 0].tolist()
    [128, 128, 128]
    """
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (int, float, np.number)):
        raise CnnVizError(_("alpha must be a number in [0, 1], got {alpha!r}.").format(alpha=alpha))
    weight = float(alpha)
    if not 0.0 <= weight <= 1.0:  # also rejects NaN
        raise CnnVizError(
            _(
                "alpha must be in [0, 1], got {alpha!r}. Use 0 for the image only, 1 for the heat "
                "map only, e.g. alpha=0.5."
            ).format(alpha=alpha)
        )
    rgb = as_rgb_uint8(image)
    heat_array = _real_array(heat, "heat")
    if heat_array.ndim == 3 and heat_array.shape[2] == 1:
        heat_array = heat_array[:, :, 0]
    if heat_array.shape != rgb.shape[:2]:
        raise CnnVizError(
            _(
                "heat map shape {heat_array_shape} does not match image shape {shape}: they need "
                "the same (H, W). Resize the heat map to {value} before overlaying it."
            ).format(
                heat_array_shape=heat_array.shape,
                shape=np.asarray(image).shape,
                value=rgb.shape[:2],
            )
        )
    colour = apply_colormap(heat_array, cmap)
    # float32 is exact for 0–255 integers, so alpha 0 and 1 reproduce their input exactly.
    blended = rgb.astype(np.float32)
    blended *= np.float32(1.0 - weight)
    blended += np.float32(weight) * colour.astype(np.float32)
    np.rint(blended, out=blended)
    np.clip(blended, 0, 255, out=blended)
    return blended.astype(np.uint8)

