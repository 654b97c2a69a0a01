"""The static picture of an explorer: its pictures side by side and its caption, as one PNG.

Saved notebooks are read where no kernel runs (GitHub, nbviewer); there the live widget is gone
and only the ``image/png`` of its MIME bundle is shown. This composes that picture from what the
widget shows — the photo, the view, the caption and any note — with numpy and Pillow only.

Text with Chinese characters is drawn with the CJK font the package finds or ships
(:func:`cnnviz_widgets.i18n.cjk_font_file`): Pillow's own font has no Chinese glyphs and would
draw each character as an empty box. Chinese has no spaces, so lines break between characters.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence

import numpy as np

from .. import render
from ..i18n import CJK_RANGES, cjk_font_file, has_cjk

GAP = 8
MARGIN = 6
FONT_SIZE = 14
BACKGROUND = (255, 255, 255)
TEXT = (34, 34, 34)
NOTE = (85, 85, 85)


def plain_text(markup: str) -> str:
    """HTML as one line of plain text (tags dropped, entities decoded, spaces collapsed)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def _font(size: int = FONT_SIZE):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the small bitmap font, no sizes
        return ImageFont.load_default()


@functools.lru_cache(maxsize=4)
def _cjk_font(size: int = FONT_SIZE):
    """A Pillow font with Chinese glyphs (loaded once per size)."""
    from PIL import ImageFont

    path, index = cjk_font_file()
    return ImageFont.truetype(str(path), size, index=index)


def text_font(texts: Sequence[str], size: int = FONT_SIZE):
    """The font to draw ``texts`` with: the CJK font when any of them has CJK characters."""
    return _cjk_font(size) if any(has_cjk(text) for text in texts) else _font(size)


# Line-break units: a CJK character with the opening punctuation before it and the closing
# punctuation after it (a line never starts with "，" nor ends with "（"), or a run of other
# characters with the closing punctuation after it ("63）").
_CLOSING = "，。、：；！？）”’》」…"
_PIECES = re.compile(f"[（“‘《「]*[{CJK_RANGES}][{_CLOSING}]*|[^{CJK_RANGES}]+[{_CLOSING}]*")


def _wrap(text: str, font, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels in ``font``.

    Lines break at spaces, and between two CJK characters (never before closing punctuation).
    """
    lines: list[str] = []
    line = ""
    for word in text.split():
        for number, piece in enumerate(_PIECES.findall(word)):
            glue = " " if number == 0 and line else ""
            candidate = f"{line}{glue}{piece}"
            if line and font.getlength(candidate) > width:
                lines.append(line)
                line = piece
            else:
                line = candidate
    if line:
        lines.append(line)
    return lines


def compose(
    panels: Sequence[np.ndarray], caption: str = "", notes: Sequence[str] = ()
) -> np.ndarray:
    """Panels (uint8 H×W×3) left to right, then the caption and notes below, on white.

    ``caption`` and ``notes`` may be HTML; they are drawn as plain text, wrapped to the width
    of the panels (at least 360 px).

    Examples
    --------
    >>> rgb = compose([np.zeros((20, 30, 3), np.uint8)], "<b>layer</b> · channel 4")
    >>> rgb.dtype, rgb.shape[1] >= 30
    (dtype('uint8'), True)
    """
    from PIL import Image, ImageDraw

    shown = [render.as_rgb_uint8(p) for p in panels if p is not None and p.size]
    width = sum(p.shape[1] for p in shown) + GAP * max(0, len(shown) - 1)
    width = max(width, 360) + 2 * MARGIN
    texts = [caption, *notes]
    font = text_font(texts)
    # Measured on the characters drawn: a Latin font's "missing glyph" box is taller than "Ag".
    sample = "Ag图" if any(has_cjk(text) for text in texts) else "Ag"
    line_height = int(font.getbbox(sample)[3] + 4)
    lines = [(line, TEXT) for line in _wrap(plain_text(caption), font, width - 2 * MARGIN)]
    for note in notes:
        lines += [(line, NOTE) for line in _wrap(plain_text(note), font, width - 2 * MARGIN)]
    top = max((p.shape[0] for p in shown), default=0)
    height = MARGIN + top + (GAP if lines and top else 0) + line_height * len(lines) + MARGIN
    canvas = Image.new("RGB", (width, max(height, 2 * MARGIN + 1)), BACKGROUND)
    x = MARGIN
    for panel in shown:
        canvas.paste(Image.fromarray(panel), (x, MARGIN))
        x += panel.shape[1] + GAP
    draw = ImageDraw.Draw(canvas)
    y = MARGIN + top + (GAP if lines and top else 0)
    for line, colour in lines:
        draw.text((MARGIN, y), line, fill=colour, font=font)
        y += line_height
    return np.asarray(canvas, dtype=np.uint8)
