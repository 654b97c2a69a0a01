"""Languages: every label, caption, tooltip and error message goes through :func:`_`.

English is the default and is the text in the source. Other languages are stdlib ``gettext``
catalogs shipped in ``cnnviz_widgets/locale/<lang>/LC_MESSAGES/cnnviz_widgets.mo`` (compiled from
the ``.po`` beside it by ``tools/compile_catalogs.py``). Today there is one: Simplified Chinese
(``"zh"``).

Choose the language with :func:`set_language` or, before Python starts, with the
``CNNVIZ_LANG`` environment variable. Widgets built afterwards, and every caption drawn
afterwards, use it.

Messages with values are catalogued with ``str.format`` fields (``"channel {channel}"``), never
glued from pieces, because word order differs between languages. In English, ``_(msg)`` returns
``msg`` itself, so English texts stay byte-identical to the source.

Matplotlib figures with Chinese titles need a font that has the glyphs: :func:`use_cjk_font`
finds an installed one (Noto Sans CJK, Source Han, WenQuanYi, SimHei, …) or falls back to the
small OFL-licensed subset of Noto Sans SC shipped in ``data/fonts/``.

Examples
--------
>>> import cnnviz_widgets as cv
>>> cv.set_language("zh")                      # doctest: +SKIP
>>> from cnnviz_widgets.i18n import _
>>> _("Channel")                               # doctest: +SKIP
'通道'
"""

from __future__ import annotations

import contextlib
import gettext
import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "LANGUAGES",
    "get_language",
    "gettext_",
    "ngettext",
    "set_language",
    "use_cjk_font",
    "use_language",
]

DOMAIN = "cnnviz_widgets"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
FONT_DIR = Path(__file__).resolve().parent / "data" / "fonts"
ENV_VAR = "CNNVIZ_LANG"

#: Languages with a catalog, and the names people may use for them.
LANGUAGES: dict[str, str] = {"en": "English", "zh": "简体中文"}
_ALIASES = {
    "en": "en", "en_us": "en", "en_gb": "en", "english": "en", "c": "en", "posix": "en",
    "zh": "zh", "zh_cn": "zh", "zh_hans": "zh", "zh_sg": "zh", "cn": "zh", "chinese": "zh",
}  # fmt: skip

_lock = threading.Lock()
_language: str | None = None  # None: not decided yet (read CNNVIZ_LANG on first use)
_catalogs: dict[str, gettext.NullTranslations] = {}


def _normalise(language: str) -> str:
    key = str(language).strip().lower().replace("-", "_").split(".")[0]
    if key not in _ALIASES:
        # Imported here: errors.py translates its own messages through this module.
        from .errors import CnnVizError

        choices = ", ".join(repr(k) for k in LANGUAGES)
        raise CnnVizError(
            gettext_("Unknown language {language!r}. Choose one of {choices}.").format(
                language=language, choices=choices
            )
        )
    return _ALIASES[key]


def _catalog(language: str) -> gettext.NullTranslations:
    with _lock:
        if language not in _catalogs:
            if language == "en":
                _catalogs[language] = gettext.NullTranslations()
            else:
                _catalogs[language] = gettext.translation(
                    DOMAIN, localedir=LOCALE_DIR, languages=[language]
                )
        return _catalogs[language]


def get_language() -> str:
    """The current language code (``"en"`` or ``"zh"``).

    Until :func:`set_language` is called it is read once from ``CNNVIZ_LANG``; an unset,
    empty or unknown value means English (an unknown one is not an error here: a shell variable
    must never stop the package from importing).
    """
    global _language
    if _language is None:
        raw = os.environ.get(ENV_VAR, "").strip()
        key = raw.lower().replace("-", "_").split(".")[0]
        _language = _ALIASES.get(key, "en")
    return _language


def set_language(language: str) -> str:
    """Switch labels, captions, tooltips and error messages to ``language``; returns its code.

    Parameters
    ----------
    language : str
        ``"zh"`` (also ``"zh_CN"``, ``"zh-Hans"``, ``"chinese"``) or ``"en"``.

    Widgets built after the call use the language, as does every caption drawn after it; a
    widget already on screen keeps the labels it was built with.

    Raises
    ------
    CnnVizError
        For a language with no catalog (the message lists those there are).
    """
    global _language
    code = _normalise(language)
    _catalog(code)  # fail now, not at the first label, if the catalog is missing
    _language = code
    return code


@contextlib.contextmanager
def use_language(language: str) -> Iterator[str]:
    """Use ``language`` inside a ``with`` block, then go back to the one before."""
    before = get_language()
    code = set_language(language)
    try:
        yield code
    finally:
        set_language(before)


def gettext_(message: str) -> str:
    """``message`` in the current language (itself in English or when it has no translation)."""
    language = get_language()
    if language == "en":
        return message
    return _catalog(language).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural form of a message, in the current language."""
    language = get_language()
    if language == "en":
        return singular if count == 1 else plural
    return _catalog(language).ngettext(singular, plural, count)


#: The conventional short name, for ``from cnnviz_widgets.i18n import _``.
_ = gettext_


# ------------------------------------------------------------------------------ fonts
#: Installed font families that carry Simplified Chinese glyphs, best first.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Sarasa Gothic SC", "Microsoft YaHei",
    "PingFang SC", "Hiragino Sans GB", "SimHei", "Heiti SC", "AR PL UMing CN",
    "Droid Sans Fallback", "Noto Sans CJK JP",
)  # fmt: skip
#: The shipped fallback: a subset of Noto Sans SC (SIL Open Font License 1.1).
SHIPPED_FONT = FONT_DIR / "NotoSansSC-cnnviz-subset.otf"
SHIPPED_FAMILY = "Noto Sans SC cnnviz subset"


def cjk_font_family() -> str | None:
    """The name of an installed CJK font family matplotlib can use, or None."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((family for family in CJK_FAMILIES if family in installed), None)


def use_cjk_font() -> str:
    """Make matplotlib draw Chinese text with real glyphs; returns the font family chosen.

    An installed CJK font is preferred (it has every character); otherwise the subset shipped
    with the package is registered, which covers the package's own catalog and tutorials. The
    family is put first in ``font.sans-serif`` and the minus sign is drawn as an ASCII hyphen
    (CJK fonts often lack U+2212).

    Raises
    ------
    CnnVizError
        When no CJK font is installed and the shipped one is missing (a broken install).
    """
    import matplotlib
    from matplotlib import font_manager

    family = cjk_font_family()
    if family is None:
        if not SHIPPED_FONT.is_file():
            from .errors import CnnVizError

            raise CnnVizError(
                gettext_(
                    "No font with Chinese glyphs was found, and the one shipped with "
                    "cnnviz_widgets is missing ({path}). Install one, e.g. "
                    "'apt-get install fonts-noto-cjk', or reinstall cnnviz_widgets."
                ).format(path=SHIPPED_FONT)
            )
        font_manager.fontManager.addfont(str(SHIPPED_FONT))
        family = font_manager.FontProperties(fname=str(SHIPPED_FONT)).get_name()
    sans = [f for f in matplotlib.rcParams["font.sans-serif"] if f != family]
    matplotlib.rcParams["font.sans-serif"] = [family, *sans]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False
    return family
