"""Paging: split a wide layer's channels into pages of a fixed size, with one range check.

The Python functions and the explorers' page traits share :func:`page_channels`, so a page out
of range is reported in the same words everywhere.

Examples
--------
>>> page_count(130, 64), page_channels(130, 2, 64)
(3, range(128, 130))
"""

from __future__ import annotations

from ..errors import CnnVizError, check_int, check_positive
from ..i18n import gettext_ as _
from .layout import _check_non_negative

__all__ = ["page_channels", "page_count"]


def page_count(n_channels: int, per_page: int) -> int:
    """Number of pages needed to show ``n_channels`` at ``per_page`` channels per page.

    An empty layer still has one (empty) page, so a pager always has a valid page 0.

    Examples
    --------
    >>> page_count(130, 64), page_count(64, 64), page_count(0, 64)
    (3, 1, 1)
    """
    n_channels = _check_non_negative(n_channels, "n_channels")
    per_page = check_positive(per_page, "per_page")
    return max(1, -(-n_channels // per_page))


def page_channels(n_channels: int, page: int, per_page: int) -> range:
    """Channel indexes shown on ``page`` (counting from 0).

    Raises
    ------
    CnnVizError
        When ``page`` is outside ``0 .. page_count(n_channels, per_page) - 1``.

    Examples
    --------
    >>> page_channels(130, 2, 64)
    range(128, 130)
    """
    pages = page_count(n_channels, per_page)
    page = check_int(page, "page")
    if not 0 <= page < pages:
        if pages == 1:
            message = _(
                "page {page} is out of range: this layer has only 1 page ({per_page} channels "
                "per page), so the page must be 0."
            )
        else:
            message = _(
                "page {page} is out of range: this layer has {pages} pages of {per_page} "
                "channels (0–{last}). Pick a page from 0 to {last}."
            )
        raise CnnVizError(message.format(page=page, pages=pages, per_page=per_page, last=pages - 1))
    start = page * per_page
    return range(start, min(start + per_page, n_channels))
