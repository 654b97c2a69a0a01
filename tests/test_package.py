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


def _fresh(code: str, **env_changes: str | None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )


def test_first_run_prints_no_tensorflow_native_log_lines():
    # The notebook shows anything on descriptor 2 as a red box; TensorFlow's C++ start-up lines
    # (absl, oneDNN, CPU feature guard) must not reach it unless the user chose a log level.
    code = (
        "import numpy as np, cnnviz_widgets as cv\n"
        "from cnnviz_widgets.engine.backend import keras\n"
        "k = keras()\n"
        "x = k.Input((8, 8, 3)); m = k.Model(x, k.layers.Conv2D(2, 3)(x))\n"
        "print(cv.activations(m, np.zeros((8, 8, 3), np.uint8), 'conv2d').shape)\n"
    )
    for level in (None, "2", "3"):  # unset, or set to quiet by a runner or the user
        quiet = _fresh(code, TF_CPP_MIN_LOG_LEVEL=level)
        assert quiet.returncode == 0, quiet.stderr
        assert quiet.stdout.strip() == "(6, 6, 2)"
        for marker in ("absl", "oneDNN", "I0000", "cpu_feature_guard"):
            assert marker not in quiet.stderr, (level, quiet.stderr)
    # Asking for TensorFlow's info lines gets them.
    chatty = _fresh(code, TF_CPP_MIN_LOG_LEVEL="0")
    assert chatty.returncode == 0 and "oneDNN" in chatty.stderr, chatty.stderr


def test_another_keras_backend_gets_a_message_that_says_what_to_set():
    code = (
        "import cnnviz_widgets as cv\n"
        "try:\n    cv.load_default_model()\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = _fresh(code, KERAS_BACKEND="jax")
    assert out.stdout.startswith("ModelError KERAS_BACKEND is 'jax'; cnnviz_widgets needs Keras' "
                                 "TensorFlow backend. Set os.environ['KERAS_BACKEND'] = "
                                 "'tensorflow'"), out.stdout + out.stderr


def test_a_missing_tensorflow_gets_the_install_command():
    # A stand-in module that fails to import as TensorFlow does when it is not installed.
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def fake(name, *a, **k):\n"
        "    if name == 'tensorflow' or name.startswith('tensorflow.'):\n"
        "        raise ModuleNotFoundError(\"No module named 'tensorflow'\")\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = fake\n"
        "import cnnviz_widgets as cv\n"
        "try:\n    cv.load_default_model()\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = _fresh(code)
    assert "ModelError cnnviz_widgets runs models with TensorFlow, which is not installed" in (
        out.stdout
    ), out.stdout + out.stderr
    assert "pip install cnnviz_widgets[cpu]" in out.stdout
