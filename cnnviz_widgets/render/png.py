"""PNG: encode a uint8 picture as PNG bytes with ``zlib`` and ``struct`` alone.

Examples
--------
>>> import numpy as np
>>> encode_png(np.zeros((2, 2), np.uint8))[:8] == PNG_SIGNATURE
True
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ..errors import CnnVizError, check_int
from ..i18n import gettext_ as _

__all__ = ["PNG_SIGNATURE", "encode_png"]

#: The eight bytes every PNG file starts with.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes | memoryview) -> bytes:
    # crc32 chains, so the (possibly large) IDAT payload is never concatenated just for the CRC.
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))


def encode_png(image: np.ndarray, *, compress_level: int = 1) -> bytes:
    """Encode a uint8 picture as PNG bytes (8-bit, no interlacing, filter 0).

    Parameters
    ----------
    image : np.ndarray
        uint8 ``(H, W)`` or ``(H, W, 1)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA.
    compress_level : int
        zlib level 0–9. The default 1 is several times faster than 6 and, on the flat,
        blocky pictures this module makes, barely larger.

    Returns
    -------
    bytes
        A complete PNG file, ready for ``ipywidgets.Image(value=...)``.

    Examples
    --------
    >>> encode_png(np.zeros((2, 2), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise CnnVizError(
            _(
                "encode_png needs a uint8 image, got dtype {dtype}. Convert it first, e.g. with "
                "as_rgb_uint8(image) or apply_colormap(normalize_channels(x), cmap)."
            ).format(dtype=array.dtype)
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    color_types = {1: 0, 3: 2, 4: 6}  # samples per pixel -> PNG colour type
    samples = 1 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else 0)
    if samples not in color_types:
        raise CnnVizError(
            _(
                "encode_png needs (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, got shape {shape}. "
                "Drop any batch axis (image[0]) or convert with as_rgb_uint8(image)."
            ).format(shape=array.shape)
        )
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise CnnVizError(
            _("encode_png got an empty image (shape {shape}); need H, W >= 1.").format(
                shape=array.shape
            )
        )
    level = check_int(compress_level, "compress_level")
    if not 0 <= level <= 9:
        raise CnnVizError(
            _("compress_level must be 0–9, got {level}. Use 1 for speed, 9 for size.").format(
                level=level
            )
        )

    # Each scanline starts with its filter-type byte (0 = None); one 2-D copy adds them all.
    raw = np.empty((height, 1 + width * samples), dtype=np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = array.reshape(height, width * samples)
    header = struct.pack(">IIBBBBB", width, height, 8, color_types[samples], 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(memoryview(raw), level)),
            _png_chunk(b"IEND", b""),
        )
    )

