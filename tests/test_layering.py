"""The layering the architecture promises, checked on the source itself.

- ``render/`` (pure numpy) and ``widgets/`` (thin ipywidgets) never import TensorFlow or Keras
  themselves: the engine is the one place that reads Keras models.
- Importing the renderer, in a fresh interpreter, loads neither TensorFlow, Keras, the engine,
  ipywidgets nor matplotlib (matplotlib only once a colormap table is first built).
- No module of the package grows past 500 lines (one job per module).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import cnnviz_widgets

PACKAGE = Path(cnnviz_widgets.__file__).parent
HEAVY = ("tensorflow", "keras")
MAX_LINES = 500


def _modules(*subpackages: str) -> list[Path]:
    return sorted(p for sub in subpackages for p in (PACKAGE / sub).rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _heavy_imports(source: str, filename: str) -> list[str]:
    """Every import of TensorFlow or Keras in ``source``, at any depth, as "line: statement".

    Catches ``import keras``, ``import tensorflow as tf``, ``from keras import layers``,
    ``from tensorflow.keras import ...`` and ``importlib.import_module("keras")`` /
    ``__import__("tensorflow")`` with a literal name, whether at module level or inside a
    function, a class, an ``if TYPE_CHECKING:`` block or a ``try:``.
    """
    found = []

    def heavy(name: str | None) -> bool:
        return bool(name) and name.split(".")[0] in HEAVY

    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if heavy(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and heavy(node.module):
                found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and heavy(first.value)
            ):
                found.append(f"{node.lineno}: {name}({first.value!r})")
    return found


def test_the_scanner_sees_every_form_of_heavy_import() -> None:
    source = (
        "import numpy\nimport keras\nimport tensorflow as tf\nfrom keras import layers\n"
        "from tensorflow.keras import Model\nfrom .keras_like import x\n"
        "def f():\n    import keras.ops\n    import importlib\n"
        "    return importlib.import_module('tensorflow')\n"
        "class C:\n    def g(self):\n        return __import__('keras')\n"
        "import kerasish\n"
    )
    assert _heavy_imports(source, "example.py") == [
        "2: import keras",
        "3: import tensorflow",
        "4: from keras import ...",
        "5: from tensorflow.keras import ...",
        "8: import keras.ops",
        "10: import_module('tensorflow')",
        "13: __import__('keras')",
    ]


RENDER_AND_WIDGETS = _modules("render", "widgets")


def test_render_and_widgets_modules_are_found() -> None:
    names = {_dotted(p) for p in RENDER_AND_WIDGETS}
    assert {
        "cnnviz_widgets.render",
        "cnnviz_widgets.render.color",
        "cnnviz_widgets.render.layout",
        "cnnviz_widgets.render.png",
        "cnnviz_widgets.render.kernels",
        "cnnviz_widgets.widgets",
    } <= names


@pytest.mark.parametrize(
    "path", RENDER_AND_WIDGETS, ids=[str(p.relative_to(PACKAGE)) for p in RENDER_AND_WIDGETS]
)
def test_render_and_widgets_never_import_tensorflow_or_keras(path: Path) -> None:
    found = _heavy_imports(path.read_text(encoding="utf-8"), str(path))
    assert not found, (
        f"{path.relative_to(PACKAGE)} imports TensorFlow/Keras ({'; '.join(found)}); "
        "read models through cnnviz_widgets.engine instead."
    )


def test_importing_the_renderer_loads_no_tensorflow_keras_engine_or_widgets() -> None:
    modules = [_dotted(p) for p in _modules("render")]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert set(modules) <= loaded  # the subprocess really imported every render module
    unwanted = ("tensorflow", "keras", "ipywidgets", "matplotlib", "PIL", "cnnviz_widgets.engine")
    offenders = sorted(m for m in loaded if m.split(".")[0] in unwanted or m.startswith(unwanted))
    assert offenders == []


def test_no_module_is_over_500_lines() -> None:
    sizes = {
        str(p.relative_to(PACKAGE.parent)): len(p.read_text(encoding="utf-8").splitlines())
        for p in sorted(PACKAGE.rglob("*.py"))
    }
    assert sizes  # the package really was read
    offenders = {path: lines for path, lines in sizes.items() if lines > MAX_LINES}
    assert offenders == {}, (
        f"Modules over {MAX_LINES} lines (split them, one job each): "
        + ", ".join(f"{path} ({lines})" for path, lines in sorted(offenders.items()))
    )
