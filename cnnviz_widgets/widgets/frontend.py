"""Which optional widget front ends the notebook can show, so each explorer degrades gracefully.

The core of every explorer (controls, picture, caption) needs stock ipywidgets only. Four parts
need a third-party front-end extension, and each has a stock stand-in:

============  =========================  ===============================================
feature       used for                   stand-in when its front end is absent
============  =========================  ===============================================
``ipyevents`` click a tile / the photo   a stock "Open" dropdown (grid) or the sliders
``ipympl``    the interactive Detail tab a plain matplotlib picture (PNG) with colorbar
``bqplot``    the class bar chart        a stock ``Select`` list of the top classes
``anywidget`` feature maps drawn in the  pictures made in the kernel (PNG), see
              browser (``view.py``)      :func:`~.view.wants_view`
============  =========================  ===============================================

The rule, first match wins:

1. :func:`set_frontend` (``cv.set_frontend("stock")``, ``"full"``, ``"auto"`` or the features
   present, e.g. ``"ipympl,bqplot"``);
2. the ``CNNVIZ_FRONTEND`` environment variable, with the same values;
3. auto-detection: a feature is present when its Python package imports **and** the notebook is
   not one known to lack third-party widget JavaScript (Google Colab: ``google.colab`` imported
   or ``COLAB_RELEASE_TAG`` set; VS Code: ``VSCODE_PID`` set without a Jupyter server's
   ``JPY_SESSION_NAME``, or ``__vsc_ipynb_file__`` in the user namespace — both hosts need a
   setting first, see the README) **and** its JupyterLab extension is installed in a Jupyter
   data directory and not disabled in any ``labconfig/page_config.json`` of the Jupyter config
   path (what ``jupyter labextension disable`` writes; the kernel reads the same paths as the
   server when both run in one environment — elsewhere, e.g. a JupyterHub whose server runs
   in another environment, set ``CNNVIZ_FRONTEND``).

Explorers read the decision when they are made; set it before making them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from ..i18n import N_
from ..i18n import gettext_ as _

__all__ = ["ENV_VAR", "FEATURES", "frontend_features", "has_feature", "set_frontend"]

#: The optional features, by the Python package that provides them.
FEATURES = ("ipyevents", "ipympl", "bqplot", "anywidget")
#: The lab extension (npm package) of each feature.
LAB_EXTENSIONS = {
    "ipyevents": "ipyevents", "ipympl": "jupyter-matplotlib", "bqplot": "bqplot",
    "anywidget": "anywidget",
}  # fmt: skip
ENV_VAR = "CNNVIZ_FRONTEND"

_chosen: frozenset[str] | None = None


def _parse(spec: str | Iterable[str]) -> frozenset[str] | None:
    """``"full"``/``"all"`` → every feature, ``"stock"``/``"none"`` → none, ``"auto"`` → None."""
    if isinstance(spec, str):
        word = spec.strip().lower()
        if word in ("", "auto"):
            return None
        if word in ("full", "all"):
            return frozenset(FEATURES)
        if word in ("stock", "none"):
            return frozenset()
        spec = [part.strip() for part in word.split(",") if part.strip()]
    names = frozenset(spec)
    unknown = sorted(names - set(FEATURES))
    if unknown:
        raise ValueError(
            _(
                "Unknown front-end feature(s) {unknown}: use 'auto', 'full', 'stock' or a "
                "comma-separated subset of {value}."
            ).format(unknown=unknown, value=", ".join(FEATURES))
        )
    return names


def set_frontend(spec: str | Iterable[str] = "auto") -> frozenset[str]:
    """Say which optional front ends the notebook has; returns the features now in use.

    Examples
    --------
    >>> set_frontend("stock")            # stock ipywidgets only (e.g. a locked-down JupyterHub)
    frozenset()
    >>> sorted(set_frontend("ipympl,bqplot"))
    ['bqplot', 'ipympl']
    >>> _ = set_frontend("auto")         # back to the environment variable / detection
    """
    global _chosen
    _chosen = _parse(spec)
    return frontend_features()


def _host_without_custom_widgets() -> str | None:
    """The name of a notebook host known to lack third-party widget JavaScript by default."""
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG"):
        return "Colab"
    # VS Code's own kernels: VS Code's environment without a Jupyter server's session name
    # (a server started from VS Code's terminal sets JPY_SESSION_NAME for its kernels), or the
    # notebook path VS Code puts into the user namespace.
    if os.environ.get("VSCODE_PID") and not os.environ.get("JPY_SESSION_NAME"):
        return "VS Code"
    shell = sys.modules.get("IPython")
    ipython = shell.get_ipython() if shell is not None else None
    if ipython is not None and "__vsc_ipynb_file__" in getattr(ipython, "user_ns", {}):
        return "VS Code"
    return None


def _jupyter_dirs() -> tuple[list[str], list[str]]:
    try:
        from jupyter_core.paths import jupyter_config_path, jupyter_path
    except ImportError:  # no Jupyter here: only the Python packages can tell
        return [], []
    return jupyter_config_path(), jupyter_path()


def _lab_state(extension: str, config: list[str], data: list[str]) -> bool:
    """False when the lab extension is disabled in a page_config.json or installed nowhere."""
    for directory in config:
        page = Path(directory, "labconfig", "page_config.json")
        try:
            disabled = json.loads(page.read_text()).get("disabledExtensions", {})
        except (OSError, ValueError):
            continue
        names = disabled if isinstance(disabled, (list, dict)) else []
        if extension in names and (not isinstance(names, dict) or names[extension]):
            return False
    if not data:
        return True
    return any(Path(d, "labextensions", extension).is_dir() for d in data)


def detect() -> frozenset[str]:
    """The features auto-detection finds (rule 3 of the module docstring)."""
    if _host_without_custom_widgets():
        return frozenset()
    config, data = _jupyter_dirs()
    return frozenset(
        name
        for name in FEATURES
        if importlib.util.find_spec(name) is not None
        and _lab_state(LAB_EXTENSIONS[name], config, data)
    )


def frontend_features() -> frozenset[str]:
    """The optional features explorers use now (set_frontend, then CNNVIZ_FRONTEND, then auto)."""
    if _chosen is not None:
        return _chosen
    from_env = _parse(os.environ.get(ENV_VAR, ""))
    return from_env if from_env is not None else detect()


def has_feature(name: str) -> bool:
    """True when ``name`` (one of :data:`FEATURES`) can be used in this notebook."""
    if name not in FEATURES:
        raise ValueError(
            _("Unknown front-end feature {name!r}; one of {value}.").format(
                name=name, value=", ".join(FEATURES)
            )
        )
    return name in frontend_features() and importlib.util.find_spec(name) is not None


#: Why each stand-in is shown, as the one-line note the explorer displays (in English; shown
#: in the current language).
STAND_IN_NOTES = {
    "ipyevents": N_(
        "Clicking the picture needs the ipyevents front end, not found here: use the {where} "
        "instead."
    ),
    "ipympl": N_(
        "The interactive Detail figure needs the ipympl front end, not found here: showing a "
        "plain figure."
    ),
    "bqplot": N_(
        "The bar chart needs the bqplot front end, not found here: pick a class from the list."
    ),
}


def stand_in_note(feature: str, **where: str) -> str:
    """The one-line note shown where ``feature``'s stand-in replaces it, in the current language.

    ``where`` names the stand-in control (``where=_("Open menu")``), already translated.
    """
    return _(STAND_IN_NOTES[feature]).format(**where)
