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
import functools
import gettext
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "LANGUAGES",
    "N_",
    "cjk_font_file",
    "cjk_font_properties",
    "get_language",
    "gettext_",
    "has_cjk",
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


def N_(message: str) -> str:
    """Mark ``message`` for the catalog and return it untranslated.

    For texts held in module-level tables (chosen before any language is set): the table keeps
    the English text and the code passes it through :func:`_` where it is shown.
    ``tools/compile_catalogs.py`` collects the literals of both.
    """
    return message


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


#: Words in the file names of CJK fonts (lower case): which files of the system's font folders
#: are worth registering when matplotlib's font list knows none.
CJK_FILE_HINTS = (
    "cjk", "sourcehan", "wqy", "wenquanyi", "droidsansfallback", "sarasa", "msyh", "simhei",
    "pingfang", "hiragino", "stheiti", "uming", "ukai", "notosanssc",
)  # fmt: skip


def cjk_font_family() -> str | None:
    """The name of an installed CJK font family matplotlib can use, or None.

    Matplotlib lists fonts from a cache made when it first ran; a CJK font installed after that
    (``apt-get install fonts-noto-cjk`` in a running Binder, say) is missing from it. So when
    the list has none, the system's font folders are searched once for CJK font files, which
    are registered before giving up.
    """
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = next((family for family in CJK_FAMILIES if family in installed), None)
    if found is None and _register_system_cjk_fonts():
        installed = {font.name for font in font_manager.fontManager.ttflist}
        found = next((family for family in CJK_FAMILIES if family in installed), None)
    return found


@functools.cache
def _register_system_cjk_fonts() -> bool:
    """Add the system's CJK font files to matplotlib's list (once); True if any was added."""
    from matplotlib import font_manager

    known = {font.fname for font in font_manager.fontManager.ttflist}
    added = False
    for path in font_manager.findSystemFonts():
        name = Path(path).name.lower().replace("-", "").replace("_", "")
        if path in known or not any(hint in name for hint in CJK_FILE_HINTS):
            continue
        try:
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError, ValueError):  # an unreadable file: skip it
            continue
        added = True
    return added


#: CJK radicals, punctuation, kana, ideographs and full-width forms (a regex character-class
#: body): text that a Latin font draws as empty boxes.
CJK_RANGES = "\u2e80-\u2fdf\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK = re.compile(f"[{CJK_RANGES}]")


def has_cjk(text: str) -> bool:
    """True when ``text`` holds Chinese (CJK) characters or full-width punctuation."""
    return _CJK.search(text) is not None


def _shipped_font() -> Path:
    if not SHIPPED_FONT.is_file():
        from .errors import CnnVizError

        raise CnnVizError(
            gettext_(
                "No font with Chinese glyphs was found, and the one shipped with "
                "cnnviz_widgets is missing ({path}). Install one, e.g. "
                "'apt-get install fonts-noto-cjk', or reinstall cnnviz_widgets."
            ).format(path=SHIPPED_FONT)
        )
    return SHIPPED_FONT


def cjk_font_file() -> tuple[Path, int]:
    """A font file with Chinese glyphs and the index of the face to use in it.

    The installed family :func:`use_cjk_font` would choose (a ``.ttc`` collection holds
    several faces; the index is the Simplified Chinese one), else the shipped subset (index 0).
    For drawing with Pillow: ``ImageFont.truetype(str(path), size, index=index)``.

    Raises
    ------
    CnnVizError
        When no CJK font is installed and the shipped one is missing.
    """
    from matplotlib import font_manager

    family = cjk_font_family()
    if family is not None:
        faces = [f for f in font_manager.fontManager.ttflist if f.name == family]
        # The regular upright face, as matplotlib would pick for plain text (not the bold one).
        entry = min(faces, key=lambda f: (f.style != "normal", abs(_weight(f.weight) - 400)))
        return Path(entry.fname), int(getattr(entry, "index", 0) or 0)
    return _shipped_font(), 0


def _weight(weight: int | str) -> int:
    from matplotlib.font_manager import weight_dict

    return weight if isinstance(weight, int) else weight_dict.get(weight, 400)


def cjk_font_properties():  # -> matplotlib.font_manager.FontProperties
    """Matplotlib font properties with Chinese glyphs, for one text (no global rcParams change).

    ``axes.set_title(title, fontproperties=cjk_font_properties())``; see :func:`use_cjk_font`
    to switch every text of every figure instead.
    """
    from matplotlib.font_manager import FontProperties

    family = cjk_font_family()
    if family is not None:
        return FontProperties(family=family)
    return FontProperties(fname=str(_shipped_font()))


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
        shipped = str(_shipped_font())
        font_manager.fontManager.addfont(shipped)
        family = font_manager.FontProperties(fname=shipped).get_name()
    sans = [f for f in matplotlib.rcParams["font.sans-serif"] if f != family]
    matplotlib.rcParams["font.sans-serif"] = [family, *sans]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False
    return family
