"""Images in, images out: input validation, scaling, fingerprints, resizing, channels.

:func:`load_image` is the one place where user input becomes an image array; everything else in
the package receives its output: ``float32``, shape ``(H, W, C)`` with ``C`` 1 or 3, values on a
0-255 scale, C-contiguous, and never sharing memory with what the user passed in.

Only numpy and Pillow are imported here. The bundled sample photos are in
:mod:`cnnviz_widgets.samples`.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageConversionWarning, ImageError
from .i18n import N_
from .i18n import gettext_ as _

__all__ = [
    "PreparedImage",
    "image_key",
    "load_image",
    "resize_image",
    "to_channels",
]

# ITU-R BT.601 luma weights, the ones PIL's convert("L") uses too.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

_ACCEPTED = N_(
    "a numpy array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), a file path "
    "(str or pathlib.Path) or a PIL.Image.Image"
)


def _sample_names() -> list[str]:
    from .samples import sample_image_names

    return sample_image_names()


def _warn(message: str) -> None:
    # stacklevel 3: point at the caller of the public function, not at this helper.
    warnings.warn(message, ImageConversionWarning, stacklevel=3)


def _from_pil(picture: Image.Image) -> np.ndarray:
    """Turn a PIL image of any mode into an (H, W), (H, W, 3) or (H, W, 4) numpy array.

    Gray + alpha comes back as (H, W, 2) so that :func:`load_image` can drop the alpha channel
    (and warn) in one place for both gray and colour images.
    """
    mode = picture.mode
    if mode in ("1", "L", "LA", "F") or mode.startswith("I"):
        # Gray stays gray: 1-bit and 8-bit become uint8, 16-bit ("I;16") uint16, "I" int32 and
        # "F" float32, which load_image then scales by dtype.
        return np.asarray(picture.convert("L") if mode == "1" else picture)
    if mode == "La":  # premultiplied alpha: undo it as Pillow does, then treat as LA
        return np.asarray(picture.convert("LA"))
    has_alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in picture.info)
    try:
        return np.asarray(picture.convert("RGBA" if has_alpha else "RGB"))
    except (ValueError, OSError) as exc:
        raise ImageError(
            _(
                "Cannot convert a PIL image of mode {mode!r} to RGB ({error}). Convert it "
                "yourself first, e.g. image.convert('RGB')."
            ).format(mode=mode, error=exc)
        ) from exc


def _open(path: str | os.PathLike[str]) -> np.ndarray:
    file = Path(path).expanduser()
    if not file.is_file():
        hint = ""
        if isinstance(path, str) and path in _sample_names():
            hint = _(" For the bundled photo use sample_image({name!r}).").format(name=path)
        elif file.is_dir():
            hint = _(" It is a folder; pass the path of one image file.")
        if file.is_absolute():
            message = _("No image file at '{file}'.{hint}")
        else:
            message = _(
                "No image file at '{file}' (relative to the working directory '{cwd}').{hint}"
            )
        raise ImageError(message.format(file=file, cwd=Path.cwd(), hint=hint))
    try:
        with Image.open(file) as picture:
            # Phone photos store their rotation in EXIF; apply it so the model sees them upright.
            upright = ImageOps.exif_transpose(picture)
            upright.load()
            return _from_pil(upright)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(
            _(
                "Could not read '{file}' as an image ({kind}: {error}). Pass a PNG, JPEG or "
                "other file that Pillow can open."
            ).format(file=file, kind=type(exc).__name__, error=exc)
        ) from exc


def _shape_error(shape: tuple[int, ...]) -> ImageError:
    if len(shape) == 4:
        hint = _(" Pass one image at a time.")
    elif len(shape) < 2:
        hint = _(" Reshape a flattened image to (H, W) or (H, W, 3) first.")
    else:
        hint = ""
    return ImageError(
        _(
            "Expected an image of shape (H, W), (H, W, 1) or (H, W, 3); got an array of shape "
            "{shape}.{hint}"
        ).format(shape=shape, hint=hint)
    )


#: Floats a little outside 0-255 (a resize's overshoot) are still read as 0-255 and clipped.
_FLOAT_SLACK = 0.5


def _scale_to_255(array: np.ndarray) -> float:
    """The factor that brings ``array`` to the 0-255 scale, read from its dtype and values.

    * bool: 255 (``True`` is white);
    * 8-bit integers: 1; 16-bit unsigned (PIL ``"I;16"``, 16-bit PNG/TIFF): 255/65535;
    * other integers (PIL ``"I"`` holds int32): 1 when every value is in 0-255, 255/65535
      when every value is in 0-65535 (16-bit data in a wider type);
    * floats: 255 when every value is in [0, 1], 1 when in [0, 255] (±0.5 of slack).

    Raises
    ------
    ImageError
        Negative integers, integers beyond 16 bits, floats on neither scale (e.g. a
        normalised −1…1 or mean-subtracted image): the message gives the range found and how
        to bring it to 0-255.
    """
    dtype = array.dtype
    if dtype == np.bool_:
        return 255.0
    if dtype.kind in "ui" and dtype.itemsize == 1 and (dtype.kind == "u" or array.min() >= 0):
        return 1.0
    if dtype.kind == "u" and dtype.itemsize == 2:
        return 255.0 / 65535.0
    low, high = float(array.min()), float(array.max())
    if dtype.kind in "ui":
        if low >= 0 and high <= 255:
            return 1.0
        if low >= 0 and high <= 65535:
            return 255.0 / 65535.0
        raise ImageError(
            _(
                "The {dtype} image's values run from {low:g} to {high:g}: neither 8-bit (0-255) "
                "nor 16-bit (0-65535). Bring them to 0-255 first, e.g. "
                "np.interp(image, (image.min(), image.max()), (0, 255))."
            ).format(dtype=dtype, low=low, high=high)
        )
    if low >= 0.0 and high <= 1.0:
        return 255.0
    if low >= -_FLOAT_SLACK and high <= 255.0 + _FLOAT_SLACK:
        return 1.0
    hint = (
        _("(image + 1) * 127.5 for an image normalised to -1…1")
        if low >= -1.0 and high <= 1.0
        else "np.interp(image, (image.min(), image.max()), (0, 255))"
    )
    raise ImageError(
        _(
            "The {dtype} image's values run from {low:g} to {high:g}: neither 0-1 nor 0-255, so "
            "their scale is unknown. Pass the photo before normalisation, or rescale it: {hint}."
        ).format(dtype=dtype, low=low, high=high, hint=hint)
    )


def load_image(image: Any) -> np.ndarray:
    """Turn user input into the image array that the rest of the package works with.

    Parameters
    ----------
    image : numpy.ndarray, str, pathlib.Path or PIL.Image.Image
        - A numpy array of shape ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``, or any
          of these with a leading batch axis of size 1. Any other object with an ``__array__``
          method (a TensorFlow or CPU PyTorch tensor) is converted with :func:`numpy.asarray`.
          Value scales by dtype:

          * ``uint8`` and other integers: taken as 0-255 as they are (wider integers whose
            values exceed 255 are read as 16-bit);
          * ``uint16``: scaled from 0-65535 to 0-255;
          * ``bool``: ``False`` -> 0, ``True`` -> 255;
          * floats: if every value lies in [0, 1] the image is taken to be on a 0-1 scale and
            multiplied by 255; within 0-255 they are taken as they are. (So a float image on
            a 0-255 scale that happens to be no brighter than 1 is read as 0-1.) Floats on
            neither scale (a normalised -1…1 image) are refused with how to rescale them.

          A 4th (alpha) channel is dropped, with an :class:`ImageConversionWarning`.
        - A path to an image file, opened with Pillow (EXIF rotation applied).
        - A PIL image of any mode: grayscale (``"L"``, ``"1"``, 16-bit) stays 1 channel, alpha is
          dropped with a warning, every other mode (``"P"``, ``"CMYK"`` ...) becomes RGB.

    Returns
    -------
    numpy.ndarray
        A new C-contiguous ``float32`` array of shape ``(H, W, C)``, ``C`` 1 or 3, values 0-255.
        It never shares memory with ``image``, and ``image`` is never modified.

    Raises
    ------
    ImageError
        On an unsupported type, a wrong number of dimensions or channels, an empty image,
        NaN or infinite values, a non-numeric dtype, a missing or unreadable file.

    Warns
    -----
    ImageConversionWarning
        When an alpha channel is dropped.
    """
    from_pil = isinstance(image, (str, os.PathLike, Image.Image))
    if isinstance(image, (str, os.PathLike)):
        array = _open(image)
    elif isinstance(image, Image.Image):
        array = _from_pil(image)
    elif isinstance(image, np.ndarray):
        array = image
    elif hasattr(image, "__array__") and not isinstance(image, (list, tuple)):
        array = np.asarray(image)
    else:
        hint = _(" Wrap nested lists with np.asarray first.") if isinstance(image, list) else ""
        raise ImageError(
            _("Cannot use an object of type {kind} as an image; pass {accepted}.{hint}").format(
                kind=type(image).__name__, accepted=_(_ACCEPTED), hint=hint
            )
        )

    dtype = array.dtype
    if dtype.kind not in "biuf":
        raise ImageError(
            _(
                "Expected a numeric image array; got dtype {dtype} (shape {shape}). Images hold "
                "bool, integer or float values."
            ).format(dtype=dtype, shape=array.shape)
        )
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]  # a batch of one, as models take it
    if array.ndim not in (2, 3):
        raise _shape_error(array.shape)
    if array.size == 0:
        raise ImageError(
            _("The image is empty: its shape {shape} has a zero-size axis.").format(
                shape=array.shape
            )
        )
    channels = 1 if array.ndim == 2 else array.shape[2]
    # Two channels only ever come from a Pillow gray + alpha ("LA") image; from numpy they are
    # ambiguous, so they are refused.
    if channels not in (1, 3, 4) and not (from_pil and channels == 2):
        if array.shape[0] in (1, 3, 4) and channels > 4:
            hint = _(
                " The channels seem to come first; move them last with np.moveaxis(image, 0, -1)."
            )
        elif channels == 2:
            hint = _(" For gray + alpha, keep the gray channel: image[..., :1].")
        else:
            hint = _(" Pass 1 (grayscale), 3 (RGB) or 4 (RGBA) channels.")
        raise ImageError(
            _(
                "Expected an image of shape (H, W), (H, W, 1) or (H, W, 3); got an array of "
                "shape {shape} with {channels} channels on the last axis.{hint}"
            ).format(shape=array.shape, channels=channels, hint=hint)
        )

    if dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            n_nan = int(np.isnan(array).sum())
            n_inf = int(array.size - finite.sum()) - n_nan
            raise ImageError(
                _(
                    "The image (shape {shape}) contains {nan} NaN and {inf} infinite values. "
                    "Replace them first, e.g. with np.nan_to_num(image)."
                ).format(shape=array.shape, nan=n_nan, inf=n_inf)
            )

    # The one copy: float32, C order, never a view of the caller's array.
    result = np.array(array, dtype=np.float32, order="C", copy=True)
    result *= np.float32(_scale_to_255(array))
    if dtype.kind == "f":
        # A float photo on the 0-255 scale that went through a sharpening resize overshoots a
        # little; those few tenths are clipped, not refused.
        np.clip(result, 0.0, 255.0, out=result)
    if result.ndim == 2:
        result = result[:, :, np.newaxis]
    if channels in (2, 4):
        if channels == 4:
            note = _(
                "Dropped the alpha channel of a 4-channel (RGBA) image of shape {shape}; only "
                "the RGB values are used."
            )
        else:
            note = _(
                "Dropped the alpha channel of a 2-channel (gray + alpha) image of shape {shape}; "
                "only the gray values are used."
            )
        _warn(note.format(shape=array.shape))
        result = np.ascontiguousarray(result[:, :, : channels - 1])
    return result


def image_key(image: np.ndarray) -> str:
    """Return a fingerprint of an image array, for use as a cache key.

    Parameters
    ----------
    image : numpy.ndarray
        Any array (normally the output of :func:`load_image`).

    Returns
    -------
    str
        32 hex digits: a BLAKE2b digest of the shape, dtype and bytes. Equal arrays give equal
        keys; a change of any value, of the shape or of the dtype gives a different key.
    """
    array = np.ascontiguousarray(image)  # no copy when already contiguous
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((array.shape, array.dtype.str)).encode())
    digest.update(memoryview(array).cast("B") if array.size else b"")
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """An image as one model sees it, prepared once and passed down to every view.

    Made by :meth:`ModelAdapter.prepare <cnnviz_widgets.engine.adapter.ModelAdapter.prepare>`;
    views that receive one neither decode nor resize it again.

    Attributes
    ----------
    pixels : numpy.ndarray
        float32 (H, W, C), 0–255, at the size the model is fed; read-only.
    size : (int, int)
        (height, width) of the image as the user gave it: maps are returned at this size.
    key : str
        Content fingerprint of ``pixels`` (:func:`image_key`), for cache keys.
    owner : str
        Identity of the adapter that prepared it (another adapter prepares it again).
    """

    pixels: np.ndarray
    size: tuple[int, int]
    key: str
    owner: str

    @classmethod
    def of(cls, pixels: np.ndarray, size: tuple[int, int], owner: str) -> PreparedImage:
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        if pixels.flags.writeable:
            pixels = pixels.view()
            pixels.setflags(write=False)
        return cls(pixels, (int(size[0]), int(size[1])), image_key(pixels), owner)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`pixels`, (H, W, C)."""
        return self.pixels.shape


