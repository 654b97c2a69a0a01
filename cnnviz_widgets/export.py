"""Standalone HTML pages and PNG files of what an explorer shows: no kernel needed to view them.

Every name that reaches the page (layer paths, class labels, model names, control values) is
HTML-escaped: a layer named ``<img src=x onerror=alert(1)>`` prints as text, it never runs.
Pictures are embedded as base64 ``data:`` URIs, so one file carries everything.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import CnnVizError
from .i18n import get_language
from .i18n import gettext_ as _

#: The ``lang`` of a page, by the language its texts are in (screen readers and fonts use it).
_HTML_LANG = {"en": "en", "zh": "zh-Hans"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9rem; }
td, th { border: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: left; }
.caption { color: #555; font-size: 0.9rem; } .meta { color: #777; font-size: 0.8rem; }
"""


@dataclass
class Section:
    """One part of a report: a heading, an optional picture, a caption, a table and code."""

    heading: str
    png: bytes = b""
    caption: str = ""
    table: Sequence[Sequence[object]] = field(default_factory=list)
    header: Sequence[str] = ()
    code: str = ""


def _table(rows: Sequence[Sequence[object]], header: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def html_page(title: str, sections: Sequence[Section], state: Mapping[str, object] = ()) -> str:
    """A self-contained HTML page: pictures inline as data URIs, every text escaped.

    Parameters
    ----------
    title : str
        Page title and first heading.
    sections : sequence of Section
        What to show, in order.
    state : mapping
        The controls' values when the page was made (shown as a table).
    """
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{_HTML_LANG.get(get_language(), "en")}"><head><meta charset="utf-8">',
        # No script runs in these pages: a strict policy makes sure of it even if an escaped
        # name were ever mishandled.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    state = dict(state)
    if state:
        header = (_("control"), _("value"))
        parts.append(_table([(name, value) for name, value in state.items()], header))
    for section in sections:
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.png:
            data = base64.b64encode(section.png).decode("ascii")
            parts.append(
                f'<img alt="{html.escape(section.heading)}" src="data:image/png;base64,{data}">'
            )
        if section.caption:
            parts.append(f'<p class="caption">{html.escape(section.caption)}</p>')
        if section.table:
            parts.append(_table(section.table, section.header))
        if section.code:
            parts.append(f"<pre><code>{html.escape(section.code)}</code></pre>")
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = html.escape(_("Made with cnnviz_widgets on {made}.").format(made=made))
    parts.append(f'<p class="meta">{meta}</p></body></html>')
    return "\n".join(parts)


def write_file(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file, then a rename); return the path."""
    target = Path(path)
    if target.is_dir():
        raise CnnVizError(
            _("{path} is a folder; give a file name such as {example}.").format(
                path=target, example=target / "view.html"
            )
        )
    if not target.parent.exists():
        raise CnnVizError(
            _("Folder {folder} does not exist; create it first.").format(folder=target.parent)
        )
    payload = data.encode("utf-8") if isinstance(data, str) else data
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(payload)
    os.replace(partial, target)
    return target
