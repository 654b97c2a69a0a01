"""The package as a whole: cheap import, lazy public API."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cnnviz_widgets


def test_import_does_not_load_tensorflow_keras_or_widgets():
    code = (
        "import sys, cnnviz_widgets\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'ipywidgets', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_resolve_lazily_to_their_modules():
    from cnnviz_widgets.engine.adapter import layer_paths
    from cnnviz_widgets.widgets.activations import ActivationExplorer

    assert cnnviz_widgets.ActivationExplorer is ActivationExplorer
    assert cnnviz_widgets.layer_paths is layer_paths
    assert set(cnnviz_widgets.__all__) <= set(dir(cnnviz_widgets))


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'cnnviz_widgets' has no attribute 'Explorr'"):
        _ = cnnviz_widgets.Explorr