def _check_size(size: Any) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
        ok = height > 0 and width > 0 and (height, width) == tuple(size)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ImageError(
            _("size must be (height, width) with two positive integers; got {size!r}").format(
                size=size
            )
        )
    return height, width


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an image or a 2-D map with bilinear interpolation (antialiased when shrinking).

    This is the one resize used across the package, for images going into models and for
    heatmaps going back to image resolution, so both look the same everywhere.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, C)`` or ``(H, W)``, any real dtype (computed in ``float32``).
    size : tuple of int
        ``(height, width)`` of the result, numpy order (Pillow's own ``resize`` takes
        ``(width, height)``).

    Returns
    -------
    numpy.ndarray
        A new ``float32`` array of shape ``(height, width, C)`` or ``(height, width)``. When
        ``size`` equals the current size the values are copied unchanged.

    Raises
    ------
    ImageError
        If ``image`` is not 2-D or 3-D, or ``size`` is not two positive integers.
    """
    height, width = _check_size(size)
    array = np.asarray(image)
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageError(
            _(
                "resize_image expects a non-empty (H, W, C) or (H, W) array; got shape {shape}"
            ).format(shape=array.shape)
        )
    if array.shape[:2] == (height, width):
        return np.array(array, dtype=np.float32, order="C", copy=True)
    planes = array[:, :, np.newaxis] if array.ndim == 2 else array
    out = np.empty((height, width, planes.shape[2]), dtype=np.float32)
    for c in range(planes.shape[2]):
        # PIL's mode "F" resamples 32-bit floats directly, and its BILINEAR filter widens its
        # support when shrinking, which is what antialiases the downscale.
        plane = Image.fromarray(np.ascontiguousarray(planes[:, :, c], dtype=np.float32))
        resized = plane.resize((width, height), Image.Resampling.BILINEAR)
        out[:, :, c] = np.asarray(resized, dtype=np.float32)
    return out[:, :, 0] if array.ndim == 2 else out


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert a ``(H, W, C)`` image to the number of channels a model expects.

    Parameters
    ----------
    image : numpy.ndarray
        ``float32`` ``(H, W, 1)`` or ``(H, W, 3)``, as returned by :func:`load_image`.
    channels : int
        1 or 3.

    Returns
    -------
    numpy.ndarray
        A new C-contiguous ``float32`` array ``(H, W, channels)``. Gray becomes RGB by repeating
        the channel; RGB becomes gray by luminance ``0.299 R + 0.587 G + 0.114 B``. An image that
        already has ``channels`` channels is copied unchanged.

    Raises
    ------
    ImageError
        If ``channels`` is not 1 or 3, or ``image`` is not ``(H, W, 1)`` / ``(H, W, 3)``.

    Warns
    -----
    ImageConversionWarning
        Whenever the number of channels changes.
    """
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ImageError(_("channels must be 1 or 3; got {channels!r}").format(channels=channels))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ImageError(
            _(
                "to_channels expects an (H, W, 1) or (H, W, 3) image; got shape {shape}. Pass it "
                "through load_image first."
            ).format(shape=array.shape)
        )
    have = array.shape[2]
    if have == channels:
        return np.array(array, dtype=np.float32, order="C", copy=True)
    if channels == 3:
        _warn(
            _(
                "Converted a 1-channel (grayscale) image to 3 channels (RGB) because the model "
                "expects 3 channels."
            )
        )
        return np.repeat(array.astype(np.float32, copy=False), 3, axis=2)
    _warn(
        _(
            "Converted a 3-channel (RGB) image to 1 channel (grayscale) because the model "
            "expects 1 channel."
        )
    )
    gray = array.astype(np.float32, copy=False) @ _LUMA
    return np.ascontiguousarray(gray[:, :, np.newaxis], dtype=np.float32)
